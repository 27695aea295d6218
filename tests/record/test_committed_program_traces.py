"""The program traces under traces/aio/ (re-recorded by traces/aio/record.sh from curl,
http.client and wrk) replay exactly against the programs that made them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "record" / "programs"
TRACES = [
    ("streams_curl.jsonl", "streams_app.py", "18801"),
    ("aiohttp_curl.jsonl", "aiohttp_app.py", "18802"),
    ("streams_wrk.jsonl", "streams_app.py", "18803"),  # wrk -t1 -c2, 200 responses
]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="recorded on 3.11: asyncio's calls differ by version")
@pytest.mark.parametrize(("trace", "program", "port"), TRACES)
def test_a_committed_program_trace_replays_exactly(trace: str, program: str, port: str) -> None:
    if program.startswith("aiohttp"):
        pytest.importorskip("aiohttp")
    proc = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "replay", str(REPO / "traces" / "aio" / trace), "--", "python",
         str(PROGRAMS / program), port],
        capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syscalls matched; then the program was killed by signal 15, as recorded" in proc.stdout
