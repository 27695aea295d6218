"""bench/compare.py: a side-by-side run against a commit (quick sizes), and its one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "bench/compare.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def worktrees() -> list[str]:
    listing = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True, check=True)
    return listing.stdout.splitlines()


def test_quick_comparison_with_head_gives_every_measure_and_leaves_no_worktree() -> None:
    before = worktrees()
    result = compare("HEAD", "--quick", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("p1", "echo-replay", "http-replay"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name))
        base, this = (float(x.replace(",", "")) for x in re.findall(r"(?:base|this)\s+([\d,.]+)", line))
        assert base > 0 and this > 0, line
        assert "as fast" in line
    assert worktrees() == before


def test_bad_input_is_one_line() -> None:
    for args, what in ((["no-such-commit"], "not a commit"), (["HEAD", "--only", "p9"], "unknown measure")):
        result = compare(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert what in result.stderr and len(result.stderr.strip().splitlines()) <= 2  # usage + error
