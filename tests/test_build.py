"""The compiled build (setup.py, simnet/_build.py) and its pure-Python fallback.

`make test` runs the suite twice, on the mypyc-compiled modules and with SIMNET_PURE_PYTHON=1 on
their sources, and tells each pass which it should be running (SIMNET_EXPECT_COMPILED): a build
that silently fell back to Python, or a switch that silently did not switch, fails here rather
than passing the suite on the wrong code. The two must also be the same program: one seed gives
byte-identical traces either way.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import simnet
from simnet._build import COMPILED_MODULES, PURE_ENV, pure_requested

REPO = Path(__file__).resolve().parents[1]


def _compiled_is_installed() -> bool:
    """Whether an extension for this Python sits beside every compiled module's source."""
    import importlib.machinery

    for name in COMPILED_MODULES:
        stem = REPO / name.replace(".", "/")
        if not any(stem.with_name(stem.name + suffix).exists() for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            return False
    return True


def _expected() -> bool:
    told = os.environ.get("SIMNET_EXPECT_COMPILED")
    if told is not None:
        return told == "1"
    return _compiled_is_installed() and not pure_requested()


def test_this_process_runs_the_build_it_was_told_to() -> None:
    assert simnet.compiled() is _expected(), (
        f"simnet.compiled() is {simnet.compiled()}; SIMNET_EXPECT_COMPILED={os.environ.get('SIMNET_EXPECT_COMPILED')}, "
        f"{PURE_ENV}={os.environ.get(PURE_ENV)} (a build that fell back to Python says why in pip's output)"
    )


@pytest.mark.parametrize("name", COMPILED_MODULES)
def test_every_listed_module_comes_from_the_same_build(name: str) -> None:
    # All or none: a compiled base class under a Python subclass (or the reverse) would not import.
    file = importlib.import_module(name).__file__ or ""
    assert file.endswith(".py") is not _expected(), file


def _run(seed: int, trace: Path, *, pure: bool) -> str:
    env = dict(os.environ)
    env.pop(PURE_ENV, None)
    if pure:
        env[PURE_ENV] = "1"
    code = (
        "import sys, simnet; from simnet.cli import main; print('compiled', simnet.compiled()); "
        "sys.exit(main(sys.argv[1:]))"
    )
    argv = ["run", "--clients", "6", "--requests", "4", "--seed", str(seed), "--loss", "0.05",
            "--reorder", "0.05", "--short-io", "0.2", "--trace", str(trace)]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.skipif(not _compiled_is_installed(), reason="no compiled build installed to compare the sources with")
@pytest.mark.parametrize("seed", [1, 5])
def test_compiled_and_python_runs_write_the_same_trace(tmp_path: Path, seed: int) -> None:
    compiled_out = _run(seed, tmp_path / "compiled.jsonl", pure=False)
    python_out = _run(seed, tmp_path / "python.jsonl", pure=True)
    assert compiled_out.startswith("compiled True") and python_out.startswith("compiled False")
    compiled_trace = (tmp_path / "compiled.jsonl").read_bytes()
    assert compiled_trace == (tmp_path / "python.jsonl").read_bytes(), f"seed {seed}: the traces differ"
    assert compiled_trace.count(b"\n") > 50
