"""bench/p1_echo.py's quick path (simulated vs live echo), so the benchmark never rots.
Figures are checked for sanity only: a smoke run is far too small to say anything about speed."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import p1_echo  # noqa: E402


def test_p1_quick_path_measures_both_sides() -> None:
    figures = p1_echo.run(quick=True)
    assert figures["round_trips"] == 50 * 4
    (row,) = figures["rows"]
    assert row["id"] == "P1" and row["met"] in (True, False)
    assert 0 < row["figure"]["median"] < 10_000_000  # simulated round trips per wall second
    assert 0 < row["peer_figure"]["median"] < 10_000_000  # live
    assert row["ratio"]["median"] == row["figure"]["median"] / row["peer_figure"]["median"]
    assert any("P1" in line for line in p1_echo.report(figures))
