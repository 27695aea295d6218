"""Hygiene: ruff and mypy on simnet/ and realnet/, with the settings in pyproject.toml.

Both must be clean: ruff with the rule set `[tool.ruff]` chooses, mypy with `strict = true`
(`[tool.mypy]`; the one relaxation is named there: Dask's untyped API may be called from
simnet/testing/sweep_dask.py). A new finding fails the test and names itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MYPY_CEILING = 0
RUFF_PENDING: set[str] = set()  # files allowed to have ruff findings: none


def _tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def test_ruff_is_clean() -> None:
    proc = subprocess.run(
        [_tool("ruff"), "check", "--output-format", "concise", "simnet", "realnet"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    findings = [line for line in proc.stdout.splitlines() if re.match(r"\S+\.py:\d+:\d+: ", line)]
    dirty = {line.split(":", 1)[0] for line in findings}
    assert not [f for f in findings if f.split(":", 1)[0] not in RUFF_PENDING], proc.stdout
    assert not sorted(RUFF_PENDING - dirty), "clean now: take them off RUFF_PENDING"


def test_mypy_errors_only_fall() -> None:
    proc = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=600)
    found = re.search(r"Found (\d+) errors?", proc.stdout)
    errors = int(found.group(1)) if found else 0
    assert errors <= MYPY_CEILING, proc.stdout[-3000:]
