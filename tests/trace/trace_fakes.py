"""Stand-ins for the server machine and a kernel, so the trace code is tested on its own.

`EchoMachine` issues the same kinds of requests as simnet.server.machine: a non-blocking,
level-triggered echo loop with partial writes, EAGAIN, EPOLLOUT re-arming, EOF and RST.
`FakeKernel` executes them from a seeded RNG, producing every kind of result a real run does.
Neither models TCP faithfully; they only have to make traces that look like real ones.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

from simnet.drivers.loop import run_direct
from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import Recorder, TraceHeader, TraceWriter

IN_MASK = sc.EPOLLIN | sc.EPOLLRDHUP


class EchoMachine:
    """An echo server as a generator: each `yield` is a syscall, each `send` its Result."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        backlog: int = 16,
        recv_size: int = 4096,
        max_events: int = 64,
        bug_after_sends: int | None = None,
    ) -> None:
        self.host, self.port, self.backlog = host, port, backlog
        self.recv_size, self.max_events = recv_size, max_events
        # A deliberately broken machine for divergence tests: after this many sends it echoes
        # one byte too few.
        self.bug_after_sends = bug_after_sends
        self._sends = 0
        self._gen: Generator[Any, Result, None] = self._run()

    def start(self) -> Any:
        return next(self._gen)

    def step(self, result: Result) -> Any:
        return self._gen.send(result)

    def _run(self) -> Generator[Any, Result, None]:
        lfd = (yield sc.Socket()).value
        yield sc.SetSockOpt(fd=lfd, level=sc.SOL_SOCKET, name=sc.SO_REUSEADDR, value=1)
        yield sc.Bind(fd=lfd, host=self.host, port=self.port)
        yield sc.Listen(fd=lfd, backlog=self.backlog)
        ep = (yield sc.EpollCreate()).value
        yield sc.EpollCtl(epfd=ep, op="ADD", fd=lfd, mask=sc.EPOLLIN)
        out: dict[int, bytes] = {}  # fd -> bytes still to echo
        armed: set[int] = set()  # fds with EPOLLOUT in their interest mask
        while True:
            r = yield sc.EpollWait(epfd=ep, max_events=self.max_events, timeout_ms=-1)
            if r.shutdown:
                break
            for fd, mask in r.value:
                if fd == lfd:
                    while True:
                        r = yield sc.Accept(fd=lfd)
                        if not r.ok:
                            break
                        cfd = r.value[0]
                        out[cfd] = b""
                        yield sc.EpollCtl(epfd=ep, op="ADD", fd=cfd, mask=IN_MASK)
                    continue
                if fd not in out:
                    continue  # closed earlier in this batch
                alive = True
                if mask & sc.EPOLLIN:
                    while True:
                        r = yield sc.Recv(fd=fd, size=self.recv_size)
                        if r.error == "EAGAIN":
                            break
                        if not r.ok or r.value == b"":
                            alive = False  # RST or EOF
                            break
                        out[fd] += r.value
                if alive and out[fd]:
                    while out[fd]:
                        data = out[fd]
                        self._sends += 1
                        if self.bug_after_sends is not None and self._sends > self.bug_after_sends:
                            data = data[:-1] or data
                        r = yield sc.Send(fd=fd, data=data)
                        if not r.ok:
                            alive = r.error == "EAGAIN"
                            break
                        out[fd] = out[fd][r.value :]
                    if alive and out[fd] and fd not in armed:
                        armed.add(fd)
                        yield sc.EpollCtl(epfd=ep, op="MOD", fd=fd, mask=IN_MASK | sc.EPOLLOUT)
                    elif alive and not out[fd] and fd in armed:
                        armed.discard(fd)
                        yield sc.EpollCtl(epfd=ep, op="MOD", fd=fd, mask=IN_MASK)
                if not alive:
                    del out[fd]
                    armed.discard(fd)
                    yield sc.Close(fd=fd)
        for fd in list(out):
            yield sc.Close(fd=fd)
        yield sc.Close(fd=lfd)
        yield sc.Close(fd=ep)
        yield sc.Exit()


def make_echo_machine(header: TraceHeader) -> EchoMachine:
    """Machine factory in the shape replay wants: rebuild the machine from the header."""
    return EchoMachine(**header.server_config, **header.app_config)


def make_buggy_machine(header: TraceHeader) -> EchoMachine:
    """Same as recorded, except it drops a byte from every send after the third."""
    return EchoMachine(**header.server_config, **header.app_config, bug_after_sends=3)


class _Conn:
    def __init__(self, rng: random.Random) -> None:
        self.inbound: list[bytes] = []
        self.ending = rng.choice(["eof", "eof", "rst", "none"])
        self.messages = rng.randint(1, 6)
        self.ended = False  # peer has sent its EOF/RST
        self.mask = 0
        self.room = rng.choice([0, 10, 100, 70000])  # send buffer space


class FakeKernel:
    """Executes requests from a seeded RNG; sets `shutdown` once `syscalls` have run."""

    PAYLOADS = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"ping\n", bytes(range(256)), b"\xff\x00binary"]

    def __init__(self, seed: int = 0, syscalls: int = 1000, payload_scale: int = 1) -> None:
        self.rng = random.Random(seed)
        self.limit = syscalls
        self.count = 0
        self.now = 1_000_000
        self.next_fd = 3
        self.lfd = -1
        self.conns: dict[int, _Conn] = {}
        self.backlog = 0
        self.peers = 0
        self.scale = payload_scale

    def _fd(self) -> int:
        fd = self.next_fd
        self.next_fd += 1
        return fd

    def __call__(self, req: Any) -> Result:
        self.count += 1
        self.now += self.rng.randint(200, 3000)
        shutdown = self.count >= self.limit
        value, error = self._execute(req)
        return Result(value=value, error=error, now=self.now, shutdown=shutdown)

    def _execute(self, req: Any) -> tuple[Any, str | None]:
        rng = self.rng
        kind = type(req)
        if kind is sc.Socket:
            self.lfd = self._fd()
            return self.lfd, None
        if kind is sc.EpollCreate:
            return self._fd(), None
        if kind in (sc.SetSockOpt, sc.Bind, sc.Listen, sc.Shutdown):
            return None, None
        if kind is sc.GetSockName:
            return ("127.0.0.1", 8080), None
        if kind is sc.Close:
            self.conns.pop(req.fd, None)
            return None, None
        if kind is sc.EpollCtl:
            if req.fd in self.conns:
                self.conns[req.fd].mask = req.mask
            return None, None
        if kind is sc.Accept:
            if not self.backlog:
                return None, "EAGAIN"
            self.backlog -= 1
            fd = self._fd()
            self.conns[fd] = _Conn(rng)
            self.peers += 1
            return (fd, ("127.0.0.1", 40000 + self.peers)), None
        if kind is sc.Recv:
            c = self.conns[req.fd]
            if c.inbound:
                data = c.inbound.pop(0)
                if len(data) > req.size:
                    c.inbound.insert(0, data[req.size :])
                    data = data[: req.size]
                return data, None
            if c.ended:
                return (b"", None) if c.ending == "eof" else (None, "ECONNRESET")
            return None, "EAGAIN"
        if kind is sc.Send:
            c = self.conns[req.fd]
            if c.ended and c.ending == "rst":
                return None, "EPIPE"
            n = min(len(req.data), c.room)
            if n == 0:
                return None, "EAGAIN"
            c.room -= n
            return n, None
        if kind is sc.EpollWait:
            self.now += rng.randint(10_000, 2_000_000)
            return self._wait(req), None
        raise AssertionError(f"FakeKernel cannot execute {req!r}")

    def _wait(self, req: sc.EpollWait) -> tuple[tuple[int, int], ...]:
        rng = self.rng
        # Some activity arrives: a new connection, data, a peer closing, buffer space freed.
        if (rng.random() < 0.3 and len(self.conns) < 20) or not self.conns:
            self.backlog += rng.randint(1, 2)
        for c in self.conns.values():
            c.room += rng.choice([0, 0, 20, 5000])
            if not c.ended and rng.random() < 0.4:
                if c.messages:
                    c.messages -= 1
                    c.inbound.append(rng.choice(self.PAYLOADS) * rng.randint(1, self.scale))
                elif c.ending != "none":
                    c.ended = True
        events = []
        if self.backlog:
            events.append((self.lfd, sc.EPOLLIN))
        for fd, c in self.conns.items():
            mask = 0
            if c.inbound or c.ended:
                mask |= sc.EPOLLIN | (sc.EPOLLRDHUP if c.ended else 0)
            if c.mask & sc.EPOLLOUT and c.room:
                mask |= sc.EPOLLOUT
            if mask:
                events.append((fd, mask))
        return tuple(events[: req.max_events])


def fake_header(*, seed: int = 0, recv_size: int = 4096, clock_origin: int = 1_000_000) -> TraceHeader:
    return TraceHeader.create(
        backend="simnet",
        app="echo",
        app_config={"recv_size": recv_size},
        server_config={"host": "127.0.0.1", "port": 8080, "backlog": 16},
        seed=seed,
        clock_origin=clock_origin,
        meta={"made_by": "tests/trace/trace_fakes.py"},
    )


def record_fake_run(
    target: Any, *, seed: int = 0, syscalls: int = 1000, payload_scale: int = 1, buffer_bytes: int = 1 << 16
) -> int:
    """Record one run of EchoMachine on FakeKernel to `target`; return the syscall count."""
    header = fake_header(seed=seed)
    with TraceWriter(target, header, buffer_bytes=buffer_bytes) as writer:
        return run_direct(Recorder(make_echo_machine(header), writer), FakeKernel(seed, syscalls, payload_scale))
