"""`simnet show`: where partial writes, EAGAIN, EPOLLOUT, EOF and RST happened, per connection."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from trace_fakes import record_fake_run

from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import TraceHeader, TraceWriter
from simnet.cli import main
from simnet.trace.show import render_trace

MS = 1_000_000
ORIGIN = 5_000 * MS
IN = sc.EPOLLIN | sc.EPOLLRDHUP
BODY = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 99_981  # 100000 bytes


def write_scenario(target: Path | io.BytesIO, *, rearm_out: bool = True) -> None:
    """Two connections: #1 gets a 100000-byte response out in three sends, waiting for EPOLLOUT
    in between, then the peer closes (EOF); #2 is reset by its peer (RST)."""
    header = TraceHeader.create(
        backend="realnet", app="http", server_config={"port": 8080}, seed=None, clock_origin=ORIGIN
    )
    t = ORIGIN

    def at(ms: float) -> int:
        return t + int(ms * MS)

    wait = sc.EpollWait(epfd=4, max_events=64, timeout_ms=-1)
    script = [
        (sc.Socket(), Result(value=3, now=at(0))),
        (sc.Bind(fd=3, host="127.0.0.1", port=8080), Result(now=at(0))),
        (sc.Listen(fd=3, backlog=128), Result(now=at(0))),
        (sc.EpollCreate(), Result(value=4, now=at(0))),
        (sc.EpollCtl(epfd=4, op="ADD", fd=3, mask=sc.EPOLLIN), Result(now=at(0))),
        (wait, Result(value=((3, sc.EPOLLIN),), now=at(1))),
        (sc.Accept(fd=3), Result(value=(5, ("10.0.0.2", 40001)), now=at(1))),
        (sc.EpollCtl(epfd=4, op="ADD", fd=5, mask=IN), Result(now=at(1))),
        (sc.Accept(fd=3), Result(value=(6, ("10.0.0.3", 40002)), now=at(1))),
        (sc.EpollCtl(epfd=4, op="ADD", fd=6, mask=IN), Result(now=at(1))),
        (sc.Accept(fd=3), Result(error="EAGAIN", now=at(1))),
        (wait, Result(value=((5, sc.EPOLLIN), (6, sc.EPOLLIN | sc.EPOLLRDHUP)), now=at(2))),
        (sc.Recv(fd=5, size=65536), Result(value=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", now=at(2))),
        (sc.Recv(fd=5, size=65536), Result(error="EAGAIN", now=at(2))),
        (sc.Send(fd=5, data=BODY), Result(value=32741, now=at(2))),
        (sc.Send(fd=5, data=BODY[32741:]), Result(error="EAGAIN", now=at(2))),
    ]
    if rearm_out:
        script.append((sc.EpollCtl(epfd=4, op="MOD", fd=5, mask=IN | sc.EPOLLOUT), Result(now=at(2))))
    script += [
        (sc.Recv(fd=6, size=65536), Result(error="ECONNRESET", now=at(2))),
        (sc.Close(fd=6), Result(now=at(2))),
        (wait, Result(value=((5, sc.EPOLLOUT),) if rearm_out else (), now=at(4.5))),
    ]
    if rearm_out:
        script += [
            (sc.Send(fd=5, data=BODY[32741:]), Result(value=67259, now=at(4.5))),
            (sc.EpollCtl(epfd=4, op="MOD", fd=5, mask=IN), Result(now=at(4.5))),
            (wait, Result(value=((5, sc.EPOLLIN | sc.EPOLLRDHUP),), now=at(7))),
            (sc.Recv(fd=5, size=65536), Result(value=b"", now=at(7))),
            (sc.Close(fd=5), Result(now=at(7), shutdown=True)),
        ]
    with TraceWriter(target, header) as writer:
        for request, result in script:
            writer.record(request, result)
        if rearm_out:
            writer.record(sc.Close(fd=3), Result(now=at(8), shutdown=True))
            writer.record_exit()


def section(text: str, title: str) -> list[str]:
    """The lines of one block of `show` output, without its leading time and seq columns."""
    block = text.split("\n\n")
    lines = next(b for b in block if b.startswith(title)).splitlines()
    return [re.sub(r"^\s+[+-]\d+\.\d{3}ms  #\d+\s+", "", line) for line in lines[1:]]


def test_each_connection_tells_its_story(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_scenario(path)
    text = render_trace(path)
    assert text.splitlines()[0] == f"{path}: realnet trace of app 'http', seed -, 27 records over 8.000ms"
    assert (
        "connection #1: fd 5, peer 10.0.0.2:40001, 27 bytes in, 100000 bytes out, peer sent EOF, closed"
        in text
    )
    assert section(text, "connection #1") == [
        "accept from 10.0.0.2:40001 -> fd 5",
        "epoll ADD IN|RDHUP",
        "epoll reports IN",
        'recv 27 bytes "GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"',
        "recv EAGAIN: nothing more to read for now",
        "send 32741 of 100000 bytes: partial, the send buffer is full",
        "send EAGAIN: 0 of 67259 bytes, the send buffer is full",
        "epoll MOD IN|OUT|RDHUP (+OUT: waiting for EPOLLOUT)",
        "epoll reports OUT: EPOLLOUT after 2.500ms (blocked since #15)",
        'send 67259 bytes "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..."',
        "epoll MOD IN|RDHUP (-OUT)",
        "epoll reports IN|RDHUP",
        "recv EOF: the peer closed its side (FIN)",
        "close",
    ]
    assert section(text, "connection #2") == [
        "accept from 10.0.0.3:40002 -> fd 6",
        "epoll ADD IN|RDHUP",
        "epoll reports IN|RDHUP",
        "recv ECONNRESET: RST: the peer reset the connection",
        "close",
    ]


def test_times_are_relative_to_the_clock_origin(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_scenario(path)
    text = render_trace(path)
    assert "       +2.000ms  #15     send 32741 of 100000 bytes" in text
    assert "       +4.500ms  #20     epoll reports OUT" in text


def test_the_summary_counts_calls_errors_and_waits(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_scenario(path)
    summary = section(render_trace(path), "summary")
    assert summary == [
        "  syscalls     26: EpollCtl 5  EpollWait 4  Recv 4  Accept 3  Close 3  Send 3  Bind 1  EpollCreate 1  Listen 1  Socket 1",
        "  errors       EAGAIN 3  ECONNRESET 1",
        "  connections  2 accepted, 2 closed, 1 EOF, 1 RST",
        "  recv         4 calls, 1 EAGAIN",
        "  send         3 calls, 1 partial, 1 EAGAIN",
        "  EPOLLOUT     1 waits ended, longest 2.500ms",
        "  epoll_wait   4 calls, 0 returned no events",
        "  accept       3 calls, 1 EAGAIN",
        "  shutdown     requested at +7.000ms",
        "  end          the machine exited",
    ]


def test_a_send_left_waiting_without_out_in_the_mask_is_pointed_out(tmp_path: Path) -> None:
    # The classic bug: a partial write, and EPOLLOUT never asked for, so it never comes.
    path = tmp_path / "s.jsonl"
    write_scenario(path, rearm_out=False)
    text = render_trace(path)
    assert "note: a send is unfinished but OUT is not in the interest mask: no EPOLLOUT will come" in section(
        text, "connection #1"
    )
    assert "still waiting at the end: #1" in text
    assert text.rstrip().endswith("the trace ends without Exit (the recording was cut short)")


def test_one_connection_or_only_the_summary_can_be_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.jsonl"
    write_scenario(path)
    assert main(["show", str(path), "--conn", "2"]) == 0
    out = capsys.readouterr().out
    assert (
        "connection #2" in out and "connection #1" not in out and "\nserver\n" not in out and "summary" in out
    )
    assert main(["show", str(path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "connection #" not in out and "  send         3 calls, 1 partial, 1 EAGAIN" in out


def test_show_renders_any_recorded_run(tmp_path: Path) -> None:
    path = tmp_path / "fake.jsonl"
    count = record_fake_run(path, seed=21, syscalls=2000)
    text = render_trace(path)
    assert f"syscalls     {count}:" in text and "the machine exited" in text
