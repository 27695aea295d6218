"""Load and abuse against a live `realnet serve`: hostile clients, then is the server still well?

    .venv/bin/python bench/abuse.py                 # the full run (~2 minutes); figures for docs/reliability.md
    .venv/bin/python bench/abuse.py --quick         # a few seconds: what tests/abuse runs
    .venv/bin/python bench/abuse.py --record T.jsonl   # keep the server's trace (default: a temporary file)
    .venv/bin/python bench/abuse.py --json out.json    # the figures as JSON too

It starts `realnet serve --app http --port 0 --record TRACE` on 127.0.0.1 and runs, one after the
other, each case below, while a canary -- an ordinary client in a process of its own, so that the
load's event loop cannot delay it -- makes one `GET /` every 50 ms on a new connection and times it:

  keepalive    N concurrent keep-alive connections (2,000), several rounds of GET / on each
  slowloris    M connections sending one header byte per second (200), reconnecting when the
               server drops them, while the canary keeps requesting (its latency reported)
  reset        clients that reset (SO_LINGER 0) in the middle of a 10 MB response
  never_read   clients that ask for 10 MB and never read it (the server's RSS is sampled meanwhile)
  big_body     clients that send all but the last byte of a 1 MiB body (the limit) and hold: the
               most memory one connection can make the server hold, measured
  pipeline     a flood of pipelined GETs on a few connections, every response read and counted
  half_close   clients that send a request and shutdown(SHUT_WR), then read the response to EOF
  garbage      random bytes and HTTP-shaped junk; each must end in a close, any error answer last
  over_limit   on a second server with --max-connections L: L idle connections, then more
               clients, which wait (the server stops accepting) and are served once slots free

After each case the server must still answer GET /; at the end its open-fd count (/proc/PID/fd)
must be back to the baseline taken before the first client, its peak RSS (VmHWM) is reported,
it must exit 0 on SIGTERM, and its trace must replay exactly (`simnet replay`), with the trace
size per request reported.

Every loop is bounded in count and in time; only 127.0.0.1 is used; the servers are killed in a
`finally`. The script raises its own soft RLIMIT_NOFILE to the hard limit and does the same for
the server subprocess (resource.setrlimit in the child before exec), and reports both.

Exit status: 0 when every check held, 1 otherwise (the failed checks are printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import httptools

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
HELLO = b"Hello from simnet!\n"
BIG = 10_000_000  # the "10 MB response"
MS = 1000.0

_BANNER = re.compile(r"^realnet: serving (\w+) on http://([\d.]+):(\d+) \(pid (\d+)\)$")


@attrs.frozen(kw_only=True)
class Params:
    """How big each case is; every loop below is bounded by these counts and times."""

    keepalive_conns: int
    keepalive_rounds: int
    slowloris_conns: int
    slowloris_seconds: float
    slowloris_byte_every: float  # seconds between two header bytes
    canary_interval: float  # seconds between two of the canary's ordinary requests
    reset_clients: int
    reset_after: int  # bytes of the 10 MB response read before the reset
    never_read_clients: int
    never_read_hold: float
    big_body_clients: int
    big_body_hold: float
    pipeline_conns: int
    pipeline_depth: int  # requests pipelined per connection, sent in one go
    half_close_clients: int
    garbage_clients: int
    garbage_wait: float  # how long a garbage client that does not half-close waits for the close
    limit: int  # --max-connections of the over_limit server
    over_limit_extra: int
    over_limit_hold: float
    server_args: tuple[str, ...]  # for the main server, beyond --app http --port 0
    deadline: float  # the whole run, seconds: a watchdog ends it after this


FULL = Params(
    keepalive_conns=2000,
    keepalive_rounds=5,
    slowloris_conns=200,
    slowloris_seconds=15.0,
    slowloris_byte_every=1.0,
    canary_interval=0.05,
    reset_clients=100,
    reset_after=256 * 1024,
    never_read_clients=50,
    never_read_hold=5.0,
    big_body_clients=50,
    big_body_hold=2.0,
    pipeline_conns=20,
    pipeline_depth=10_000,
    half_close_clients=200,
    garbage_clients=500,
    garbage_wait=12.0,  # past the 10 s header timeout
    limit=50,
    over_limit_extra=100,
    over_limit_hold=1.0,
    # The defaults, but room for 2,000 connections at once plus the rest (the point of the
    # keepalive case), and a listen backlog that takes a burst of connects without SYN drops.
    server_args=("--max-connections", "4096", "--backlog", "1024"),
    deadline=600.0,
)

QUICK = Params(
    keepalive_conns=200,
    keepalive_rounds=2,
    slowloris_conns=20,
    slowloris_seconds=2.5,
    slowloris_byte_every=0.5,
    canary_interval=0.05,
    reset_clients=8,
    reset_after=64 * 1024,
    never_read_clients=4,
    never_read_hold=0.5,
    big_body_clients=4,
    big_body_hold=0.3,
    pipeline_conns=2,
    pipeline_depth=500,
    half_close_clients=20,
    garbage_clients=30,
    garbage_wait=2.0,
    limit=8,
    over_limit_extra=8,
    over_limit_hold=0.3,
    # A header timeout short enough that the slowloris connections are dropped within the case.
    server_args=("--max-connections", "1024", "--backlog", "1024", "--header-timeout", "1", "--linger-timeout", "0.5"),
    deadline=90.0,
)


# -- the server under test ---------------------------------------------------------------------


def raise_nofile() -> tuple[int, int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit; (soft before, soft after, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


def _child_nofile() -> None:  # runs in the server's process, between fork and exec
    raise_nofile()


class Server:
    """`realnet serve` as a subprocess: started on a free port, read from /proc, stopped by signal."""

    def __init__(self, *args: str, record: Path | None = None) -> None:
        self.cmd = [sys.executable, "-m", "realnet", "serve", "--app", "http", "--port", "0", *args]
        if record is not None:
            self.cmd += ["--record", str(record)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.pid = 0
        self.stdout = ""
        self.stderr = ""

    def start(self, timeout: float = 20.0) -> Server:
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_child_nofile,
            start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        fd, buf, deadline = self.proc.stdout.fileno(), b"", time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError(f"realnet did not start: {buf!r} {self.stderr}")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 4096)
                if not chunk:
                    continue
                buf += chunk
        line, _, self._rest = buf.partition(b"\n")
        m = _BANNER.match(line.decode())
        if m is None:
            self.kill()
            raise RuntimeError(f"unexpected banner {line!r}")
        self.port, self.pid = int(m.group(3)), int(m.group(4))
        return self

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.port)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def status(self, key: str) -> int:
        """A /proc/PID/status figure in bytes (VmRSS, VmHWM)."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    def nofile(self) -> str:
        with open(f"/proc/{self.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return f"{soft} (hard {hard})"
        return "?"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
        self.stdout = (self._rest + out).decode(errors="replace")
        self.stderr = err.decode(errors="replace")
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def tcp_mem_mb() -> float:
    """Memory in all TCP socket buffers of this network namespace (/proc/net/sockstat), MB."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("TCP:"):
                    words = line.split()
                    return int(words[words.index("mem") + 1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        pass
    return float("nan")


# -- client plumbing -------------------------------------------------------------------------------


class Responses:
    """Incremental HTTP/1.1 response reader: counts complete responses, keeps bodies only if small."""

    def __init__(self, keep_body: int = 4096) -> None:
        self.done: list[tuple[int, bytes, bool]] = []  # (status, body or b"", Connection: close)
        self.bytes = 0
        self._keep = keep_body
        self._body = bytearray()
        self._close = False
        self._parser = httptools.HttpResponseParser(self)
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        if self.error is None:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                self.error = f"{type(exc).__name__}: {exc}"

    def on_message_begin(self) -> None:
        self._body, self._close = bytearray(), False

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"connection" and value.lower() == b"close":
            self._close = True

    def on_body(self, body: bytes) -> None:
        if len(self._body) < self._keep:
            self._body += body[: self._keep - len(self._body)]

    def on_message_complete(self) -> None:
        self.done.append((self._parser.get_status_code(), bytes(self._body), self._close))


async def connect(timeout: float = 10.0, addr: tuple[str, int] | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, addr or _ADDR[0]), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


_ADDR: list[tuple[str, int]] = [(HOST, 0)]  # the main server's address, set in run()


async def recv(sock: socket.socket, timeout: float, n: int = 65536) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, n), timeout)


async def send(sock: socket.socket, data: bytes, timeout: float = 30.0) -> None:
    await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(sock, data), timeout)


async def read_responses(sock: socket.socket, reader: Responses, count: int, timeout: float) -> bool:
    """Read until `count` responses are complete; False on EOF first. Bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while len(reader.done) < count:
        data = await recv(sock, max(0.001, deadline - time.monotonic()))
        if not data:
            return False
        reader.feed(data)
        if reader.error:
            return False
    return True


async def read_to_close(sock: socket.socket, reader: Responses, timeout: float) -> str:
    """Read until the server closes: "eof", "reset", or "open" if it has not by `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "open"
            try:
                data = await recv(sock, left)
            except asyncio.TimeoutError:
                return "open"
            if not data:
                return "eof"
            reader.feed(data)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"


def rst_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


GET = b"GET / HTTP/1.1\r\nHost: abuse\r\n\r\n"


async def get_root(addr: tuple[str, int] | None = None, timeout: float = 10.0) -> float:
    """One GET / on a new connection; its latency in seconds. Raises on anything but 200 HELLO."""
    t0 = time.monotonic()
    sock = await connect(timeout, addr)
    try:
        await send(sock, b"GET / HTTP/1.1\r\nHost: abuse\r\nConnection: close\r\n\r\n", timeout)
        reader = Responses()
        if not await read_responses(sock, reader, 1, timeout) or reader.done[0][:2] != (200, HELLO):
            raise RuntimeError(f"GET / failed: {reader.done} {reader.error}")
    finally:
        sock.close()
    return time.monotonic() - t0


def spread(values: list[float]) -> dict[str, float]:
    """p50/p99/max in ms."""
    if not values:
        return {"n": 0}
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))]  # noqa: E731
    return {"n": len(v), "p50_ms": pick(0.5) * MS, "p99_ms": pick(0.99) * MS, "max_ms": v[-1] * MS}


async def gather_bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    """Run the jobs with at most `limit` at once; exceptions are returned, not raised."""
    sem = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with sem:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs), return_exceptions=True)


def _errors(results: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        if isinstance(r, BaseException):
            name = type(r).__name__
            out[name] = out.get(name, 0) + 1
    return out


# -- the canary --------------------------------------------------------------------------------------


def _canary_main(addr: tuple[str, int], path: str, interval: float, stop_at: float) -> None:
    """In a process of its own, so that the client load's event loop cannot delay it: GET / on a
    new connection every `interval` s, one line per request: monotonic start, latency or -1."""
    request = b"GET / HTTP/1.1\r\nHost: canary\r\nConnection: close\r\n\r\n"
    with open(path, "w", buffering=1) as out:
        while time.monotonic() < stop_at and os.getppid() != 1:
            t0 = time.monotonic()
            latency = -1.0
            try:
                with socket.create_connection(addr, timeout=10.0) as sock:
                    sock.sendall(request)
                    reader = Responses()
                    while not reader.done:
                        data = sock.recv(65536)
                        if not data:
                            break
                        reader.feed(data)
                    if reader.done and reader.done[0][:2] == (200, HELLO):
                        latency = time.monotonic() - t0
            except OSError:
                pass
            out.write(f"{t0} {latency}\n")
            time.sleep(interval)
            if os.path.exists(path + ".stop"):
                break


class Canary:
    """An ordinary client all along, in its own process; its requests are sorted into the cases
    by time afterwards."""

    def __init__(self, addr: tuple[str, int], directory: Path, interval: float, limit: float) -> None:
        import multiprocessing

        self.path = str(directory / "canary.txt")
        self.windows: list[tuple[str, float, float]] = []
        ctx = multiprocessing.get_context("fork")
        self.proc = ctx.Process(target=_canary_main, args=(addr, self.path, interval, time.monotonic() + limit))
        self.proc.start()

    def stop(self) -> None:
        Path(self.path + ".stop").touch()
        self.proc.join(15)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

    def figures(self) -> dict[str, dict[str, float]]:
        samples = []
        with open(self.path) as f:
            for line in f:
                t0, latency = line.split()
                samples.append((float(t0), float(latency)))
        out = {}
        for name, start, end in self.windows:
            mine = [lat for t0, lat in samples if start <= t0 < end]
            out[name] = {**spread([lat for lat in mine if lat >= 0]), "failures": sum(1 for lat in mine if lat < 0)}
        return out


# -- the cases -------------------------------------------------------------------------------------


async def case_keepalive(p: Params, server: Server) -> dict[str, Any]:
    n = p.keepalive_conns
    latencies: list[float] = []
    wrong = [0]

    async def request(sock: socket.socket, reader: Responses) -> None:
        t = time.monotonic()
        await send(sock, GET)
        if not await read_responses(sock, reader, len(reader.done) + 1, 30.0):
            raise RuntimeError(f"EOF before the response ({reader.error})")
        latencies.append(time.monotonic() - t)
        if reader.done[-1][:2] != (200, HELLO):
            wrong[0] += 1

    async def open_one() -> tuple[socket.socket, Responses]:
        # Connect and make the first request at once: a connection that sent nothing would be
        # the header timeout's business, not this case's.
        sock = await connect(20.0)
        reader = Responses()
        try:
            await request(sock, reader)
        except BaseException:
            sock.close()
            raise
        return sock, reader

    t0 = time.monotonic()
    opened = await gather_bounded([open_one for _ in range(n)], 256)
    pairs = [o for o in opened if isinstance(o, tuple)]
    connect_s = time.monotonic() - t0
    server_fds = server.fds()  # every connection accepted, served once, and open at once
    results: list[Any] = []
    try:
        rounds_t0 = time.monotonic()
        for _ in range(p.keepalive_rounds - 1):
            results += await gather_bounded([lambda s=s, rd=rd: request(s, rd) for s, rd in pairs], 1024)
        rounds_s = time.monotonic() - rounds_t0
    finally:
        for sock, _ in pairs:
            sock.close()
    requests = len(latencies)
    errors = _errors(list(opened) + results)
    later = len(pairs) * (p.keepalive_rounds - 1)
    return {
        "connections": len(pairs),
        "connect_s": connect_s,
        "server_fds_with_all_open": server_fds,
        "requests": requests,
        "requests_per_s": later / rounds_s if rounds_s else 0.0,  # the rounds on open connections
        "latency": spread(latencies),
        "wrong": wrong[0],
        "errors": errors,
        "ok": len(pairs) == n and not errors and wrong[0] == 0 and requests == n * p.keepalive_rounds,
    }


async def case_slowloris(p: Params, server: Server) -> dict[str, Any]:
    deadline = time.monotonic() + p.slowloris_seconds
    dropped_after: list[float] = []  # seconds from connect to the server's close
    opened = [0]
    bytes_sent = [0]

    async def loris() -> None:
        while time.monotonic() < deadline:
            sock = await connect(10.0)
            opened[0] += 1
            t0 = time.monotonic()
            try:
                await send(sock, b"GET / HTTP/1.1\r\nHost: abuse\r\nX-Slow: ")
                while time.monotonic() < deadline:
                    try:
                        data = await recv(sock, p.slowloris_byte_every)
                    except asyncio.TimeoutError:
                        await send(sock, b"s")  # one more header byte; the head never ends
                        bytes_sent[0] += 1
                        continue
                    if not data:
                        dropped_after.append(time.monotonic() - t0)
                        break
                    # The server sent something (it should not): keep going.
            except (ConnectionResetError, BrokenPipeError):
                dropped_after.append(time.monotonic() - t0)
            finally:
                sock.close()

    # The ordinary clients meanwhile are the canary's requests in this case's window (its own
    # process, every `canary_interval`): see run().
    results = await asyncio.gather(*(loris() for _ in range(p.slowloris_conns)), return_exceptions=True)
    errors = _errors(results)
    return {
        "slow_connections": p.slowloris_conns,
        "connections_opened": opened[0],
        "header_bytes_trickled": bytes_sent[0],
        "dropped_by_server": len(dropped_after),
        "dropped_after": spread(dropped_after),
        "errors": errors,
        "ok": not errors and len(dropped_after) > 0,
    }


async def case_reset(p: Params, server: Server) -> dict[str, Any]:
    read_before = []

    async def one() -> None:
        sock = await connect()
        try:
            await send(sock, b"GET /bytes/%d HTTP/1.1\r\nHost: abuse\r\n\r\n" % BIG)
            got = 0
            while got < p.reset_after:
                data = await recv(sock, 20.0)
                if not data:
                    raise RuntimeError("EOF before the reset")
                got += len(data)
            read_before.append(got)
        finally:
            rst_close(sock)

    results = await gather_bounded([one for _ in range(p.reset_clients)], 50)
    errors = _errors(results)
    return {"clients": p.reset_clients, "read_before_reset_bytes": min(read_before, default=0),
            "errors": errors, "ok": not errors}  # fmt: skip


async def case_never_read(p: Params, server: Server) -> dict[str, Any]:
    socks = []
    rss_before, tcp_before = server.status("VmRSS"), tcp_mem_mb()
    try:
        for _ in range(p.never_read_clients):
            sock = await connect()
            await send(sock, b"GET /bytes/%d HTTP/1.1\r\nHost: abuse\r\n\r\n" % BIG)
            socks.append(sock)
        samples, tcp = [], []
        end = time.monotonic() + p.never_read_hold
        while time.monotonic() < end:
            samples.append(server.status("VmRSS"))
            tcp.append(tcp_mem_mb())
            await asyncio.sleep(0.1)
        fds = server.fds()
    finally:
        for s in socks:
            s.close()  # unread data: our kernel answers with a RST, which the server must take
    peak = max(samples, default=rss_before)
    return {
        "clients": len(socks),
        "held_s": p.never_read_hold,
        "server_rss_before_mb": rss_before / 1e6,
        "server_rss_peak_mb": peak / 1e6,
        "rss_growth_per_client_kb": (peak - rss_before) / max(1, len(socks)) / 1e3,
        "tcp_buffers_growth_mb": max(tcp, default=tcp_before) - tcp_before,  # both ends' kernel buffers
        "server_fds_while_held": fds,
        "ok": len(socks) == p.never_read_clients,
    }


async def case_big_body(p: Params, server: Server) -> dict[str, Any]:
    """POST /echo with a body of the largest size the server takes (1 MiB by default), all of it
    but the last byte, and hold: the app must keep what has arrived until the body is complete, so
    this is the most memory one connection can make the server hold (docs/reliability.md)."""
    size = 1 << 20
    socks = []
    rss_before = server.status("VmRSS")
    try:
        for _ in range(p.big_body_clients):
            sock = await connect()
            socks.append(sock)
            head = b"POST /echo HTTP/1.1\r\nHost: abuse\r\nContent-Length: %d\r\n\r\n" % size
            await send(sock, head + b"e" * (size - 1), 30.0)
        end = time.monotonic() + p.big_body_hold
        samples = []
        while time.monotonic() < end:
            samples.append(server.status("VmRSS"))
            await asyncio.sleep(0.1)
        # Then the last byte: every echo must come back whole.
        for sock in socks:
            await send(sock, b"e")
        wrong = 0
        for sock in socks:
            reader = Responses(keep_body=size)
            if not await read_responses(sock, reader, 1, 30.0) or reader.done[0][:2] != (200, b"e" * size):
                wrong += 1
    finally:
        for s in socks:
            s.close()
    peak = max(samples, default=rss_before)
    return {
        "clients": len(socks),
        "body_bytes": size,
        "server_rss_before_mb": rss_before / 1e6,
        "server_rss_peak_mb": peak / 1e6,
        "rss_growth_per_client_kb": (peak - rss_before) / max(1, len(socks)) / 1e3,
        "wrong": wrong,
        "ok": len(socks) == p.big_body_clients and wrong == 0,
    }


async def case_pipeline(p: Params, server: Server) -> dict[str, Any]:
    wrong = [0]

    async def one() -> int:
        sock = await connect()
        try:
            reader = Responses(keep_body=64)
            sender = asyncio.ensure_future(send(sock, GET * p.pipeline_depth, 120.0))
            ok = await read_responses(sock, reader, p.pipeline_depth, 120.0)
            await sender
            if not ok:
                raise RuntimeError(f"{len(reader.done)} of {p.pipeline_depth} responses, {reader.error}")
            wrong[0] += sum(1 for status, body, _ in reader.done if (status, body) != (200, HELLO))
            return len(reader.done)
        finally:
            sock.close()

    t0 = time.monotonic()
    results = await gather_bounded([one for _ in range(p.pipeline_conns)], p.pipeline_conns)
    seconds = time.monotonic() - t0
    answered = sum(r for r in results if isinstance(r, int))
    errors = _errors(results)
    return {
        "connections": p.pipeline_conns,
        "requests": p.pipeline_conns * p.pipeline_depth,
        "answered": answered,
        "requests_per_s": answered / seconds if seconds else 0.0,
        "wrong": wrong[0],
        "errors": errors,
        "ok": not errors and wrong[0] == 0 and answered == p.pipeline_conns * p.pipeline_depth,
    }


async def case_half_close(p: Params, server: Server) -> dict[str, Any]:
    size = 100_000

    async def one() -> None:
        sock = await connect()
        try:
            await send(sock, b"GET /bytes/%d HTTP/1.1\r\nHost: abuse\r\n\r\n" % size)
            sock.shutdown(socket.SHUT_WR)
            reader = Responses(keep_body=0)
            end = await read_to_close(sock, reader, 20.0)
            if end != "eof" or [s for s, _, _ in reader.done] != [200] or reader.bytes < size:
                raise RuntimeError(f"half-closed client: {end}, {reader.done}, {reader.bytes} bytes")
        finally:
            sock.close()

    results = await gather_bounded([one for _ in range(p.half_close_clients)], 100)
    errors = _errors(results)
    return {"clients": p.half_close_clients, "errors": errors, "ok": not errors}


_ATOMS = [b"GET ", b"POST ", b"/", b"/echo", b"/bytes/12", b" HTTP/1.1", b" HTTP/1.0", b"\r\n", b"\r\n\r\n",
          b"Host: x", b"Content-Length: 3", b"Content-Length: 999999", b"Transfer-Encoding: chunked",
          b"Connection: close", b"Expect: 100-continue", b"Upgrade: h2c", b":", b" ", b"\t", b"\n",
          b"3\r\nabc\r\n", b"0\r\n\r\n", b"CONNECT ", b"\x00", b"\xff"]  # fmt: skip
CLOSING_ERRORS = (400, 413, 431, 505)


def garbage(rng: random.Random) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(rng.randint(1, 4096))
    return b"".join(rng.choice(_ATOMS) if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 8))
                    for _ in range(rng.randint(1, 60)))  # fmt: skip


async def case_garbage(p: Params, server: Server) -> dict[str, Any]:
    rng = random.Random(7)
    payloads = [(garbage(rng), rng.random() < 0.5) for _ in range(p.garbage_clients)]
    ends: dict[str, int] = {}
    statuses: dict[int, int] = {}
    bad_order = [0]

    async def one(data: bytes, half_close: bool) -> None:
        sock = await connect()
        try:
            try:
                await send(sock, data, 10.0)
                if half_close:
                    sock.shutdown(socket.SHUT_WR)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the server answered and closed before all of it was sent: fine
            reader = Responses(keep_body=0)
            end = await read_to_close(sock, reader, 15.0 if half_close else p.garbage_wait)
            ends[end] = ends.get(end, 0) + 1
            for i, (status, _, close) in enumerate(reader.done):
                statuses[status] = statuses.get(status, 0) + 1
                if status in CLOSING_ERRORS and (not close or i != len(reader.done) - 1):
                    bad_order[0] += 1
        finally:
            sock.close()

    results = await gather_bounded([lambda d=d, h=h: one(d, h) for d, h in payloads], 100)
    errors = _errors(results)
    return {
        "clients": p.garbage_clients,
        "ends": ends,  # "open": still open when the client gave up (a body in progress: idle timeout)
        "statuses": dict(sorted(statuses.items())),
        "error_not_last": bad_order[0],
        "errors": errors,
        "ok": not errors and bad_order[0] == 0,
    }


async def case_over_limit(p: Params, server: Server) -> dict[str, Any]:
    """A second server with --max-connections L: it stops accepting at L; the rest wait, then are served."""
    small = Server("--max-connections", str(p.limit), "--backlog", "512").start()
    holders: list[socket.socket] = []
    try:
        base = small.fds()
        for _ in range(p.limit):
            s = await connect(10.0, small.addr)
            await send(s, GET)
            r = Responses()
            await read_responses(s, r, 1, 10.0)  # accepted and served: it counts against the limit
            holders.append(s)
        t0 = time.monotonic()
        waiting = [asyncio.ensure_future(get_root(small.addr, timeout=30.0)) for _ in range(p.over_limit_extra)]
        await asyncio.sleep(p.over_limit_hold)
        served_while_full = sum(1 for w in waiting if w.done() and not w.exception())
        fds_while_full = small.fds()
        for s in holders:
            s.close()
        holders = []
        results = await asyncio.gather(*waiting, return_exceptions=True)
        waited = [time.monotonic() - t0]
        latencies = [r for r in results if isinstance(r, float)]
        errors = _errors(list(results))
        rc = small.stop()
    finally:
        for s in holders:
            s.close()
        small.kill()
    return {
        "limit": p.limit,
        "extra_clients": p.over_limit_extra,
        "served_while_full": served_while_full,
        "server_fds_while_full": fds_while_full - base,  # connections open beyond the idle server
        "served_after": len(latencies),
        "latency_of_waiting": spread(latencies),
        "waited_s": waited[0],
        "errors": errors,
        "exit_status": rc,
        "ok": not errors and served_while_full == 0 and fds_while_full - base <= p.limit
        and len(latencies) == p.over_limit_extra and rc == 0,
    }  # fmt: skip


CASES: dict[str, Callable[[Params, Server], Awaitable[dict[str, Any]]]] = {
    "keepalive": case_keepalive,
    "slowloris": case_slowloris,
    "reset": case_reset,
    "never_read": case_never_read,
    "big_body": case_big_body,
    "pipeline": case_pipeline,
    "half_close": case_half_close,
    "garbage": case_garbage,
    "over_limit": case_over_limit,
}


# -- the run ----------------------------------------------------------------------------------------


async def settle_fds(server: Server, baseline: int, timeout: float) -> tuple[int, float]:
    """Wait until the server's fd count is back to `baseline`; (count, seconds waited)."""
    t0 = time.monotonic()
    while True:
        n = server.fds()
        if n <= baseline or time.monotonic() - t0 > timeout:
            return n, time.monotonic() - t0
        await asyncio.sleep(0.05)


async def _run_cases(p: Params, server: Server, only: list[str], figures: dict[str, Any], canary: Canary) -> None:
    cases: dict[str, Any] = figures["cases"]
    for name in only:
        t0 = time.monotonic()
        try:
            result = await CASES[name](p, server)
        except Exception as exc:  # noqa: BLE001 - a case that blows up is a failed case
            result = {"ok": False, "exception": f"{type(exc).__name__}: {exc}"}
        canary.windows.append((name, t0, time.monotonic()))
        result["seconds"] = time.monotonic() - t0
        result["server_alive"] = server.alive()
        try:
            result["still_serving_ms"] = await get_root(timeout=10.0) * MS
        except Exception as exc:  # noqa: BLE001
            result["still_serving_ms"] = None
            result["ok"] = False
            result["exception"] = f"GET / after the case: {type(exc).__name__}: {exc}"
        result["server_rss_mb"] = server.status("VmRSS") / 1e6
        cases[name] = result


def run(quick: bool = False, record: Path | None = None, only: list[str] | None = None) -> dict[str, Any]:
    """Run every case (or `only` these) against a fresh server; return the figures (see report())."""
    p = QUICK if quick else FULL
    only = list(only or CASES)
    soft_before, soft_after, hard = raise_nofile()
    tmp = None
    if record is None:
        tmp = tempfile.TemporaryDirectory(prefix="abuse-")
        record = Path(tmp.name) / "abuse.jsonl"
    figures: dict[str, Any] = {
        "mode": "quick" if quick else "full",
        "params": attrs.asdict(p),
        "machine": f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "client_nofile": f"soft {soft_before} -> {soft_after} (hard {hard})",
        "cases": {},
        "problems": [],
    }
    server = Server(*p.server_args, record=record)
    started = time.monotonic()
    try:
        server.start()
        _ADDR[0] = server.addr
        figures["server_cmd"] = " ".join(server.cmd[1:]).replace(str(record), "TRACE")
        figures["server_nofile"] = server.nofile()
        time.sleep(0.2)
        figures["baseline_fds"] = baseline = server.fds()
        figures["baseline_rss_mb"] = server.status("VmRSS") / 1e6

        canary_dir = tempfile.TemporaryDirectory(prefix="abuse-canary-")
        canary = Canary(server.addr, Path(canary_dir.name), p.canary_interval, p.deadline)

        async def main() -> None:
            try:
                await asyncio.wait_for(_run_cases(p, server, only, figures, canary), p.deadline)
            finally:
                canary.stop()
            figures["canary"] = canary.figures()
            canary_dir.cleanup()
            figures["canary_failures"] = sum(c["failures"] for c in figures["canary"].values())
            n, waited = await settle_fds(server, baseline, 15.0)
            figures["fds_after"], figures["fds_settle_s"] = n, waited
            figures["still_serving_ms"] = await get_root(timeout=10.0) * MS

        asyncio.run(main())
        figures["peak_rss_mb"] = server.status("VmHWM") / 1e6
        figures["rss_after_mb"] = server.status("VmRSS") / 1e6
        figures["exit_status"] = server.stop()
        figures["server_summary"] = server.stdout.strip().splitlines()[-1] if server.stdout.strip() else ""
        figures["server_stderr"] = server.stderr.strip()
    except Exception as exc:  # noqa: BLE001 - reported as a problem, the server killed below
        figures["problems"].append(f"run: {type(exc).__name__}: {exc}")
    finally:
        server.kill()
    figures["seconds"] = time.monotonic() - started
    if record.exists():
        figures["trace"] = replay_figures(record, figures.get("server_summary", ""))
    if tmp is not None:
        tmp.cleanup()
    figures["problems"] += problems(figures)
    figures["ok"] = not figures["problems"]
    return figures


def replay_figures(path: Path, summary: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from simnet.drivers.replay import replay_exact

    t0 = time.monotonic()
    report = replay_exact(path)
    seconds = time.monotonic() - t0
    size = path.stat().st_size
    m = re.search(r"(\d+) requests", summary)
    requests = int(m.group(1)) if m else 0
    with open(path, "rb") as f:
        records = sum(1 for _ in f) - 1
    return {
        "bytes": size,
        "records": records,
        "requests": requests,
        "bytes_per_request": size / requests if requests else None,
        "records_per_request": records / requests if requests else None,
        "replay_ok": report.ok and report.exited,
        "replay_matched": report.matched,
        "replay_s": seconds,
        "replay": report.format().splitlines()[0],
    }


def problems(f: dict[str, Any]) -> list[str]:
    out = []
    for name, c in f["cases"].items():
        if not c.get("ok"):
            out.append(f"{name}: failed ({c.get('exception') or {k: v for k, v in c.items() if k in ('errors', 'wrong')}})")
        if not c.get("server_alive", True):
            out.append(f"{name}: the server died")
    if f.get("canary_failures"):
        out.append(f"canary: {f['canary_failures']} ordinary requests failed")
    if "fds_after" in f and f["fds_after"] > f["baseline_fds"]:
        out.append(f"fds: {f['fds_after']} open after the run, baseline {f['baseline_fds']}")
    if f.get("exit_status") not in (0, None):
        out.append(f"exit status {f.get('exit_status')} on SIGTERM: {f.get('server_stderr')}")
    elif "exit_status" not in f and not f["problems"]:
        out.append("the server was not stopped")
    if f.get("server_stderr"):
        out.append(f"server stderr: {f['server_stderr'][:300]}")
    t = f.get("trace")
    if t is not None and not t["replay_ok"]:
        out.append(f"trace: {t['replay']}")
    return out


def _lat(s: dict[str, float]) -> str:
    if not s.get("n"):
        return "none"
    return f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms (n={s['n']})"


def report(f: dict[str, Any]) -> list[str]:
    c = f["cases"]
    lines = [
        f"abuse ({f['mode']}): {f.get('server_cmd', '?')}",
        f"machine: {f['machine']}; client RLIMIT_NOFILE {f['client_nofile']}; server's {f.get('server_nofile', '?')}",
        f"baseline: {f.get('baseline_fds', '?')} fds, {f.get('baseline_rss_mb', 0):.1f} MB RSS",
    ]
    if "keepalive" in c and "connections" in c["keepalive"]:
        k = c["keepalive"]
        lines.append(
            f"keepalive: {k['connections']} connections opened and served once in {k['connect_s']:.2f} s "
            f"(server fds with all open: {k['server_fds_with_all_open']}); {k['requests']} requests at "
            f"{k['requests_per_s']:,.0f}/s, latency {_lat(k['latency'])}"
        )
    if "slowloris" in c and "slow_connections" in c["slowloris"]:
        s = c["slowloris"]
        ordinary = f.get("canary", {}).get("slowloris", {})
        lines.append(
            f"slowloris: {s['slow_connections']} trickling connections ({s['connections_opened']} opened, "
            f"{s['header_bytes_trickled']} header bytes); dropped by the server {s['dropped_by_server']} times, "
            f"after {_lat(s['dropped_after'])}; an ordinary client meanwhile: {ordinary.get('failures', '?')} "
            f"failed, latency {_lat(ordinary)}"
        )
    if "reset" in c and "clients" in c["reset"]:
        lines.append(f"reset: {c['reset']['clients']} clients reset after >= {c['reset']['read_before_reset_bytes']:,} "
                     f"bytes of a 10 MB response")  # fmt: skip
    if "never_read" in c and "clients" in c["never_read"]:
        n = c["never_read"]
        lines.append(
            f"never_read: {n['clients']} clients held 10 MB responses unread for {n['held_s']} s; server RSS "
            f"{n['server_rss_before_mb']:.1f} -> {n['server_rss_peak_mb']:.1f} MB "
            f"({n['rss_growth_per_client_kb']:.0f} kB per client); kernel TCP buffers "
            f"+{n['tcp_buffers_growth_mb']:.1f} MB"
        )
    if "big_body" in c and "clients" in c["big_body"]:
        e = c["big_body"]
        lines.append(
            f"big_body: {e['clients']} clients sent all but the last byte of {e['body_bytes']:,}-byte bodies to /echo "
            f"and held; server RSS {e['server_rss_before_mb']:.1f} -> {e['server_rss_peak_mb']:.1f} MB "
            f"({e['rss_growth_per_client_kb']:.0f} kB per client); then each echo came back whole"
        )
    if "pipeline" in c and "requests" in c["pipeline"]:
        q = c["pipeline"]
        lines.append(f"pipeline: {q['answered']:,}/{q['requests']:,} pipelined requests answered on "
                     f"{q['connections']} connections, {q['requests_per_s']:,.0f}/s")  # fmt: skip
    if "half_close" in c and "clients" in c["half_close"]:
        lines.append(f"half_close: {c['half_close']['clients']} clients, each got its response and an EOF")
    if "garbage" in c and "ends" in c["garbage"]:
        g = c["garbage"]
        lines.append(f"garbage: {g['clients']} clients; ends {g['ends']}; answers {g['statuses']}")
    if "over_limit" in c and "limit" in c["over_limit"]:
        o = c["over_limit"]
        lines.append(
            f"over_limit: --max-connections {o['limit']}, {o['extra_clients']} more clients: "
            f"{o['served_while_full']} served while full (server held {o['server_fds_while_full']} connections), "
            f"{o['served_after']} served once slots freed, latency {_lat(o['latency_of_waiting'])}"
        )
    lines.append(f"each case, then GET / on a new connection, and the canary (GET / every {f['params']['canary_interval']} s "
                 "from a process of its own) during it:")  # fmt: skip
    for name, case in c.items():
        lines.append(f"  {name}: {'ok' if case.get('ok') else 'FAILED'} in {case.get('seconds', 0):.1f} s; "
                     f"then GET / {case.get('still_serving_ms') or 0:.1f} ms; server RSS {case.get('server_rss_mb', 0):.1f} MB")  # fmt: skip
    for name, v in f.get("canary", {}).items():
        lines.append(f"  canary during {name}: {v.get('failures', 0)} failed, latency {_lat(v)}")
    if "fds_after" in f:
        lines.append(f"after: {f['fds_after']} fds (baseline {f['baseline_fds']}, settled in {f['fds_settle_s']:.2f} s), "
                     f"GET / {f['still_serving_ms']:.1f} ms; peak RSS (VmHWM) {f['peak_rss_mb']:.1f} MB, "
                     f"RSS now {f['rss_after_mb']:.1f} MB; exit status {f.get('exit_status')} on SIGTERM")  # fmt: skip
    if f.get("server_summary"):
        lines.append(f"server: {f['server_summary']}")
    t = f.get("trace")
    if t:
        per = f"{t['bytes_per_request']:,.0f} bytes and {t['records_per_request']:.1f} records per request" \
            if t["bytes_per_request"] else "no requests"
        lines.append(f"trace: {t['bytes'] / 1e6:.1f} MB, {t['records']:,} records for {t['requests']:,} requests "
                     f"({per}); {t['replay']} in {t['replay_s']:.1f} s")  # fmt: skip
    lines.append(f"result: {'ok' if f['ok'] else 'FAILED: ' + '; '.join(f['problems'])} ({f['seconds']:.0f} s)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds: small counts, short timeouts")
    parser.add_argument("--record", type=Path, help="keep the server's trace here (default: a temporary file)")
    parser.add_argument("--only", help=f"a comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    if only and (unknown := [c for c in only if c not in CASES]):
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    figures = run(quick=args.quick, record=args.record, only=only)
    for line in report(figures):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
