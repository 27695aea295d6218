"""bench/p5_record.py's quick path (realnet with and without --record). It uses wrk when
installed and the P1 echo load generator otherwise, so it always runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common  # noqa: E402
import p5_record  # noqa: E402


def _check(figures: dict) -> None:
    (row,) = figures["rows"]
    assert row["figure"]["median"] > 100 and row["peer_figure"]["median"] > 100
    assert 0 < row["ratio"]["median"] < 10
    assert figures["trace_records"] > 10 and figures["trace_bytes"] > 1000  # the recording happened


def test_p5_quick_path_records_a_trace_and_compares() -> None:
    _check(p5_record.run(quick=True))


def test_p5_falls_back_to_the_echo_load_without_wrk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "WRK", None)
    figures = p5_record.run(quick=True)
    _check(figures)
    assert "wrk absent" in figures["load"]
