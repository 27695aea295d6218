"""ServerConfig: everything the server machine's behaviour depends on, besides the app and results."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

KiB = 1024
MS = 1_000_000  # ns
SECOND = 1_000_000_000  # ns

_positive = attrs.validators.gt(0)
# Typed for the `int | None` fields: mypy solves attrs.field's type from the default (an int),
# and a validator inferred for `int | None` attributes would not match `Attribute[int]`.
_optional_positive: Callable[[Any, attrs.Attribute[Any], int | None], Any] = attrs.validators.optional(
    attrs.validators.gt(0)
)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """How the server listens, schedules its work and times connections out. Times are integer ns.

    Listening: `host`, `port` (0: the kernel picks; read it from `ServerMachine.bound_port`),
    `backlog` (listen(2); Linux caps it at somaxconn), `rcvbuf`/`sndbuf` (SO_RCVBUF/SO_SNDBUF on
    the listener, inherited by accepted sockets (LINUX.md §2); None leaves the kernel's
    autotuning on), `nodelay` (TCP_NODELAY on accepted sockets: without it Nagle plus delayed
    ACK holds small responses back ~40 ms, LINUX.md "Nagle plus delayed ACK").

    Epoll: `edge_triggered` registers connections once with IN|OUT|RDHUP|ET instead of keeping a
    level-triggered mask up to date (see machine.py "Epoll modes"); `max_events` per EpollWait.

    Limits: `max_connections` open at once (above it the listener's interest is dropped until one
    closes); `output_cap`, the bytes of pending output per connection above which we stop reading
    it (backpressure); `recv_size` per Recv; `send_size`, the most pending output offered in one
    Send (None: all of it). A Send copies what it offers and a trace records it whole, so
    offering all of a 256 KiB backlog to a peer that takes a few KiB at a time cost a copy and a
    256 KiB trace record per EPOLLOUT; 64 KiB is about what one loopback segment carries. A trace
    header from before this field was recorded offering everything: see `from_recorded`.

    Start: `listener_armed_at_add` registers the listener with EPOLLIN in its EPOLL_CTL_ADD and
    accepts only once epoll reports it. Before this field the machine added it with mask 0, then
    MODded it to EPOLLIN and tried an Accept before its first wait -- two syscalls per start for
    nothing (the Accept said EAGAIN). False keeps that opening for traces recorded then.

    Fairness: `io_budget` syscalls per connection and `accept_budget` accepts between two
    EpollWaits, so that one fast peer or a connect flood cannot starve the others; work left over
    is taken up after an EpollWait with timeout 0. `turn_budget_ns`: a turn of Sends and Recvs
    that has taken this long by the clock in the results ends early with an EpollWait(0), the
    round robin resuming where it stopped -- a Recv of pipelined requests can cost milliseconds
    of app work, and without it a flood on a few connections held new connections unaccepted
    for the whole flood (bench/abuse.py measured 1.1 s). Simulated syscalls take no virtual
    time, so it only ever acts on real sockets. `accept_retry_ns`: after EMFILE/ENFILE with no
    connection of ours to close, how long to wait before accepting again.

    Timeouts (None disables one):
      idle_timeout_ns      no byte in or out for this long: close (covers a peer that stops
                           reading our response, too). Default 60 s.
      header_timeout_ns    a request head not complete this long after it became due -- at
                           accept, or at the first byte of the next request: close (slowloris;
                           trickling bytes does not extend it). Default 10 s.
      keepalive_timeout_ns between requests, with all output sent: close. Default 5 s.
      linger_timeout_ns    after we close our side (SHUT_WR) because the app asked to close, how
                           long we keep reading and discarding so that unread input does not turn
                           our close into a RST that destroys the last response at the client
                           (RFC 9112 §9.6; nginx's lingering_close). Default 2 s; None closes at once.
      shutdown_grace_ns    on a graceful shutdown, how long in-flight work may take. Default 5 s.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=[attrs.validators.ge(0), attrs.validators.le(65535)])
    backlog: int = attrs.field(default=128, validator=attrs.validators.ge(0))
    edge_triggered: bool = False
    max_connections: int = attrs.field(default=1024, validator=_positive)
    output_cap: int = attrs.field(default=256 * KiB, validator=_positive)
    recv_size: int = attrs.field(default=64 * KiB, validator=_positive)
    send_size: int | None = attrs.field(default=64 * KiB, validator=_optional_positive)
    max_events: int = attrs.field(default=256, validator=_positive)
    rcvbuf: int | None = attrs.field(default=None, validator=_optional_positive)
    sndbuf: int | None = attrs.field(default=None, validator=_optional_positive)
    nodelay: bool = True
    io_budget: int = attrs.field(default=16, validator=_positive)
    accept_budget: int = attrs.field(default=64, validator=_positive)
    accept_retry_ns: int = attrs.field(default=100 * MS, validator=_positive)
    turn_budget_ns: int | None = attrs.field(default=10 * MS, validator=_optional_positive)
    idle_timeout_ns: int | None = attrs.field(default=60 * SECOND, validator=_optional_positive)
    header_timeout_ns: int | None = attrs.field(default=10 * SECOND, validator=_optional_positive)
    keepalive_timeout_ns: int | None = attrs.field(default=5 * SECOND, validator=_optional_positive)
    linger_timeout_ns: int | None = attrs.field(default=2 * SECOND, validator=_optional_positive)
    shutdown_grace_ns: int = attrs.field(default=5 * SECOND, validator=attrs.validators.ge(0))
    listener_armed_at_add: bool = True

    @classmethod
    def from_recorded(cls, fields: Mapping[str, Any]) -> ServerConfig:
        """The config a trace header records. A field the header does not name takes the value
        that gives the behaviour of the simnet that wrote it (`BEFORE_FIELD`), not today's
        default, so that every trace recorded before a field was added still replays exactly.
        Raises TypeError/ValueError for fields this ServerConfig does not have or refuses."""
        return cls(**{**BEFORE_FIELD, **fields})


# Fields added to ServerConfig after traces were first recorded, with the value that reproduces
# what the machine did before each existed.
BEFORE_FIELD: dict[str, Any] = {"send_size": None, "listener_armed_at_add": False}
