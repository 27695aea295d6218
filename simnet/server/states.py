"""The machine's states and records: the machine's and each connection's state, the events and
close reasons that move a connection along, its timers, the Connection record and the Stats
counters. simnet/server/machine.py is what drives them."""

from __future__ import annotations

import enum

import attrs

from simnet.server import syscalls as sc
from simnet.server.apps.base import AppProtocol


class DriverError(Exception):
    """The driver broke the syscall contract (its bug, not the network's)."""


class MachineState(enum.Enum):
    SETUP = "SETUP"  # socket, options, bind, listen, epoll: one syscall each
    RUNNING = "RUNNING"
    SHUTTING_DOWN = "SHUTTING_DOWN"  # graceful shutdown (or an abort): no accepting, closing down
    DONE = "DONE"  # Exit() was returned


class ConnState(enum.Enum):
    SETUP = "SETUP"  # accepted; TCP_NODELAY and EPOLL_CTL_ADD not done yet
    OPEN = "OPEN"  # input goes to the app, output goes out
    FLUSHING = "FLUSHING"  # no more input for the app (EOF, or the app asked to close): send the rest
    LINGERING = "LINGERING"  # output done, our FIN sent (SHUT_WR); discarding input until EOF
    CLOSING = "CLOSING"  # Close(fd) is due
    CLOSED = "CLOSED"  # Close returned; the connection has left m.connections


class ConnEvent(enum.Enum):
    """What happens to a connection: the keys of TRANSITIONS."""

    REGISTERED = "REGISTERED"  # EPOLL_CTL_ADD succeeded
    PEER_EOF = "PEER_EOF"  # recv returned b"" (or EPOLLHUP while lingering)
    APP_CLOSE = "APP_CLOSE"  # the app's close_after_flush became true
    FLUSHED = "FLUSHED"  # all output sent while the peer may still send: linger
    FLUSHED_AFTER_EOF = "FLUSHED_AFTER_EOF"  # all output sent and the peer already sent FIN
    QUIESCENT_AT_SHUTDOWN = "QUIESCENT_AT_SHUTDOWN"  # graceful shutdown found nothing in flight
    FAILED = "FAILED"  # network error, epoll ERR/HUP, timeout, app error, forced shutdown
    CLOSE_RETURNED = "CLOSE_RETURNED"


S, E = ConnState, ConnEvent

# The connection lifecycle. Exceptions kept beside the table: with linger disabled, FLUSHED goes
# straight to CLOSING (`_transition`); and CLOSING/CLOSED absorb every further event except
# CLOSE_RETURNED, because a connection that is already going can still see a late error.
TRANSITIONS: dict[ConnState, dict[ConnEvent, ConnState]] = {
    S.SETUP: {E.REGISTERED: S.OPEN, E.QUIESCENT_AT_SHUTDOWN: S.CLOSING, E.FAILED: S.CLOSING},
    S.OPEN: {
        E.PEER_EOF: S.FLUSHING,
        E.APP_CLOSE: S.FLUSHING,
        E.QUIESCENT_AT_SHUTDOWN: S.CLOSING,
        E.FAILED: S.CLOSING,
    },
    S.FLUSHING: {E.FLUSHED: S.LINGERING, E.FLUSHED_AFTER_EOF: S.CLOSING, E.FAILED: S.CLOSING},
    S.LINGERING: {E.PEER_EOF: S.CLOSING, E.FAILED: S.CLOSING},
    S.CLOSING: {E.CLOSE_RETURNED: S.CLOSED},
    S.CLOSED: {},
}


class CloseReason(enum.Enum):
    """Why a connection was closed; `stats.closes` counts them by value."""

    PEER_EOF = "peer_eof"  # the peer finished; we flushed and closed
    APP_CLOSE = "app_close"  # the app asked; we flushed, lingered, saw the peer's EOF
    LINGER_TIMEOUT = "linger_timeout"  # as APP_CLOSE, but the peer kept sending / stayed open
    SHUTDOWN = "shutdown"  # nothing in flight at graceful shutdown
    SHUTDOWN_FORCED = "shutdown_forced"  # still busy when the grace period ended
    RESET = "reset"  # an error on a syscall, or EPOLLERR/EPOLLHUP
    IDLE_TIMEOUT = "idle_timeout"
    HEADER_TIMEOUT = "header_timeout"
    KEEPALIVE_TIMEOUT = "keepalive_timeout"
    APP_ERROR = "app_error"
    SETUP_FAILED = "setup_failed"  # EPOLL_CTL_ADD failed
    ABORT = "abort"  # the server itself could not go on (epoll_wait failed, ...)


class Timer(enum.Enum):
    HEADER = "HEADER"
    KEEPALIVE = "KEEPALIVE"


def short(data: bytes | bytearray) -> str:
    return sc._short_bytes(bytes(data))


@attrs.define
class Connection:
    """One accepted connection, all of its state in the open."""

    id: int
    fd: int
    peer: tuple[str, int]
    app: AppProtocol = attrs.field(repr=False)
    accepted_ns: int
    state: ConnState = ConnState.SETUP
    out: bytearray = attrs.field(factory=bytearray, repr=short)  # pending output, in order
    readable: bool = False  # epoll reported IN/RDHUP and no EAGAIN since
    writable: bool = True  # a new socket has buffer space; cleared by EAGAIN / a partial write
    read_eof: bool = False  # recv returned b""
    app_more: bool = False  # the app may hold back output (its last pull filled our request)
    nodelay_done: bool = False
    shutdown_due: bool = False  # Shutdown(SHUT_WR) to issue (on entering LINGERING)
    shut_wr: bool = False  # our FIN is out: every byte of output was handed to the kernel
    backpressured: bool = False  # not reading because output is over the cap
    registered: int | None = None  # the epoll mask the kernel has for this fd; None before ADD
    bytes_in: int = 0
    bytes_out: int = 0
    requests: int = 0  # as last reported by the app
    responses: int = 0
    last_io_ns: int = 0  # last byte in or out: the idle timer runs from here
    timer: Timer | None = None  # header or keep-alive timer, chosen by the app's phase
    timer_since: int = 0
    lingering_since: int = 0
    idle_deadline: int | None = None
    header_deadline: int | None = None
    keepalive_deadline: int | None = None
    linger_deadline: int | None = None
    close_reason: CloseReason | None = None
    error: str | None = None  # the errno name or app exception that ended it
    budget_used: int = 0  # syscalls this turn (see io_budget)
    # The key of this connection's live entry in the machine's timer heap (None: no entry). It
    # is never later than the nearest of the deadlines above: the entry may come up early, and
    # is then moved on.
    deadline_at: int | None = None
    queued: bool = False  # in the machine's run queue
    recv_request: sc.Recv | None = attrs.field(default=None, repr=False, eq=False)  # made at the first Recv


@attrs.define
class Stats:
    """Counters for a run summary. `errors` and `closes` are keyed by errno / CloseReason value,
    in the order first seen (dicts keep insertion order, so summaries are deterministic)."""

    syscalls: int = 0
    accepted: int = 0
    closed: int = 0
    accept_errors: int = 0
    accept_pauses: int = 0  # accepting paused: max_connections reached, or EMFILE & co.
    requests: int = 0  # as the apps count them
    responses: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    recv_calls: int = 0
    send_calls: int = 0
    eagain_recv: int = 0
    eagain_send: int = 0
    partial_writes: int = 0
    epollout_waits: int = 0  # times a connection had to wait for EPOLLOUT with output pending
    peer_eofs: int = 0
    resets: int = 0  # connections dropped for a network error or EPOLLERR/EPOLLHUP
    app_errors: int = 0
    first_app_error: str | None = None  # "Type: message" of the first exception an app raised
    backpressure_pauses: int = 0
    idle_timeouts: int = 0
    header_timeouts: int = 0
    keepalive_timeouts: int = 0
    linger_timeouts: int = 0
    shutdown_forced: int = 0
    discarded_bytes: int = 0  # read and dropped while lingering
    epoll_waits: int = 0
    turns_cut: int = 0  # turns ended by turn_budget_ns with work left
    events: int = 0
    sockopt_errors: int = 0
    close_errors: int = 0
    errors: dict[str, int] = attrs.field(factory=dict)
    closes: dict[str, int] = attrs.field(factory=dict)
