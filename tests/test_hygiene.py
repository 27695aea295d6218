"""Hygiene: ruff and mypy on simnet/ and realnet/, with the settings in pyproject.toml.

ruff must be clean, except in the files other work had open when the rule set was chosen
(RUFF_PENDING: 18 findings, mostly UP035 imports and long lines); the test fails when one of
them is clean and still listed, so the list only shrinks. mypy (non-strict, `[tool.mypy]`)
reported 100 errors in 20 files when this test was written; the test holds the count to a
ceiling so that it can only fall -- lower MYPY_CEILING as errors are fixed, down to 0. It is 1:
simnet/cli.py (`Workload(**dict[str, int])`), in a file that other work had open.

`mypy --strict` (not run here yet) is clean on simnet/kernel, simnet/server and realnet except
for one error in simnet/server/syscalls.py (a bare `tuple`), and `mypy --strict simnet/kernel
simnet/server realnet` reports only that one. On the whole tree it reports 49 errors in 10
files, all in files that other work had open: simnet/aio (38), simnet/testing/sweep_dask.py (8),
simnet/cli.py (2) and the syscalls.py one (a fresh count: `mypy --strict | tail -1`).
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
RUFF_PENDING: set[str] = set()


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
