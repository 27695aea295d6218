"""extract_clients: the clients' behaviour, taken back out of the server's syscalls."""

from __future__ import annotations

from pathlib import Path

import pytest

from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.sim.resim import CLOSE, CLOSE_ON_EOF, HALF_CLOSE, OPEN, RESET, SERVER_CLOSE, extract_clients
from simnet.trace import Record, TraceError, read_trace

from ._recording import Script, get, post_echo, record_scripted

LFD, EPFD = 3, 4
MS = 1_000_000


def records(*pairs: tuple[object, Result | None]) -> list[Record]:
    return [Record(seq=i + 1, request=req, result=res) for i, (req, res) in enumerate(pairs)]


def ok(value: object, ms: float, shutdown: bool = False) -> Result:
    return Result(value=value, now=int(ms * MS), shutdown=shutdown)


def err(name: str, ms: float) -> Result:
    return Result(error=name, now=int(ms * MS))


def test_connections_are_numbered_by_accept_even_when_the_fd_is_reused() -> None:
    recs = records(
        (sc.Accept(fd=LFD), ok((5, ("10.0.0.2", 40001)), 1)),
        (sc.Recv(fd=5, size=100), ok(b"hello", 2)),
        (sc.Recv(fd=5, size=100), err("EAGAIN", 2)),
        (sc.Send(fd=5, data=b"hello"), ok(5, 2)),
        (sc.Recv(fd=5, size=100), ok(b"", 3)),
        (sc.Close(fd=5), ok(None, 3)),
        (sc.Accept(fd=LFD), ok((5, ("10.0.0.3", 40002)), 4)),
        (sc.Recv(fd=5, size=100), ok(b"abc", 5)),
        (sc.Send(fd=5, data=b"0123456789"), ok(4, 5)),  # partial: only 0123 went out
        (sc.Send(fd=5, data=b"456789"), err("EAGAIN", 5)),
        (sc.Send(fd=5, data=b"456789"), ok(6, 7)),
        (sc.Recv(fd=5, size=100), err("ECONNRESET", 8)),
        (sc.Close(fd=5), ok(None, 8)),
        (sc.Accept(fd=LFD), err("ECONNABORTED", 9)),
        (sc.Accept(fd=LFD), err("EAGAIN", 9)),
    )
    first, second = extract_clients(recs, origin=0)
    assert (first.index, first.fd, first.peer) == (1, 5, ("10.0.0.2", 40001))
    assert [(c.at_ns, c.data) for c in first.chunks] == [(2 * MS, b"hello")]
    assert first.response == b"hello" and first.eof_ns == 3 * MS and first.ending == HALF_CLOSE
    assert first.closed_ns == 3 * MS and first.read_rate is None
    assert (second.index, second.peer, second.accepted_ns) == (2, ("10.0.0.3", 40002), 4 * MS)
    assert second.response == b"0123456789"  # data[:result] of each Send
    assert second.reset_ns == 8 * MS and second.reset_error == "ECONNRESET" and second.ending == RESET
    assert second.send_blocks == 2
    # Blocked at 5 ms with 4 bytes out; 10 bytes out at 7 ms: 6 bytes in 2 ms.
    assert second.read_rate == pytest.approx(3000.0)


def test_times_are_taken_from_the_origin_and_default_to_the_first_record() -> None:
    recs = records(
        (sc.Accept(fd=LFD), ok((7, ("10.0.0.2", 1)), 1000)),
        (sc.Recv(fd=7, size=9), ok(b"x", 1001)),
    )
    assert extract_clients(recs)[0].accepted_ns == 0
    assert extract_clients(recs)[0].chunks[0].at_ns == 1 * MS
    assert extract_clients(recs, origin=500 * MS)[0].accepted_ns == 500 * MS


def test_endings() -> None:
    recs = records(
        # 5: the server closed first (SHUT_WR), the client answered with its FIN
        (sc.Accept(fd=LFD), ok((5, ("10.0.0.2", 1)), 1)),
        (sc.Shutdown(fd=5, how=sc.SHUT_WR), ok(None, 2)),
        (sc.Recv(fd=5, size=9), ok(b"", 3)),
        (sc.Close(fd=5), ok(None, 3)),
        # 6: FIN, then the response was refused: the client closed both directions
        (sc.Accept(fd=LFD), ok((6, ("10.0.0.2", 2)), 4)),
        (sc.Recv(fd=6, size=9), ok(b"", 5)),
        (sc.Send(fd=6, data=b"late"), err("EPIPE", 6)),
        (sc.Close(fd=6), ok(None, 6)),
        # 7: RST reported by epoll
        (sc.Accept(fd=LFD), ok((7, ("10.0.0.2", 3)), 7)),
        (sc.EpollWait(epfd=EPFD, max_events=8, timeout_ms=-1), ok(((7, sc.EPOLLERR | sc.EPOLLHUP),), 8)),
        (sc.Close(fd=7), ok(None, 8)),
        # 8: closed by the server at shutdown; 9: still open at the end of the trace
        (sc.Accept(fd=LFD), ok((8, ("10.0.0.2", 4)), 9)),
        (sc.Accept(fd=LFD), ok((9, ("10.0.0.2", 5)), 9)),
        (sc.Close(fd=8), ok(None, 10, shutdown=True)),
    )
    clients = extract_clients(recs, origin=0)
    assert [c.ending for c in clients] == [CLOSE_ON_EOF, CLOSE, RESET, SERVER_CLOSE, OPEN]
    assert clients[2].reset_error == "EPOLLERR"
    assert clients[3].closed_in_shutdown


def test_a_recv_on_an_fd_no_accept_returned_is_bad_input() -> None:
    recs = records((sc.Accept(fd=LFD), err("EAGAIN", 1)), (sc.Recv(fd=5, size=9), ok(b"x", 2)))
    with pytest.raises(TraceError, match=r"^t\.jsonl:3: Recv on fd 5, which no Accept returned$"):
        extract_clients(recs, path="t.jsonl")


def test_a_recorded_run_gives_back_what_each_client_sent_and_read(tmp_path: Path) -> None:
    scripts = [
        Script([("send", get("/") + get("/bytes/30000")), ("read", 30100), ("send", post_echo(b"y" * 500)),
                ("read", 500), ("shut_wr",), ("read_all",), ("close",)]),
        Script([("send", get("/bytes/20000", close=True)), ("read_all",), ("close",)], start=0.003),
        Script([("send", get("/bytes/400000")), ("read", 5000), ("reset",)], start=0.005),
    ]  # fmt: skip
    path = record_scripted(tmp_path / "t.jsonl", scripts, rcvbuf=4096, sndbuf=4096)
    header, recs = read_trace(path)
    clients = extract_clients(recs, origin=header.clock_origin)
    assert [c.ending for c in clients] == [HALF_CLOSE, CLOSE_ON_EOF, RESET]
    for script, client in zip(scripts, clients):
        assert b"".join(c.data for c in client.chunks) == bytes(script.sent)
        assert [c.at_ns for c in client.chunks] == sorted(c.at_ns for c in client.chunks)
    for script, client in zip(scripts[:2], clients[:2]):
        assert client.response == bytes(script.received)
        assert client.send_blocks > 0 and client.read_rate is not None
    assert clients[2].response.startswith(bytes(scripts[2].received))
