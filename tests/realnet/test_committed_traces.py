"""Every trace recorded live from real clients (traces/*.jsonl, made by traces/record.sh) replays
exactly: the pure machine, handed the recorded results, asks for every recorded syscall."""

from __future__ import annotations

from pathlib import Path

import pytest

from simnet.drivers.replay import replay_exact

TRACES = sorted((Path(__file__).resolve().parents[2] / "traces").glob("*.jsonl"))


def test_there_are_committed_traces() -> None:
    assert len(TRACES) >= 7, "traces/*.jsonl are missing; run traces/record.sh (make traces)"


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_committed_trace_replays_exactly(path: Path) -> None:
    report = replay_exact(path)
    assert report.ok, report.format()
    assert report.exited, report.format()
    assert report.header.backend == "realnet"
    records = len(path.read_bytes().splitlines())
    assert report.matched == records - 2, report.format()  # all but the header and Exit
    assert path.stat().st_size < 1 << 20
