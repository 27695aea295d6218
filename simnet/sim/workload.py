"""Client workloads: planned from a seed, run as simulated client processes, checked as they go.

A `Workload` describes a population of clients (how many, when they arrive, how many requests
each sends and how deep they pipeline, request and response sizes, think time, and the share of
slow readers, clients that close early, and clients that reset mid-response). `plan_clients`
turns it and a `random.Random` into concrete `ClientPlan`s -- every random choice is made there,
up front, so a plan is a value that can be printed, compared and replayed. `client_process` runs
one plan against a server on simulated sockets and checks every response it reads.
"""

from __future__ import annotations

import collections
import errno as errno_module
import random
import socket
import struct
from collections.abc import Generator
from typing import Any

import attrs

from simnet.server.apps.http import HELLO, pattern

NS = 1_000_000_000

BEHAVIOURS = ("normal", "slow_reader", "early_close", "reset")


@attrs.frozen(kw_only=True)
class Workload:
    """What the clients do. Times in seconds, rates per second, sizes in bytes."""

    app: str = "http"
    clients: int = attrs.field(default=10, validator=attrs.validators.ge(0))
    requests: int = attrs.field(default=5, validator=attrs.validators.ge(1))  # per connection
    pipeline: int = attrs.field(default=1, validator=attrs.validators.ge(1))  # requests in flight
    arrival_window: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))  # Poisson arrivals over it
    think_time: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))  # mean, exponential
    request_size: int = attrs.field(default=64, validator=attrs.validators.ge(0))  # echo payload / POST body
    response_size: int = attrs.field(default=4096, validator=attrs.validators.ge(0))  # /bytes/N mean
    slow_readers: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    read_rate: float = attrs.field(default=16384.0, validator=attrs.validators.gt(0))  # slow reader bytes/s
    early_closers: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    resetters: float = attrs.field(default=0.0, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    recv_size: int = attrs.field(default=65536, validator=attrs.validators.gt(0))
    # A client blocked this long in one call (connect, send, or waiting for response bytes) gives
    # up and names the error TIMEOUT, as a real HTTP client's timeout does. None: it waits for
    # ever -- which is what a client does when a fault silently kills its connection (a
    # one-sided RST, a crashed peer that never restarts), so runs under faults set one.
    response_timeout: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0))
    )

    def __attrs_post_init__(self) -> None:
        if self.app not in ("http", "echo"):
            raise ValueError(f"workload app must be 'http' or 'echo', not {self.app!r}")
        if self.slow_readers + self.early_closers + self.resetters > 1:
            raise ValueError("slow_readers + early_closers + resetters must not exceed 1")


@attrs.frozen(kw_only=True)
class Exchange:
    """One request and the response it must get."""

    request: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")
    expect_status: int  # 0 for echo
    expect_body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


@attrs.frozen(kw_only=True)
class ClientPlan:
    client_id: int
    start_ns: int
    behaviour: str
    exchanges: tuple[Exchange, ...]
    think_ns: tuple[int, ...]  # after each pipelined batch
    stop_after: int  # early_close / reset: act after sending this many requests


def _http_exchange(rng: random.Random, workload: Workload, last: bool) -> Exchange:
    kind = rng.random()
    close = b"Connection: close\r\n" if last else b""
    if kind < 0.2:
        return Exchange(
            request=b"GET / HTTP/1.1\r\nHost: simnet\r\n" + close + b"\r\n", expect_status=200, expect_body=HELLO
        )
    if kind < 0.5:
        body = rng.randbytes(workload.request_size)
        head = b"POST /echo HTTP/1.1\r\nHost: simnet\r\nContent-Length: %d\r\n" % len(body)
        return Exchange(request=head + close + b"\r\n" + body, expect_status=200, expect_body=body)
    n = int(rng.expovariate(1 / workload.response_size)) if workload.response_size else 0
    return Exchange(
        request=b"GET /bytes/%d HTTP/1.1\r\nHost: simnet\r\n" % n + close + b"\r\n",
        expect_status=200,
        expect_body=pattern(0, n),
    )


def plan_clients(workload: Workload, rng: random.Random) -> list[ClientPlan]:
    """Every random decision of the run's clients, made here in a fixed order."""
    plans = []
    t = 0.0
    rate = workload.clients / workload.arrival_window if workload.arrival_window > 0 else 0.0
    for client_id in range(workload.clients):
        if rate:
            t += rng.expovariate(rate)
        roll = rng.random()
        if roll < workload.slow_readers:
            behaviour = "slow_reader"
        elif roll < workload.slow_readers + workload.early_closers:
            behaviour = "early_close"
        elif roll < workload.slow_readers + workload.early_closers + workload.resetters:
            behaviour = "reset"
        else:
            behaviour = "normal"
        exchanges = []
        for i in range(workload.requests):
            if workload.app == "http":
                exchanges.append(_http_exchange(rng, workload, last=i == workload.requests - 1))
            else:
                payload = rng.randbytes(max(workload.request_size, 1))
                exchanges.append(Exchange(request=payload, expect_status=0, expect_body=payload))
        batches = -(-workload.requests // workload.pipeline)
        think = tuple(
            int(rng.expovariate(1 / workload.think_time) * NS) if workload.think_time else 0 for _ in range(batches)
        )
        plans.append(
            ClientPlan(
                client_id=client_id,
                start_ns=int(t * NS),
                behaviour=behaviour,
                exchanges=tuple(exchanges),
                think_ns=think,
                stop_after=rng.randint(1, workload.requests),
            )
        )
    return plans


@attrs.define
class ClientStats:
    """What the clients saw, summed over all of them."""

    planned: dict[str, int] = attrs.field(factory=dict)  # behaviour -> clients planned with it
    started: int = 0
    connected: int = 0
    completed: int = 0  # every response read and correct
    requests: int = 0
    responses: int = 0  # read and correct
    wrong_responses: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    early_closes: int = 0
    retries: int = 0  # reused connections the server closed idle; the requests went again on a new one
    # Retries after a close the server had no reason for: no timeout of its could have expired
    # since it last heard from us, and no response said `Connection: close` (see `_client`).
    unannounced_closes: int = 0
    resets: int = 0  # resets the clients sent on purpose
    errors: dict[str, int] = attrs.field(factory=dict)  # errno name -> count, in first-seen order
    # The part of `errors` seen by clients that behaved normally (no slow reading, early close or
    # reset of their own): a reset such a client sees was provoked by nothing it did.
    unprovoked_errors: dict[str, int] = attrs.field(factory=dict)
    failures: list[str] = attrs.field(factory=list)  # the first few wrong responses, described

    def error(self, name: str, behaviour: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1
        if behaviour == "normal":
            self.unprovoked_errors[name] = self.unprovoked_errors.get(name, 0) + 1


class BadResponse(Exception):
    """The server's bytes are not a response at all: the client counts a wrong response."""


class ResponseReader:
    """Splits the bytes a client reads into complete responses (status, body).

    HTTP responses are parsed with httptools, the parser the server's app uses; echo responses
    are simply the next len(expected) bytes.
    """

    def __init__(self, app: str) -> None:
        self.app = app
        self.done: collections.deque[tuple[int, bytes]] = collections.deque()
        self._body: list[bytes] = []
        self._buffer = bytearray()
        self._in_message = False
        self.close_announced = False  # the last complete response said `Connection: close`
        if app == "http":
            import httptools

            self._parser = httptools.HttpResponseParser(self)

    def feed(self, data: bytes, expected_echo: int = 0) -> None:
        """Take bytes read from the server; BadResponse if they are not HTTP responses (a
        server that lost or repeated bytes sends exactly that)."""
        if self.app == "http":
            import httptools

            try:
                self._parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise BadResponse(f"unparseable response ({exc})") from None
        else:
            self._buffer += data

    def idle(self) -> bool:
        """No byte of a next response has arrived (so a close now raced our request)."""
        if self.app == "http":
            return not self.done and not self._in_message
        return not self._buffer

    def take_echo(self, n: int) -> bytes | None:
        if len(self._buffer) < n:
            return None
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._body = []
        self._in_message = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self.close_announced = not self._parser.should_keep_alive()
        self.done.append((self._parser.get_status_code(), b"".join(self._body)))


# `client_process(..., close_after_ns=...)`: the server's close of an idle connection is not judged.
UNJUDGED = -1


def client_process(
    host: Any, server: tuple[str, int], plan: ClientPlan, workload: Workload, stats: ClientStats,
    *, close_after_ns: int | None = UNJUDGED,
) -> Generator[Any, Any, None]:
    """One client, as a simpy process (see `_client`). A client whose host crashes (a fault,
    simnet.faults.Crash) is interrupted and counts the error HOST_CRASHED. `close_after_ns`: the
    shortest time after which the server may close a connection that is quiet (its smallest
    timeout; None: it has none), which a keep-alive retry is judged against; UNJUDGED: not judged."""
    import simpy

    try:
        yield from _client(host, server, plan, workload, stats, close_after_ns)
    except simpy.Interrupt:
        stats.error("HOST_CRASHED", plan.behaviour)


def _client(
    host: Any, server: tuple[str, int], plan: ClientPlan, workload: Workload, stats: ClientStats,
    close_after_ns: int | None = UNJUDGED,
) -> Generator[Any, Any, None]:
    """One client, as a simpy process on `host`: connect, send, read and check every response.

    Like real HTTP clients (urllib3, browsers; RFC 9112 §9.3.1), a client whose reused
    keep-alive connection is closed by the server before any byte of the next response arrives
    -- the server's keep-alive timeout raced the request -- opens a new connection and sends the
    unanswered requests again; `stats.retries` counts it. Each retry follows at least one answered
    request, so retries always end. Any other EOF is a failure.

    A retry is owed to the server's having a reason to close: a response that said `Connection:
    close`, or a timeout. The server received our last answered request no earlier than we sent
    it, so a timeout of T cannot have closed the connection before that send + T; a close we see
    earlier had no reason, and `stats.unannounced_closes` counts it (a run fails on one).
    """
    env = host.net.env
    if plan.start_ns > env.now:
        yield env.timeout(plan.start_ns - env.now)
    stats.started += 1
    exchanges = plan.exchanges
    answered = 0  # exchanges whose responses have been read and checked
    answered_sent_ns = 0  # when the last answered request was sent: the server heard from us since
    batch_no = 0
    connections = 0
    while True:
        sock = host.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if workload.response_timeout is not None:
            sock.settimeout(workload.response_timeout)
        try:
            answered_here = 0
            reader = ResponseReader(workload.app)
            yield from sock.co.connect(server)
            connections += 1
            if connections == 1:
                stats.connected += 1
            while answered < len(exchanges):
                batch = exchanges[answered : answered + workload.pipeline]
                for exchange in batch:
                    yield from sock.co.sendall(exchange.request)
                    stats.requests += 1
                    stats.bytes_sent += len(exchange.request)
                sent = answered + len(batch)
                batch_sent_ns = env.now
                if plan.behaviour in ("early_close", "reset") and sent >= plan.stop_after:
                    if plan.behaviour == "reset":
                        # Read a little of the response first, so the RST lands mid-response.
                        yield from sock.co.recv(1)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        stats.resets += 1
                    else:
                        stats.early_closes += 1
                    sock.close()
                    return
                outcome, got = yield from _read_responses(sock, reader, batch, workload, plan, stats)
                answered += got
                answered_here += got
                if got:
                    answered_sent_ns = batch_sent_ns
                if outcome == "eof_before_response" and answered_here > 0 and reader.idle():
                    _judge_close(reader, env.now - answered_sent_ns, close_after_ns, stats)
                    break  # the server closed our idle keep-alive connection: reconnect, resend
                if outcome != "ok":
                    if outcome == "eof_before_response":
                        stats.error("EOF_BEFORE_RESPONSE", plan.behaviour)
                    sock.close()
                    return
                think = plan.think_ns[batch_no] if batch_no < len(plan.think_ns) else 0
                batch_no += 1
                if think:
                    yield env.timeout(think)
            else:
                stats.completed += 1
                sock.close()
                return
            sock.close()
            stats.retries += 1
        except OSError as exc:
            sock.close()
            if isinstance(exc, TimeoutError) and exc.errno is None:
                name = "TIMEOUT"  # our own timeout (settimeout), not the kernel's ETIMEDOUT
            else:
                name = errno_module.errorcode.get(exc.errno or 0, type(exc).__name__)
            if name in ("ECONNRESET", "EPIPE") and answered_here > 0 and reader.idle():
                # The same race seen from the other side: our request reached a connection the
                # server had closed, and its kernel answered with a RST.
                _judge_close(reader, env.now - answered_sent_ns, close_after_ns, stats)
                stats.retries += 1
                continue
            stats.error(name, plan.behaviour)
            return


def _judge_close(reader: ResponseReader, quiet_ns: int, close_after_ns: int | None, stats: ClientStats) -> None:
    """Count a close of a kept-alive connection that the server had no reason for (see `_client`)."""
    if close_after_ns == UNJUDGED or reader.close_announced:
        return
    if close_after_ns is None or quiet_ns < close_after_ns:
        stats.unannounced_closes += 1


def _read_responses(
    sock: Any, reader: ResponseReader, batch: tuple[Exchange, ...], workload: Workload, plan: ClientPlan,
    stats: ClientStats,
) -> Generator[Any, Any, tuple[str, int]]:
    """Read and check the responses to `batch`: ("ok" | "wrong" | "eof_before_response", how many
    were read and correct)."""
    env = sock.net.env
    slow = plan.behaviour == "slow_reader"
    recv_size = 1024 if slow else workload.recv_size
    for done, exchange in enumerate(batch):
        while True:
            if workload.app == "http":
                got = reader.done.popleft() if reader.done else None
            else:
                body = reader.take_echo(len(exchange.expect_body))
                got = None if body is None else (0, body)
            if got is not None:
                break
            data = yield from sock.co.recv(recv_size)
            if not data:
                return "eof_before_response", done
            stats.bytes_received += len(data)
            try:
                reader.feed(data)
            except BadResponse as exc:
                _wrong(stats, f"client {plan.client_id}: {exc}")
                return "wrong", done
            if slow:
                yield env.timeout(int(len(data) / workload.read_rate * NS))
        status, body = got
        if status != exchange.expect_status or body != exchange.expect_body:
            _wrong(
                stats,
                f"client {plan.client_id}: expected {exchange.expect_status} with {len(exchange.expect_body)} "
                f"bytes, got {status} with {len(body)} bytes",
            )
            return "wrong", done
        stats.responses += 1
    return "ok", len(batch)


def _wrong(stats: ClientStats, failure: str) -> None:
    stats.wrong_responses += 1
    if len(stats.failures) < 5:  # a summary names a few; the count says how many
        stats.failures.append(failure)
