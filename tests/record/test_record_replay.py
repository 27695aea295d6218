"""`simnet record -- python app.py` on real loopback sockets, then `simnet replay T -- python app.py`
with no network: exact replay, a changed program caught at its first differing send, signals,
kill -9, and bad input (one line, exit 2)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simnet.server import syscalls as sc
from simnet.trace import TraceError, read_trace

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APP = HERE / "programs" / "streams_app.py"
SIMNET = [sys.executable, "-m", "simnet.cli"]
TIMEOUT = 30


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


class Recording:
    """A program running under `simnet record`, its port, and how to stop it."""

    def __init__(self, trace: Path, program: Path, env: dict[str, str] | None = None) -> None:
        self.trace = trace
        self.proc = subprocess.Popen(
            [*SIMNET, "record", "--trace", str(trace), "--", "python", str(program), "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=program.parent, env=env or _env(),
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # "listening PORT", or EOF if it failed
        if not line.startswith("listening"):
            self.proc.kill()
            raise AssertionError(f"the program did not start: {line!r} {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
        self.port = int(line.split()[1])

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def recording(tmp_path: Path) -> Iterator[Callable[..., Recording]]:
    made: list[Recording] = []

    def start(program: Path = APP, name: str = "live.jsonl", **env: str) -> Recording:
        rec = Recording(tmp_path / name, program, _env(**env))
        made.append(rec)
        return rec

    yield start
    for rec in made:
        if rec.proc.poll() is None:
            rec.proc.kill()
            rec.proc.wait(timeout=TIMEOUT)


def _drive(port: int) -> None:
    """Two keep-alive requests from http.client, then a raw client that half-closes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    for path in ("/", "/again"):
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"hello from asyncio\n"
    conn.close()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        raw.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw.shutdown(socket.SHUT_WR)
        data = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            chunk = raw.recv(65536)
            if not chunk:
                break
            data += chunk
        assert data.endswith(b"hello from asyncio\n")


def _replay(trace: Path, program: Path = APP, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIMNET, "replay", str(trace), *extra, "--", "python", str(program), "0"],
        capture_output=True, text=True, cwd=program.parent, env=_env(**env), timeout=TIMEOUT,
    )  # fmt: skip


def _records(trace: Path) -> list[object]:
    _, records = read_trace(trace)
    return [r.request for r in records]


def test_a_recorded_program_replays_exactly_with_no_network(recording: Callable[..., Recording]) -> None:
    rec = recording()
    _drive(rec.port)
    assert rec.stop(signal.SIGINT) == 0  # asyncio.run's SIGINT handling, as without simnet
    header, records = read_trace(rec.trace)
    assert header.backend == "record" and header.program is not None
    assert header.program["argv"][0].endswith("streams_app.py") and header.program["hash_seed"]
    calls = [r.request for r in records]
    kinds = {type(c).__name__ for c in calls}
    assert {"OpenSocket", "Bind", "Listen", "Accept", "Recv", "Send", "EpollWait", "Clock", "Signal"} <= kinds
    assert type(calls[-1]) is sc.Exit
    sends = [c.data for c in calls if type(c) is sc.Send and c.data.startswith(b"HTTP/1.1 200")]
    assert len(sends) == 3
    proc = _replay(rec.trace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last == f"{rec.trace}: {len(calls) - 1} syscalls matched; the program exited as recorded"


def test_a_program_changed_after_recording_diverges_at_its_first_differing_send(
    recording: Callable[..., Recording],
) -> None:
    rec = recording()
    _drive(rec.port)
    rec.stop()
    proc = _replay(rec.trace, APP, SIMNET_TEST_BODY="hello from asyncio!\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = proc.stdout.splitlines()
    line = next(text for text in report if "divergence" in text)
    first = next(r for r in read_trace(rec.trace)[1] if type(r.request) is sc.Send and b"200 OK" in r.request.data)
    assert line.startswith(f"{rec.trace}:{first.line}: divergence at seq {first.seq}: the program did Send(")
    # The first differing byte: the Content-Length, 20 where 19 was recorded.
    assert "data differs at byte 33: the program's b'20\\r\\n" in line and "the trace's b'19\\r\\n" in line
    assert line.endswith("streams_app.py:19 in handle")  # the program's own line: its writer.write
    assert "Traceback" not in proc.stdout + proc.stderr


def test_sigterm_ends_the_program_and_leaves_a_complete_trace(recording: Callable[..., Recording]) -> None:
    rec = recording(name="term.jsonl")
    _drive(rec.port)
    assert rec.stop(signal.SIGTERM) == -signal.SIGTERM  # killed by SIGTERM, as it would be anyway
    calls = _records(rec.trace)  # every line readable, nothing cut
    assert calls[-1] == sc.Signal(signum=signal.SIGTERM)
    proc = _replay(rec.trace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("then the program was killed by signal 15, as recorded")


def test_after_kill_9_every_complete_line_is_readable_and_replays(recording: Callable[..., Recording]) -> None:
    rec = recording(name="killed.jsonl")
    _drive(rec.port)
    time.sleep(0.2)  # idle in epoll_wait: the recorder flushed before waiting
    rec.stop(signal.SIGKILL)
    header, records = read_trace(rec.trace)
    got = []
    try:
        for record in records:
            got.append(record)
    except TraceError as exc:  # at worst the last line was cut mid-write
        assert "truncated last line" in str(exc)
    assert sum(1 for r in got if type(r.request) is sc.Send) == 3  # everything up to the idle wait
    proc = _replay(rec.trace)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "syscalls matched; the trace ends" in proc.stdout


# -- bad input: one line, exit status 2, no traceback ------------------------------------------------


def _one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr.strip()


def test_recording_a_program_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SIMNET, "record", "--trace", str(tmp_path / "t.jsonl"), "--", "python", str(tmp_path / "nope.py")],
        capture_output=True, text=True, env=_env(), timeout=TIMEOUT,
    )  # fmt: skip
    assert _one_line_exit_2(proc) == f"simnet record: {tmp_path / 'nope.py'}: no such program (not a file)"


def test_replaying_a_program_that_does_not_exist_is_one_line(
    recording: Callable[..., Recording], tmp_path: Path
) -> None:
    rec = recording()
    rec.stop()
    proc = _replay(rec.trace, tmp_path / "nope.py")
    assert "no such program" in _one_line_exit_2(proc)


def test_a_trace_recorded_from_another_program_is_refused(
    recording: Callable[..., Recording], tmp_path: Path
) -> None:
    rec = recording()
    rec.stop()
    other = tmp_path / "other_app.py"
    shutil.copy(APP, other)
    proc = _replay(rec.trace, other)
    assert _one_line_exit_2(proc) == f"{rec.trace}:1: recorded from program 'streams_app.py', not 'other_app.py'"


def test_a_program_that_exits_before_its_first_recorded_call_is_refused(
    recording: Callable[..., Recording], tmp_path: Path
) -> None:
    rec = recording()
    rec.stop()
    early = tmp_path / "streams_app.py"  # the same name, but it exits at once
    early.write_text("import sys\nsys.exit(3)\n")
    proc = _replay(rec.trace, early)
    line = _one_line_exit_2(proc)
    assert line.startswith(f"{rec.trace}:3: the program exited (status 3) before its first recorded call")


_HEADER = (
    '{"format":"simnet-trace","version":1,"backend":"record","program":{"argv":["a.py"]},'
    '"seed":null,"clock_origin":0}\n'
)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"hello": "world"}\n', "not a simnet trace"),
        ("", "empty file"),
        (_HEADER + '{"seq":1,"t":1,"call":"Clock","args":{"kind":"time"},"ret":5', None),
    ],
)  # fmt: skip
def test_foreign_and_truncated_traces(tmp_path: Path, content: str, problem: str | None) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text(content)
    program = tmp_path / "a.py"
    program.write_text("import time\ntime.time()\n")
    proc = _replay(trace, program)
    if problem is None:  # cut mid-line: replays as far as it goes, says where it was cut
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 syscalls matched; the trace ends (the trace was cut short" in proc.stdout
        assert f"{trace}:2: truncated last line" in proc.stdout
    else:
        assert problem in _one_line_exit_2(proc)


def test_a_machine_trace_is_not_replayed_as_a_program(tmp_path: Path) -> None:
    machine = REPO / "traces" / "curl_post.jsonl"
    proc = _replay(machine, APP)
    assert "a trace of the server machine" in _one_line_exit_2(proc)
    proc = subprocess.run([*SIMNET, "replay", str(REPO / "traces" / "curl_post.jsonl")], capture_output=True,
                          text=True, env=_env(), timeout=TIMEOUT)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


AIOHTTP_APP = HERE / "programs" / "aiohttp_app.py"


def test_an_aiohttp_app_under_curl_and_http_client_replays_exactly(recording: Callable[..., Recording]) -> None:
    pytest.importorskip("aiohttp")
    rec = recording(program=AIOHTTP_APP, name="aiohttp.jsonl")
    conn = http.client.HTTPConnection("127.0.0.1", rec.port, timeout=TIMEOUT)
    conn.request("GET", "/")
    assert conn.getresponse().read() == b"hello from aiohttp\n"
    conn.request("POST", "/echo", body=b"x" * 100_000)  # several reads, one large send
    assert conn.getresponse().read() == b"x" * 100_000
    conn.close()
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", f"http://127.0.0.1:{rec.port}/"], capture_output=True, timeout=TIMEOUT)
        assert out.stdout == b"hello from aiohttp\n"
    assert rec.stop(signal.SIGINT) == 0
    proc = _replay(rec.trace, AIOHTTP_APP)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("syscalls matched; the program exited as recorded")
