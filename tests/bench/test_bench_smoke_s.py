"""bench/s_sweep.py's quick path: the sweep on two processes and on one, alternating, and the
checks that make its figure mean something (every seed passes, both sides agree)."""

from __future__ import annotations

import sys
from pathlib import Path

import attrs
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import s_sweep  # noqa: E402


def test_s_quick_path_sweeps_both_ways_and_reports_one_row() -> None:
    figures = s_sweep.run(quick=True)
    (row,) = figures["rows"]
    assert row["id"] == "S" and row["unit"] == "seeds/s"
    assert row["figure"]["median"] > 1 and row["peer_figure"]["median"] > 1
    assert 0 < row["ratio"]["median"] < 10
    assert row["met"] is (row["figure"]["median"] >= s_sweep.GOAL)
    assert "same syscalls" in figures["details"][0]


def test_s_refuses_a_sweep_whose_sides_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    real = s_sweep.timed

    def tampered(seeds: range, jobs: int) -> tuple[float, list]:
        seconds, results = real(seeds, jobs)
        if jobs == 1:
            results[0] = attrs.evolve(results[0], syscalls=results[0].syscalls + 1)
        return seconds, results

    monkeypatch.setattr(s_sweep, "timed", tampered)
    with pytest.raises(RuntimeError, match="other results"):
        s_sweep.run(quick=True)
