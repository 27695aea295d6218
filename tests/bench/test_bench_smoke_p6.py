"""bench/p6_memory.py's quick path (memory per idle connection, cost per event as connections grow)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import p6_memory  # noqa: E402


def test_p6_quick_path_measures_memory_and_event_cost() -> None:
    figures = p6_memory.run(quick=True)
    rows = {r["id"]: r for r in figures["rows"]}
    per = rows["P6a"]["figure"]["median"]
    assert 500 < per < 200_000  # bytes per idle connection: both sockets + machine + app
    kernel = figures["idle"]["kernel"]["per_connection"]
    assert 0 < kernel < per  # the bare kernel pair costs less than the full setup
    assert 0 < rows["P6b"]["figure"]["median"] < 1e7  # ns per simpy event
    assert 0 < rows["P6b"]["peer_figure"]["median"] < 1e7
    assert any("P6a" in line for line in p6_memory.report(figures))
