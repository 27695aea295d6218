"""bench/sweep_dask.py's quick path: both sides run, agree seed for seed, and are reported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

pytest.importorskip("distributed", reason="the dask extra is not installed: pip install 'simnet[dask]'")

import sweep_dask  # noqa: E402


def test_sweep_dask_quick_path_measures_both_sides() -> None:
    results, overhead_ms = sweep_dask.run(quick=True)
    assert 0 < overhead_ms < 1000
    rows = [row for result in results for row in result["rows"]]
    assert [row["workers"] for row in rows] == [1, 2, 1, 2]
    assert all(row["jobs"] > 0 and row["dask"] > 0 and row["dask_with_start"] > 0 for row in rows)
    assert any("| 2 |" in line for line in sweep_dask.report(results, overhead_ms))
