"""The same hostile inputs against a live `realnet serve` on real sockets, recorded and replayed.

A handful of hypothesis examples (each a real connection to 127.0.0.1) against one server:
each bad request gets its answers and a 4xx/505 with a close; a torn one sent with a half-close
gets the complete answers and an EOF. Afterwards the server still answers GET /, exits 0 on
SIGTERM, and its recording of the whole session replays exactly.
"""

from __future__ import annotations

import importlib.util
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simnet.drivers.replay import replay_exact

from .http_inputs import MAX_BODY, MAX_HEADER, Hostile, chunkings, hostile_inputs, parse_responses

CLOSING_ERRORS = (400, 413, 431, 505)
ROOT = Path(__file__).resolve().parents[2]


def _abuse() -> Any:
    spec = importlib.util.spec_from_file_location("abuse", ROOT / "bench" / "abuse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    trace = tmp_path_factory.mktemp("realnet-fuzz") / "fuzz.jsonl"
    server = _abuse().Server(
        "--max-header-bytes", str(MAX_HEADER), "--max-body-bytes", str(MAX_BODY), "--max-response-bytes", "4096",
        "--header-timeout", "1", "--idle-timeout", "2", "--linger-timeout", "0.5", record=trace,
    )  # fmt: skip
    server.start()
    try:
        yield server, trace
    finally:
        server.kill()


def exchange(addr: tuple[str, int], pieces: list[bytes], half_close: bool) -> tuple[bytes, str]:
    """Send the pieces (a millisecond apart), maybe half-close, read until the server closes."""
    sock = socket.create_connection(addr, timeout=5.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = bytearray()
    try:
        try:
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.001)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before we were done sending; the answer is still to read
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return bytes(out), "reset"
            if not data:
                return bytes(out), "eof"
            out += data
    finally:
        sock.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile=hostile_inputs(), data=st.data())
def test_live_server_answers_hostile_input_with_an_error_and_a_close(
    live: tuple[Any, Path], hostile: Hostile, data: st.DataObject
) -> None:
    server, _ = live
    pieces = data.draw(chunkings(hostile.data), label="pieces")
    # A bad request is closed by the server on its own; a torn one only at our EOF (or its timers).
    half_close = True if not hostile.bad else data.draw(st.booleans(), label="half_close")
    out, end = exchange(server.addr, pieces, half_close)
    assert end == "eof", (end, out[-200:], hostile)
    responses = [r for r in parse_responses(out) if r.status >= 200]
    good, rest = responses[: hostile.good_before], responses[hostile.good_before :]
    assert len(good) == hostile.good_before and all(r.status in (200, 404) for r in good), (responses, hostile)
    if hostile.bad:
        assert len(rest) == 1 and rest[0].status in CLOSING_ERRORS and rest[0].close, (rest, hostile)
    else:
        assert rest == [], (rest, hostile)


def test_live_server_still_serves_then_exits_0_and_its_recording_replays(live: tuple[Any, Path]) -> None:
    server, trace = live
    out, end = exchange(server.addr, [b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], False)
    assert end == "eof" and [r.status for r in parse_responses(out)] == [200]
    assert server.stop() == 0, server.stderr
    assert server.stderr == ""
    report = replay_exact(trace)
    assert report.ok and report.exited, report.format()
