"""simnet.aio.run(..., trace=path): every socket and epoll call of every simulated host, in the
trace format's program traces (docs/trace-format.md), and `simnet show` drawing them."""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
from pathlib import Path

import pytest

import simnet.aio as sa
from simnet.server import syscalls as sc
from simnet.trace import read_trace
from simnet.trace.show import render_trace

REPO = Path(__file__).resolve().parents[2]


async def _upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    data = await reader.read(100)
    writer.write(data.upper())
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _serve() -> None:
    server = await asyncio.start_server(_upper, "0.0.0.0", 8080)
    async with server:
        await server.serve_forever()


async def _main() -> bytes:
    sa.spawn(_serve(), host="server")
    await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("server", 8080)
    writer.write(b"hello")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


def _run(path: Path, **options: object) -> bytes:
    return sa.run(_main(), seed=3, trace=str(path), **options)  # type: ignore[arg-type]


def test_a_traced_run_records_every_hosts_socket_calls_with_the_host_named(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    assert _run(path) == b"HELLO"
    header, records = read_trace(path)
    assert header.backend == "simnet.aio" and header.is_program and header.seed == 3
    assert header.program is not None and header.program["argv"]
    recs = list(records)
    assert type(recs[-1].request) is sc.Exit  # the loop closed: the trace is complete
    calls = [(r.host, type(r.request).__name__) for r in recs[:-1]]
    assert ("server", "Listen") in calls and ("server", "Accept") in calls
    assert ("main", "Connect") in calls and ("main", "GetPeerName") in calls
    assert all(host in ("main", "server") for host, _ in calls)
    # The bytes each side wrote and read, and asyncio's non-blocking connect as Linux reports it.
    sends = {(r.host, r.request.data) for r in recs if type(r.request) is sc.Send}
    assert sends == {("main", b"hello"), ("server", b"HELLO")}
    connect = next(r for r in recs if type(r.request) is sc.Connect)
    assert connect.result is not None and connect.result.error == "EINPROGRESS"
    # Virtual time, never going back.
    times = [r.result.now for r in recs if r.result is not None]
    assert times == sorted(times) and times[-1] < 1_000_000_000


def test_the_same_seed_writes_the_same_trace(tmp_path: Path) -> None:
    _run(tmp_path / "a.jsonl")
    _run(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_tracing_changes_nothing_the_program_sees(tmp_path: Path) -> None:
    # The same run with and without a trace: the segment log is the same.
    traced = sa.new_event_loop(seed=5, log_segments=True, trace=str(tmp_path / "t.jsonl"))
    plain = sa.new_event_loop(seed=5, log_segments=True)
    logs = []
    for loop in (traced, plain):
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(_main())
            logs.append(loop.world.net.format_segment_log())
        finally:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            asyncio.set_event_loop(None)
            loop.close()
    assert logs[0] == logs[1] and logs[0]


def test_show_draws_connections_accepted_and_connected_per_host(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _run(path, loss=0.0)
    text = render_trace(path)
    assert "simnet.aio trace of program" in text
    assert "host server" in text and "host main" in text
    assert "connection #1 on main" in text and "(connected)" in text
    assert "connection #2 on server" in text and "accept from 10.0.0.1:" in text
    assert 'send 5 bytes "hello"' in text and 'recv 5 bytes "HELLO"' in text
    assert "connections  1 accepted, 1 connected, 2 closed" in text
    assert "the program exited" in text


def test_simnet_show_command_reads_a_program_trace(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _run(path)
    proc = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "show", str(path), "--summary"],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 accepted, 1 connected" in proc.stdout


def test_a_trace_of_a_failing_run_keeps_what_happened(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"

    async def refused() -> None:
        sa.address("server")
        await asyncio.open_connection("server", 9)

    with pytest.raises(ConnectionRefusedError):
        sa.run(refused(), trace=str(path))
    _, records = read_trace(path)
    # A non-blocking connect: EINPROGRESS, then SO_ERROR says what became of it.
    outcome = [(type(r.request).__name__, r.result.error or r.result.value) for r in records if r.result]
    assert ("Connect", "EINPROGRESS") in outcome
    assert ("GetSockOpt", errno.ECONNREFUSED) in outcome
