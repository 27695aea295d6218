"""Every trace committed under traces/ (live recordings against realnet) re-simulates in simnet to
the recorded response streams, as recorded and with perturbed buffers and latency.

Until traces are committed there is nothing to check: that case is one test that is *skipped*
with its reason (pytest -ra prints it), never zero tests; and once any *.jsonl exists under
traces/, each is a test of its own that passes or fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simnet.sim.resim import CLOSE, EQUAL, RESET, resimulate

TRACE_DIR = Path(__file__).resolve().parents[2] / "traces"
# Machine traces only: program traces (traces/aio/) are re-run by tests/record.
TRACES = sorted(TRACE_DIR.glob("*.jsonl")) if TRACE_DIR.is_dir() else []
PERTURBATIONS: list[dict[str, Any]] = [{}, {"rcvbuf": 4096, "sndbuf": 4096, "latency": "1ms", "seed": 1}]


@pytest.mark.parametrize("perturb", PERTURBATIONS, ids=["as-recorded", "perturbed"])
@pytest.mark.parametrize(
    "path", TRACES or [None], ids=[str(p.relative_to(TRACE_DIR)) for p in TRACES] or ["no-traces"]
)
def test_committed_trace_resimulates_to_the_recorded_streams(
    path: Path | None, perturb: dict[str, Any]
) -> None:
    if path is None:
        pytest.skip(f"no {TRACE_DIR.name}/*.jsonl committed yet: nothing to re-simulate")
    report = resimulate(path, **perturb)
    assert report.ok, report.format()
    assert report.finished, report.format()
    for conn in report.connections:
        if conn.ending not in (RESET, CLOSE):
            assert conn.status == EQUAL, conn.format()
