"""`kill -9` of a recorder leaves every complete line of its trace readable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simnet.trace import TraceError, read_trace

HERE = Path(__file__).parent

# The child records the fake echo server against the fake kernel for (nearly) ever, with a small
# buffer so that many writes happen -- one of them may be cut by the kill.
CHILD = """
import sys
from trace_fakes import record_fake_run
record_fake_run(sys.argv[1], seed=11, syscalls=10**9, payload_scale=40, buffer_bytes=4096)
"""


@pytest.mark.parametrize("kill_at_bytes", [200_000, 1_000_000])
def test_kill_9_during_recording_loses_only_the_unwritten_tail(tmp_path: Path, kill_at_bytes: int) -> None:
    path = tmp_path / "killed.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], cwd=HERE)
    try:
        deadline = time.monotonic() + 60
        while not path.exists() or path.stat().st_size < kill_at_bytes:
            assert child.poll() is None, "the recorder exited on its own"
            assert time.monotonic() < deadline, "the recorder wrote too little in 60 s"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    # Independently of our reader: every complete line is a JSON object.
    for line in complete:
        json.loads(line)

    header, records = read_trace(path)
    seqs = []
    try:
        for record in records:
            seqs.append(record.seq)
    except TraceError as exc:
        # Only the very last line may be unreadable, and only because the kill cut it short.
        assert not data.endswith(b"\n")
        assert exc.line == len(complete) + 1 and "truncated last line" in exc.problem
    else:
        assert data.endswith(b"\n")
    assert seqs == list(range(1, len(complete)))  # every complete record line, in order
    assert len(seqs) > 100
