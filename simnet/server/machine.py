"""ServerMachine: an epoll server as a pure state machine, one syscall at a time.

    m = ServerMachine(config, app_factory)
    req = m.start()                 # the first request
    while not isinstance(req, Exit):
        req = m.step(execute(req))  # hand the Result of the previous request, get the next

The machine never blocks, sleeps or reads a clock: drivers (simnet, realnet, replay) execute the
request and hand back a `Result` whose `now` is their clock. Everything it knows is in plain
attributes: `m.connections` (id -> Connection), `m.stats`, `m.state`, `m.bound_port`.

How one turn of the loop goes
-----------------------------
After an EpollWait the machine sets readiness flags from the reported events, expires timers, and
then works through what it can do without blocking, in this order: close connections that are
done; set up newly accepted ones (TCP_NODELAY, EPOLL_CTL_ADD); half-close lingering ones; accept
until EAGAIN; then Send and Recv, one syscall per connection in turn (round robin), each
connection at most `io_budget` times. When nothing is left it brings the epoll interest masks up
to date and asks for the next EpollWait, whose timeout is the time to the nearest deadline -- or
0 if the budget left work undone, so nobody starves and nothing busy-loops.

Readiness flags: the edge-triggered discipline in both modes
-------------------------------------------------------------
Each connection has `readable` and `writable` flags: an event sets them, and only EAGAIN clears
them (in LT a partial write clears `writable` too: see `_on_send`). So the machine reads until
EAGAIN and, in ET, writes until EAGAIN; it never concludes "drained" from a short read or a
short write, because neither proves it on every kernel.

Epoll modes (`config.edge_triggered`)
-------------------------------------
Level-triggered: the registered mask says what we want to hear about, kept exact at every
EpollWait: IN|RDHUP while we would read (not after EOF, not under backpressure, not while
flushing), OUT only while output is pending on a socket that has said it is full (EAGAIN or a
partial write cleared `writable`; pending output on a writable socket is in the run queue or
parked, and goes after the next EpollWait(0)). Both matter for the same reason: LT re-reports a
ready fd on every epoll_wait (fs/eventpoll.c re-queues LT items after each report), so a stale
OUT on a writable socket with nothing to send, or IN on an EOF'd socket, would wake us forever.

Edge-triggered: a connection is registered once with IN|OUT|RDHUP|ET and never modified. ET
reports on wakeups, not on level (LINUX.md §4: `ep_poll_callback` queues the item on every
wakeup whose key intersects the mask, and the report carries the whole current mask), so holding
OUT costs nothing while we are not out of buffer space: no wakeup comes from the write side
until a send has run out of space (SOCK_NOSPACE) and space then frees up. What makes ET correct
is the flag discipline above: a flag is cleared only by EAGAIN -- which for a send sets
SOCK_NOSPACE, so a write-space wakeup follows -- hence whenever we sleep, every fd we would act
on has either been driven to EAGAIN, and the next arrival or freed space is a fresh edge, or is
parked by our own choice (backpressure, budget) with its flag still set, which we take up
without waiting for an edge. The invariant tests check: at a blocking EpollWait no connection
that we would read or write has its flag set. The listener is handled alike in both modes; its
interest is dropped (MOD 0) while accepting is paused and restored by MOD, which re-polls at
once and so reports a queue that filled meanwhile, even in ET (LINUX.md §4 "ADD and MOD both poll
straight away").

Closing
-------
Close(fd) only; no EPOLL_CTL_DEL first. The machine never dup()s an fd, so close() drops the last
reference and removes the registration (LINUX.md §4 "Closed fds"); a DEL would be one more
syscall per connection for nothing. Each fd is closed exactly once: a connection leaves
`m.connections` when its Close result arrives. Events from one EpollWait are applied as flags
before any syscall is made, so an fd number re-used by an accept in the same turn can never
receive a stale event meant for its predecessor.

- EOF (recv returns b""): the app gets `eof()`, the connection stops reading, flushes what is
  pending, then closes (the peer may have only half-closed and still read).
- ECONNRESET, EPIPE, ETIMEDOUT, any error on recv/send/shutdown, EPOLLERR or EPOLLHUP: the
  connection is dropped at once, pending output discarded.
- The app asks to close (HTTP `Connection: close`, an error response): flush, then
  shutdown(SHUT_WR) and linger -- read and discard until the peer's EOF or `linger_timeout_ns` --
  then close. Closing with unread input would send a RST instead of a FIN (tcp_close; LINUX.md
  §3), and a RST makes the peer's kernel discard our response if it has not read it yet.
- Graceful shutdown (a Result with `shutdown=True`): close the listener (queued, un-accepted
  connections get a RST from the kernel), close idle connections at once, let busy ones finish
  (up to `shutdown_grace_ns`), then close the rest, close the epoll fd, and return Exit.

Why one file of ~1,100 lines
----------------------------
The machine's states and records live in simnet/server/states.py; what stays here is the one
class every step passes through. Its sections (setup, connections, accepting, reading and
writing, timers, epoll interest, shutdown) hand each other the connection on every turn, and a
transition is read by following it from one section to the next, so they are kept side by
side rather than split into classes that would each hold half of a transition.

Errors
------
Network facts are data: EAGAIN, EOF, ECONNRESET and friends become state and counters. A driver
that breaks the contract -- a result of the wrong shape, an unknown fd in an event, a clock going
backwards, a step after Exit -- gets `DriverError` at once, naming the machine state and the
request. Whatever an app raises is caught here: counted, and its connection dropped.
"""

from __future__ import annotations

import functools
import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

from mypy_extensions import mypyc_attr

from simnet.server import syscalls as sc
from simnet.server.apps.base import PHASE_HEAD, PHASE_IDLE, AppFactory, BaseApp
from simnet.server.config import ServerConfig
from simnet.server.states import (
    TRANSITIONS,
    CloseReason,
    Connection,
    ConnEvent,
    ConnState,
    DriverError,
    MachineState,
    Stats,
    Timer,
)

# The members the per-step paths test, as module names. In CPython 3.11 reading a member off its
# class (ConnState.OPEN) costs ~100 ns: EnumType defines __getattr__, which takes every attribute
# lookup on the class off the interpreter's fast path. A global costs ~10 ns, and a step makes a
# dozen such tests (3.12 dropped that __getattr__). Phase's are in simnet.server.apps.base.
CONN_SETUP, OPEN, FLUSHING, LINGERING = ConnState.SETUP, ConnState.OPEN, ConnState.FLUSHING, ConnState.LINGERING
CLOSING, CLOSED = ConnState.CLOSING, ConnState.CLOSED
MACHINE_SETUP, RUNNING, SHUTTING_DOWN, DONE = (
    MachineState.SETUP, MachineState.RUNNING, MachineState.SHUTTING_DOWN, MachineState.DONE
)  # fmt: skip
HEADER_TIMER, KEEPALIVE_TIMER = Timer.HEADER, Timer.KEEPALIVE


# accept(2): "Linux accept() passes already-pending network errors on the new socket as an error
# code from accept() ... For reliable operation the application should detect the network
# errors defined for the protocol after accept() and treat them like EAGAIN by retrying."
# ECONNABORTED: the connection was reset while in the queue. EINTR: retry.
ACCEPT_RETRY_ERRORS = (
    "ECONNABORTED", "EINTR", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET",
    "EHOSTUNREACH", "EOPNOTSUPP", "ENETUNREACH", "EPERM",
)  # fmt: skip
# Anything else (EMFILE, ENFILE, ENOBUFS, ENOMEM, ...) means we cannot take a connection now:
# stop accepting until one of ours closes, or `accept_retry_ns` passes. Retrying at once would
# spin: in LT the listener stays readable because the connection stays queued.


class _DeadApp(BaseApp):
    """Stands in for an app whose factory raised; the connection is closed before it is used."""

    def receive(self, data: bytes) -> bytes:  # pragma: no cover - never called
        return b""


_ERR_HUP = sc.EPOLLERR | sc.EPOLLHUP
_WAITS_KEPT = 256  # EpollWait requests kept for reuse, by timeout
_READ_EVENTS = sc.EPOLLIN | sc.EPOLLRDHUP | sc.EPOLLPRI | sc.EPOLLRDNORM
_ET_MASK = sc.EPOLLIN | sc.EPOLLOUT | sc.EPOLLRDHUP | sc.EPOLLET
# Connection deadline attribute -> (close reason, Stats counter), in the order they are checked.
_TIMEOUTS = (
    ("idle_deadline", CloseReason.IDLE_TIMEOUT, "idle_timeouts"),
    ("header_deadline", CloseReason.HEADER_TIMEOUT, "header_timeouts"),
    ("keepalive_deadline", CloseReason.KEEPALIVE_TIMEOUT, "keepalive_timeouts"),
    ("linger_deadline", CloseReason.LINGER_TIMEOUT, "linger_timeouts"),
)


# Compiled by mypyc (simnet/_build.py); tests and users subclass it to make broken servers.
@mypyc_attr(allow_interpreted_subclasses=True)
class ServerMachine:
    """The server. See the module docstring; drivers use only start(), step() and the attributes."""

    def __init__(self, config: ServerConfig, app: AppFactory) -> None:
        self.config = config
        self.app_factory = app
        self.state = MachineState.SETUP
        self.connections: dict[int, Connection] = {}  # by id; ids are monotonic, never fds
        self.stats = Stats()
        self.now = 0
        self.bound_port: int | None = None
        self.listen_fd: int | None = None
        self.epfd: int | None = None
        self.exit_reason: str | None = None  # why the machine stopped: "shutdown" or an error
        self.shutdown_requested = False
        self.shutdown_deadline: int | None = None
        # The outstanding request and what to do with its result.
        self._pending: sc.Syscall | None = None
        self._handler: Callable[..., None] | None = None
        # The connection a Recv or Send is for: its handler is called as handler(conn, result),
        # which spares a closure per I/O syscall (the others take the result alone).
        self._handler_conn: Connection | None = None
        self._current: sc.Syscall | None = None  # the request whose result is being handled
        self._started = False
        self._setup_stage = 0
        self._next_id = 1
        self._by_fd: dict[int, int] = {}  # fd -> connection id, for open connections
        self._runq: deque[int] = deque()  # connection ids that may have a Send/Recv to do
        self._closeq: deque[int] = deque()  # connection ids in CLOSING, Close not yet issued
        self._setupq: deque[int] = deque()  # connection ids in SETUP
        self._lingerq: deque[int] = deque()  # connection ids whose Shutdown(SHUT_WR) is due
        self._touched: list[int] = []  # ids whose budget_used is non-zero this turn
        self._parked: list[int] = []  # ids that ran out of budget with work left
        self._listener_mask: int | None = None  # registered with epoll; None: not registered
        self._listener_close_due = False
        self._accept_ready = False  # the listener reported IN and accept has not said EAGAIN
        self._accepts_this_turn = 0
        self._accept_blocked_until: int | None = None  # EMFILE & co.: paused until then
        self._work_left = False  # a budget stopped work this turn: next EpollWait polls (0 ms)
        self._turn_started = 0  # `now` of the last EpollWait result: turn_budget_ns counts from it
        self._turn_io = 0  # Sends and Recvs issued this turn
        # Per-turn work must not scan every connection: with thousands open, each EpollWait
        # would cost O(connections) (it did: 60 % of a 1,000-client run). So deadlines live in a
        # heap with lazy deletion -- an entry is live while it equals its connection's
        # `deadline_at` -- and only connections whose wanted epoll mask may have changed are
        # looked at before a wait.
        self._timers: list[tuple[int, int, int]] = []  # (deadline, seq, connection id)
        self._timer_seq = 0
        self._dirty: dict[int, None] = {}  # connection ids whose epoll mask may be out of date
        # EpollWait requests by timeout, made once each: a keep-alive server waits with the same
        # few timeouts over and over. Bounded (cleared when full): a timeout can be any number.
        self._waits: dict[int, sc.EpollWait] = {}

    # ---------------------------------------------------------------------------------------------
    # the driver's interface

    def start(self) -> sc.Syscall:
        """The first request. Called once."""
        if self._started:
            raise DriverError(f"{self.state.value}: start() called twice")
        self._started = True
        return self._issue_next()

    def step(self, result: sc.Result) -> sc.Syscall:
        """Hand the result of the previous request; get the next one."""
        request = self._pending
        if not self._started:
            raise DriverError(f"{self.state.value}: step() before start()")
        if request is None or self._handler is None:
            raise DriverError(f"{self.state.value}: step() after Exit() (got {result!r})")
        self._check_result(request, result)
        self.now = result.now
        handler, conn = self._handler, self._handler_conn
        self._pending = self._handler = self._handler_conn = None
        self._current = request
        if conn is None:
            handler(result)
        else:
            handler(conn, result)
        if result.shutdown and not self.shutdown_requested:
            self._begin_shutdown("shutdown")
        return self._issue_next()

    @property
    def pending(self) -> sc.Syscall | None:
        """The request whose result the machine is waiting for (None after Exit)."""
        return self._pending

    # ---------------------------------------------------------------------------------------------
    # result validation: a driver's bug raises here, before any state changes

    def _fail_driver(self, request: sc.Syscall, result: object, why: str) -> DriverError:
        return DriverError(f"{self.state.value}: {request!r} -> {result!r}: {why}")

    # Handlers test `result.error is not None`, not `not result.ok`: Result is a Python class,
    # and from compiled code its property costs a Python frame, on every step.
    def _check_result(self, request: sc.Syscall, result: sc.Result) -> None:
        if type(result) is not sc.Result and not isinstance(result, sc.Result):
            raise self._fail_driver(request, result, "not a Result")
        now = result.now
        if type(now) is not int or now < self.now:
            raise self._fail_driver(request, result, f"clock must be an int >= {self.now}")
        error = result.error
        if error is not None:
            if type(error) is not str or not error or result.value is not None:
                raise self._fail_driver(request, result, "error must be an errno name, with no value")
            return  # any errno is a network fact: each handler decides what it means
        why = self._bad_value(request, result.value)
        if why is not None:
            raise self._fail_driver(request, result, why)

    def _bad_value(self, request: sc.Syscall, value: object) -> str | None:
        """What is wrong with a successful result's value for this request, or None. Checked
        on every step, so the common requests come first and the message is built only for a
        bad value."""
        if isinstance(request, sc.Recv):
            if isinstance(value, bytes) and len(value) <= request.size:
                return None
            return f"expected bytes, at most {request.size}"
        if isinstance(request, sc.Send):
            # A stream send of n > 0 bytes returns 1..n, or fails with EAGAIN: never 0.
            if type(value) is int and 0 < value <= len(request.data):
                return None
            return f"expected a count in 1..{len(request.data)}"
        if isinstance(request, sc.EpollWait):
            if not (isinstance(value, tuple) and len(value) <= request.max_events):
                return f"expected a tuple of at most {request.max_events} (fd, mask) pairs"
            seen: set[int] = set()  # membership only, never iterated
            for item in value:
                if not (isinstance(item, tuple) and len(item) == 2 and _is_fd(item[0])
                        and type(item[1]) is int and item[1] > 0):  # fmt: skip
                    return f"bad event {item!r}"
                fd = item[0]
                if fd in seen:
                    return f"fd {fd} reported twice"
                if fd != self.listen_fd and fd not in self._by_fd:
                    return f"event for fd {fd}, which is not registered"
                seen.add(fd)
            return None
        if isinstance(request, sc.Socket | sc.EpollCreate):
            return None if _is_fd(value) and not self._is_open_fd(value) else "expected a new fd"  # type: ignore[arg-type]
        if isinstance(request, sc.Accept):
            if (
                isinstance(value, tuple)
                and len(value) == 2
                and _is_fd(value[0])
                and not self._is_open_fd(value[0])
                and _is_addr(value[1])
            ):
                return None
            return "expected (new fd, (host, port))"
        if isinstance(request, sc.GetSockName):
            return None if _is_addr(value) else "expected (host, port)"
        # SetSockOpt, Bind, Listen, Shutdown, Close, EpollCtl return None
        return None if value is None else "expected None"

    def _is_open_fd(self, fd: int) -> bool:
        # O(1): checked on every Accept, so a scan of all open fds made accepting quadratic.
        return fd in self._by_fd or fd == self.listen_fd or fd == self.epfd

    # ---------------------------------------------------------------------------------------------
    # choosing the next request

    def _issue(self, request: sc.Syscall, handler: Callable[[sc.Result], None]) -> sc.Syscall:
        self._pending, self._handler = request, handler
        self.stats.syscalls += 1
        return request

    def _issue_io(
        self, request: sc.Recv | sc.Send, handler: Callable[[Connection, sc.Result], None], conn: Connection
    ) -> sc.Syscall:
        self._pending, self._handler, self._handler_conn = request, handler, conn
        self.stats.syscalls += 1
        return request

    def _issue_next(self) -> sc.Syscall:
        if self.state is MACHINE_SETUP:
            return self._next_setup()
        if self.state is DONE:
            return sc.Exit()
        # In order of precedence; each probe only where its queue or flag says it may have
        # something, since this runs on every step (the probes re-check).
        request = None
        if self._closeq or self._listener_close_due:
            request = self._next_close()
        if request is None and self._setupq:
            request = self._next_conn_setup()
        if request is None and self._lingerq:
            request = self._next_linger_shutdown()
        if request is None and self._accept_ready:
            request = self._next_accept()
        if request is None and self._runq:
            request = self._next_io()
        if request is None:
            request = self._next_interest()
        if request is not None:
            return request
        if self.state is SHUTTING_DOWN and not self.connections:
            if self.epfd is not None:
                epfd = self.epfd
                return self._issue(sc.Close(fd=epfd), self._on_epoll_closed)
            self.state = DONE
            self._pending = self._handler = None
            return sc.Exit()
        timeout_ms = self._timeout_ms()
        # Requests are frozen values, and every EpollWait after setup has the same epfd and
        # max_events: one per timeout is enough.
        waits = self._waits
        request = waits.get(timeout_ms)
        if request is None:
            request = sc.EpollWait(epfd=self._epfd(), max_events=self.config.max_events, timeout_ms=timeout_ms)
            if len(waits) >= _WAITS_KEPT:
                waits.clear()
            waits[timeout_ms] = request
        return self._issue(request, self._on_epoll_wait)

    def _epfd(self) -> int:
        assert self.epfd is not None, "epoll fd used before EpollCreate"
        return self.epfd

    def _timeout_ms(self) -> int:
        if self._work_left or (self._accept_ready and self._accepting()):
            return 0
        nearest = self._nearest_deadline()
        for t in (self.shutdown_deadline, self._accept_blocked_until):
            if t is not None and (nearest is None or t < nearest):
                nearest = t
        if nearest is None:
            return -1
        # Round up: waking a little early would only cost a second wait, waking before the
        # deadline with timeout 0 would spin.
        return max(0, -(-(nearest - self.now) // 1_000_000))

    # ---------------------------------------------------------------------------------------------
    # setup: socket, options, bind, listen, getsockname, epoll

    def _setup_steps(self) -> list[Callable[[], sc.Syscall]]:
        c = self.config
        steps: list[Callable[[], sc.Syscall]] = [lambda: sc.Socket()]
        # SO_REUSEADDR: a restart must be able to bind while old connections sit in TIME_WAIT
        # (LINUX.md §6; accepted children inherit the flag).
        steps.append(lambda: sc.SetSockOpt(fd=self._lfd(), level=sc.SOL_SOCKET, name=sc.SO_REUSEADDR, value=1))
        if c.rcvbuf is not None:
            rcv = c.rcvbuf
            steps.append(lambda: sc.SetSockOpt(fd=self._lfd(), level=sc.SOL_SOCKET, name=sc.SO_RCVBUF, value=rcv))
        if c.sndbuf is not None:
            snd = c.sndbuf
            steps.append(lambda: sc.SetSockOpt(fd=self._lfd(), level=sc.SOL_SOCKET, name=sc.SO_SNDBUF, value=snd))
        steps.append(lambda: sc.Bind(fd=self._lfd(), host=c.host, port=c.port))
        steps.append(lambda: sc.Listen(fd=self._lfd(), backlog=c.backlog))
        steps.append(lambda: sc.GetSockName(fd=self._lfd()))
        steps.append(lambda: sc.EpollCreate())
        # The listener's interest is what it will be when running, so the ADD needs no MOD after
        # it, and the first Accept waits for epoll to report a connection (ADD polls at once, so
        # one queued already is reported by the first EpollWait: LINUX.md §4). A trace recorded
        # before `listener_armed_at_add` opened with ADD 0 (we were not RUNNING yet), a MOD to
        # EPOLLIN and an Accept that said EAGAIN: `_listener_want()` here replays that.
        if c.listener_armed_at_add:
            mask = sc.EPOLLIN | (sc.EPOLLET if c.edge_triggered else 0)
            steps.append(lambda: sc.EpollCtl(epfd=self._epfd(), op=sc.EPOLL_CTL_ADD, fd=self._lfd(), mask=mask))
        else:
            steps.append(
                lambda: sc.EpollCtl(epfd=self._epfd(), op=sc.EPOLL_CTL_ADD, fd=self._lfd(), mask=self._listener_want())
            )
        return steps

    def _lfd(self) -> int:
        assert self.listen_fd is not None, "listener used before Socket"
        return self.listen_fd

    def _next_setup(self) -> sc.Syscall:
        steps = self._setup_steps()
        return self._issue(steps[self._setup_stage](), self._on_setup)

    def _on_setup(self, result: sc.Result) -> None:
        request = self._current
        self._setup_stage += 1
        if isinstance(request, sc.SetSockOpt):
            if result.error is not None:
                # Not fatal: the server works without SO_REUSEADDR or a buffer size, and the
                # errno is in the trace and the stats.
                self.stats.sockopt_errors += 1
                self._count_error(result.error)
            return
        if result.error is not None:
            self._abort(f"{type(request).__name__.lower()}: {result.error}")
            return
        if isinstance(request, sc.Socket):
            self.listen_fd = result.value  # type: ignore[assignment]
        elif isinstance(request, sc.GetSockName):
            self.bound_port = result.value[1]  # type: ignore[index]
        elif isinstance(request, sc.EpollCreate):
            self.epfd = result.value  # type: ignore[assignment]
            self._waits.clear()  # they name the epfd
        elif isinstance(request, sc.EpollCtl):
            self._listener_mask = request.mask
            self.state = RUNNING

    # ---------------------------------------------------------------------------------------------
    # connection lifecycle

    def _transition(self, conn: Connection, event: ConnEvent, reason: CloseReason | None = None) -> None:
        old = conn.state
        if old in (CLOSING, CLOSED) and event is not ConnEvent.CLOSE_RETURNED:
            return  # already going: a late error changes nothing
        try:
            new = TRANSITIONS[old][event]
        except KeyError:
            raise AssertionError(f"connection {conn.id}: no transition from {old.value} on {event.value}") from None
        if new is LINGERING and self.config.linger_timeout_ns is None:
            new = CLOSING  # linger disabled: close at once
        conn.state = new
        self._dirty[conn.id] = None
        if new is CLOSING:
            conn.close_reason = reason
            self._closeq.append(conn.id)
        elif new is LINGERING:
            conn.shutdown_due = True
            conn.lingering_since = self.now
            self._lingerq.append(conn.id)

    def _drop(self, conn: Connection, reason: CloseReason, error: str | None = None) -> None:
        """Close at once: an error, a timeout, an app failure."""
        if conn.state in (CLOSING, CLOSED):
            return
        conn.error = error
        if reason is CloseReason.RESET:
            self.stats.resets += 1
        self._transition(conn, ConnEvent.FAILED, reason)

    def _count_error(self, errno: str | None) -> None:
        if errno is not None:
            self.stats.errors[errno] = self.stats.errors.get(errno, 0) + 1

    def _next_close(self) -> sc.Syscall | None:
        while self._closeq:
            conn = self.connections[self._closeq.popleft()]
            return self._issue(sc.Close(fd=conn.fd), functools.partial(self._on_conn_closed, conn))
        if self._listener_close_due and self.listen_fd is not None:
            self._listener_close_due = False
            return self._issue(sc.Close(fd=self.listen_fd), self._on_listener_closed)
        return None

    def _on_conn_closed(self, conn: Connection, result: sc.Result) -> None:
        # close(2) releases the fd even when it reports an error (EINTR, EIO): never retry.
        if result.error is not None:
            self.stats.close_errors += 1
            self._count_error(result.error)
        self._transition(conn, ConnEvent.CLOSE_RETURNED)
        del self.connections[conn.id]
        del self._by_fd[conn.fd]
        self.stats.closed += 1
        reason = conn.close_reason.value if conn.close_reason is not None else "unknown"
        self.stats.closes[reason] = self.stats.closes.get(reason, 0) + 1
        # A slot is free: an accept that failed for lack of fds may succeed now.
        self._accept_blocked_until = None

    def _on_listener_closed(self, result: sc.Result) -> None:
        if result.error is not None:
            self.stats.close_errors += 1
            self._count_error(result.error)
        self.listen_fd = None
        self._listener_mask = None
        self._accept_ready = False

    def _on_epoll_closed(self, result: sc.Result) -> None:
        if result.error is not None:
            self.stats.close_errors += 1
            self._count_error(result.error)
        self.epfd = None

    # -- per-connection setup ---------------------------------------------------------------------

    def _next_conn_setup(self) -> sc.Syscall | None:
        while self._setupq:
            conn = self.connections.get(self._setupq[0])
            if conn is None or conn.state is not CONN_SETUP:
                self._setupq.popleft()
                continue
            if self.config.nodelay and not conn.nodelay_done:
                request: sc.Syscall = sc.SetSockOpt(fd=conn.fd, level=sc.IPPROTO_TCP, name=sc.TCP_NODELAY, value=1)
                return self._issue(request, functools.partial(self._on_nodelay, conn))
            self._setupq.popleft()
            mask = self._conn_want(conn)
            request = sc.EpollCtl(epfd=self._epfd(), op=sc.EPOLL_CTL_ADD, fd=conn.fd, mask=mask)
            return self._issue(request, functools.partial(self._on_conn_added, conn, mask))
        return None

    def _on_nodelay(self, conn: Connection, result: sc.Result) -> None:
        conn.nodelay_done = True
        if result.error is not None:  # e.g. the peer already reset: harmless, the next recv will tell
            self.stats.sockopt_errors += 1
            self._count_error(result.error)

    def _on_conn_added(self, conn: Connection, mask: int, result: sc.Result) -> None:
        if result.error is not None:
            self._count_error(result.error)
            self._drop(conn, CloseReason.SETUP_FAILED, result.error)
            return
        conn.registered = mask
        self._dirty[conn.id] = None
        if conn.state is CONN_SETUP:
            self._transition(conn, ConnEvent.REGISTERED)
            self._settle(conn)

    # -- lingering close --------------------------------------------------------------------------

    def _next_linger_shutdown(self) -> sc.Syscall | None:
        while self._lingerq:
            conn = self.connections.get(self._lingerq.popleft())
            if conn is None or conn.state is not LINGERING or not conn.shutdown_due:
                continue
            conn.shutdown_due = False
            return self._issue(sc.Shutdown(fd=conn.fd, how=sc.SHUT_WR), functools.partial(self._on_shutdown, conn))
        return None

    def _on_shutdown(self, conn: Connection, result: sc.Result) -> None:
        if result.error is not None:  # ENOTCONN: the peer reset meanwhile
            self._count_error(result.error)
            self._drop(conn, CloseReason.RESET, result.error)
            return
        conn.shut_wr = True
        self._settle(conn)

    # -- accepting --------------------------------------------------------------------------------

    def _accepting(self) -> bool:
        """Whether we want new connections now (the listener's interest follows this)."""
        return (
            self.state is RUNNING
            and self.listen_fd is not None
            and self._accept_blocked_until is None
            and len(self.connections) < self.config.max_connections
        )

    def _listener_want(self) -> int:
        if not self._accepting():
            return 0
        return sc.EPOLLIN | (sc.EPOLLET if self.config.edge_triggered else 0)

    def _next_accept(self) -> sc.Syscall | None:
        if not (self._accept_ready and self._accepting()):
            return None
        if self._accepts_this_turn >= self.config.accept_budget:
            return None  # _timeout_ms sees _accept_ready and polls
        self._accepts_this_turn += 1
        return self._issue(sc.Accept(fd=self._lfd()), self._on_accept)

    def _on_accept(self, result: sc.Result) -> None:
        if result.error is not None:
            if result.error == "EAGAIN":
                self._accept_ready = False
                return
            self.stats.accept_errors += 1
            self._count_error(result.error)
            if result.error not in ACCEPT_RETRY_ERRORS:
                self.stats.accept_pauses += 1
                self._accept_blocked_until = self.now + self.config.accept_retry_ns
            return
        # Any, not int: compiled, an int local is unboxed and every container it is stored in
        # gets a new int object (the fd, the id and the clock are kept in several places per
        # connection); as objects they are shared, as in the interpreter (docs/benchmarks.md, P6a).
        accepted: Any = result.value
        fd: Any = accepted[0]
        peer: Any = accepted[1]
        cid: Any = self._next_id
        now: Any = self.now
        try:
            app = self.app_factory()
            failed: str | None = None
        except Exception as exc:  # noqa: BLE001 - an app's bug must not stop the server
            app, failed = _DeadApp(), f"{type(exc).__name__}: {exc}"
        conn = Connection(
            id=cid,
            fd=fd,
            peer=(peer[0], peer[1]),
            app=app,
            accepted_ns=now,
            last_io_ns=now,
        )
        self._next_id += 1
        self.connections[cid] = conn
        self._by_fd[fd] = cid
        self.stats.accepted += 1
        if len(self.connections) >= self.config.max_connections:
            self.stats.accept_pauses += 1
        if failed is not None:
            self._note_app_error(failed)
            self._drop(conn, CloseReason.APP_ERROR, failed)
            return
        self._setupq.append(cid)
        self._settle(conn)  # arms the header timer: the first request is due from now

    # -- reading and writing ----------------------------------------------------------------------

    def would_read(self, conn: Connection) -> bool:
        """Whether we read this connection when it is readable: not after EOF, not while its output
        is over the cap or the app holds output back (backpressure), not while flushing."""
        if conn.state is LINGERING:
            return not conn.read_eof
        return (
            conn.state is OPEN
            and not conn.read_eof
            and len(conn.out) <= self.config.output_cap
            and not conn.app_more
        )

    def _can_send(self, conn: Connection) -> bool:
        return conn.writable and bool(conn.out) and (conn.state is OPEN or conn.state is FLUSHING)

    def _can_recv(self, conn: Connection) -> bool:
        return conn.readable and self.would_read(conn)

    def _enqueue(self, conn: Connection) -> None:
        if not conn.queued and (self._can_send(conn) or self._can_recv(conn)):
            conn.queued = True
            self._runq.append(conn.id)

    def _next_io(self) -> sc.Syscall | None:
        # Round robin: one syscall for the connection at the head, then it goes to the back.
        budget = self.config.turn_budget_ns
        if budget is not None and self._turn_io and self._runq and self.now - self._turn_started >= budget:
            # The turn has taken long enough: poll (EpollWait 0) so that new connections and other
            # fds' events are taken up too. The run queue stays as it is, so the round robin
            # resumes where it stopped; a turn always makes progress first (_turn_io), so this
            # cannot spin.
            self._work_left = True
            self.stats.turns_cut += 1
            return None
        while self._runq:
            conn = self.connections.get(self._runq.popleft())
            if conn is None:
                continue
            conn.queued = False
            send, recv = self._can_send(conn), self._can_recv(conn)
            if not (send or recv):
                continue
            if conn.budget_used >= self.config.io_budget:
                # Taken up after the next EpollWait, which polls (timeout 0) because of this.
                self._work_left = True
                self._parked.append(conn.id)
                continue
            if conn.budget_used == 0:
                self._touched.append(conn.id)
            conn.budget_used += 1
            self._turn_io += 1
            conn.queued = True
            self._runq.append(conn.id)
            # Writing first: a response on its way out is worth more than the next request.
            if send:
                self.stats.send_calls += 1
                limit = self.config.send_size
                if limit is None or len(conn.out) <= limit:
                    data = bytes(conn.out)
                else:
                    with memoryview(conn.out) as pending:  # released before conn.out is resized
                        data = bytes(pending[:limit])
                return self._issue_io(sc.Send(fd=conn.fd, data=data), self._on_send_result, conn)
            self.stats.recv_calls += 1
            request = conn.recv_request
            if request is None:  # the same frozen value for every Recv on this connection
                request = conn.recv_request = sc.Recv(fd=conn.fd, size=self.config.recv_size)
            return self._issue_io(request, self._on_recv, conn)
        return None

    def _on_send_result(self, conn: Connection, result: sc.Result) -> None:
        self._on_send(conn, len(self._current.data), result)  # type: ignore[union-attr]  # a Send

    def _on_send(self, conn: Connection, attempted: int, result: sc.Result) -> None:
        if result.error is not None:
            if result.error == "EINTR":
                return
            if result.error == "EAGAIN":
                self.stats.eagain_send += 1
                self.stats.epollout_waits += 1
                conn.writable = False
                self._settle(conn)
                return
            self._count_error(result.error)
            self._drop(conn, CloseReason.RESET, result.error)
            return
        n: int = result.value  # type: ignore[assignment]
        del conn.out[:n]
        conn.bytes_out += n
        self.stats.bytes_out += n
        conn.last_io_ns = self.now
        if n < attempted:
            self.stats.partial_writes += 1
            if not self.config.edge_triggered:
                # LT: wait for EPOLLOUT, which LT reports as long as there is space; so if the
                # kernel took less than it could, the next epoll_wait says so at once. An
                # immediate retry would most likely cost an EAGAIN.
                # ET: keep the flag and send again (normally EAGAIN). Linux sets SOCK_NOSPACE
                # on a partial write, so a wakeup would follow anyway, but "until EAGAIN" holds
                # on any kernel, including a model that gets SOCK_NOSPACE wrong.
                self.stats.epollout_waits += 1
                conn.writable = False
        self._settle(conn)

    def _on_recv(self, conn: Connection, result: sc.Result) -> None:
        if result.error is not None:
            if result.error == "EINTR":
                return
            if result.error == "EAGAIN":
                self.stats.eagain_recv += 1
                conn.readable = False
                self._settle(conn)
                return
            self._count_error(result.error)
            self._drop(conn, CloseReason.RESET, result.error)
            return
        data: bytes = result.value  # type: ignore[assignment]
        if not data:
            conn.read_eof = True
            conn.readable = False
            self.stats.peer_eofs += 1
            if conn.state is LINGERING:
                self._transition(conn, ConnEvent.PEER_EOF, CloseReason.APP_CLOSE)
                return
            self._call_app(conn, lambda: conn.app.eof())
            self._transition(conn, ConnEvent.PEER_EOF)
            self._settle(conn)
            return
        conn.bytes_in += len(data)
        self.stats.bytes_in += len(data)
        conn.last_io_ns = self.now
        if conn.state is LINGERING:
            self.stats.discarded_bytes += len(data)
            self._settle(conn)
            return
        self._call_app(conn, lambda: conn.app.receive(data))
        self._settle(conn)

    def _call_app(self, conn: Connection, call: Callable[[], Any]) -> None:
        """Run an app call that returns output; queue the output. Any exception drops conn."""
        if conn.state in (CLOSING, CLOSED):
            return
        try:
            out = call()
            if not isinstance(out, bytes | bytearray):
                raise TypeError(f"app returned {type(out).__name__}, not bytes")
        except Exception as exc:  # noqa: BLE001 - whatever an app raises stops only its connection
            self._app_failed(conn, exc)
            return
        conn.out += out
        if out:
            conn.app_more = True  # it produced output; it may hold back more: pull to find out

    def _app_failed(self, conn: Connection, exc: BaseException) -> None:
        what = f"{type(exc).__name__}: {exc}"
        self._note_app_error(what)
        self._drop(conn, CloseReason.APP_ERROR, what)

    def _note_app_error(self, what: str) -> None:
        self.stats.app_errors += 1
        if self.stats.first_app_error is None:
            self.stats.first_app_error = what

    def _settle(self, conn: Connection) -> None:
        """Bring a connection to rest after anything happened to it: pull output from the app up
        to the cap, take the app's close request, finish flushing, check graceful shutdown, re-arm
        timers, and queue it for I/O if it has some to do."""
        self._dirty[conn.id] = None  # whatever happened may change the mask it wants
        cap = self.config.output_cap
        try:
            if conn.state in (OPEN, FLUSHING):
                while conn.app_more and len(conn.out) < cap:
                    want = cap - len(conn.out)
                    piece = conn.app.pull(want)
                    if not isinstance(piece, bytes | bytearray) or len(piece) > want:
                        raise TypeError(f"pull({want}) returned {type(piece).__name__} of {len(piece)}")
                    conn.out += piece
                    conn.app_more = len(piece) == want
                self._update_counts(conn)
                if conn.state is OPEN and conn.app.close_after_flush:
                    self._transition(conn, ConnEvent.APP_CLOSE)
            if conn.state is FLUSHING and not conn.out and not conn.app_more:
                if conn.read_eof:
                    self._transition(conn, ConnEvent.FLUSHED_AFTER_EOF, CloseReason.PEER_EOF)
                else:
                    self._transition(conn, ConnEvent.FLUSHED, CloseReason.APP_CLOSE)
            if self.state is SHUTTING_DOWN and self._quiescent(conn):
                self._transition(conn, ConnEvent.QUIESCENT_AT_SHUTDOWN, CloseReason.SHUTDOWN)
            self._arm_timers(conn)
        except Exception as exc:  # noqa: BLE001 - from the app's pull, properties or counters
            self._app_failed(conn, exc)
            return
        if conn.state is OPEN:
            over = len(conn.out) > cap or conn.app_more
            if over and not conn.backpressured:
                self.stats.backpressure_pauses += 1
            conn.backpressured = over
        self._enqueue(conn)

    def _update_counts(self, conn: Connection) -> None:
        requests, responses = conn.app.requests, conn.app.responses
        self.stats.requests += requests - conn.requests
        self.stats.responses += responses - conn.responses
        conn.requests, conn.responses = requests, responses

    def _quiescent(self, conn: Connection) -> bool:
        """Nothing in flight: closing now loses no request and no response."""
        if conn.state is CONN_SETUP:
            return True
        return (
            conn.state is OPEN
            and not conn.out
            and not conn.app_more
            and conn.app.phase in (PHASE_IDLE, PHASE_HEAD)
        )

    # -- timers -----------------------------------------------------------------------------------

    def _nearest_deadline(self) -> int | None:
        """The earliest deadline of any connection, exactly (the EpollWait timeout hangs on it)."""
        heap = self._timers
        while heap:
            key, _, cid = heap[0]
            conn = self.connections.get(cid)
            if conn is None or conn.deadline_at != key:
                heapq.heappop(heap)  # stale: the connection left, or an earlier entry replaced it
                continue
            deadline = _nearest_deadline(conn)
            if deadline == key:
                return key
            # The deadline moved later (or went) since this entry was made: move the entry on.
            heapq.heappop(heap)
            conn.deadline_at = None
            self._note_deadline(conn)
        return None

    def _note_deadline(self, conn: Connection) -> None:
        # Lazily: only a deadline *earlier* than the connection's heap entry needs a new entry.
        # The idle deadline moves later on every byte in or out; pushing each time cost a heap
        # entry per Recv and Send. An entry that comes up early is moved on when it reaches the
        # top (_nearest_deadline, _expire), so the nearest deadline is still exact.
        deadline: Any = _nearest_deadline(conn)  # Any: one int object for both places (see _on_accept)
        if deadline is not None and (conn.deadline_at is None or deadline < conn.deadline_at):
            conn.deadline_at = deadline
            self._timer_seq += 1
            cid: Any = conn.id
            heapq.heappush(self._timers, (deadline, self._timer_seq, cid))

    def _arm_timers(self, conn: Connection) -> None:
        self._set_deadlines(conn)
        self._note_deadline(conn)

    def _set_deadlines(self, conn: Connection) -> None:
        c = self.config
        conn.idle_deadline = conn.header_deadline = conn.keepalive_deadline = conn.linger_deadline = None
        if conn.state is LINGERING:
            if c.linger_timeout_ns is not None:
                conn.linger_deadline = conn.lingering_since + c.linger_timeout_ns
            return
        if conn.state not in (CONN_SETUP, OPEN, FLUSHING):
            return
        if c.idle_timeout_ns is not None:
            conn.idle_deadline = conn.last_io_ns + c.idle_timeout_ns
        # The header and keep-alive timers run only while we wait on the peer: all output sent.
        # While a response is pending, the peer not reading it is the idle timer's business, and
        # a pipelined request head that we have stopped reading (backpressure) is not its fault.
        timer: Timer | None = None
        if conn.state in (CONN_SETUP, OPEN) and not conn.out and not conn.app_more:
            phase = conn.app.phase
            timer = HEADER_TIMER if phase is PHASE_HEAD else KEEPALIVE_TIMER if phase is PHASE_IDLE else None
        if timer is not conn.timer:
            conn.timer, conn.timer_since = timer, self.now
        if timer is HEADER_TIMER and c.header_timeout_ns is not None:
            conn.header_deadline = conn.timer_since + c.header_timeout_ns
        elif timer is KEEPALIVE_TIMER and c.keepalive_timeout_ns is not None:
            conn.keepalive_deadline = conn.timer_since + c.keepalive_timeout_ns

    def _expire(self) -> None:
        now = self.now
        if self._accept_blocked_until is not None and self._accept_blocked_until <= now:
            self._accept_blocked_until = None
        if self.shutdown_deadline is not None and self.shutdown_deadline <= now:
            for conn in list(self.connections.values()):
                if conn.state not in (CLOSING, CLOSED):
                    self.stats.shutdown_forced += 1
                    self._drop(conn, CloseReason.SHUTDOWN_FORCED)
            return
        heap = self._timers
        if not heap or heap[0][0] > now:
            return  # nothing due: the usual case, on every EpollWait
        due: dict[int, Connection] = {}
        while heap and heap[0][0] <= now:
            key, _, cid = heapq.heappop(heap)
            queued = self.connections.get(cid)
            if queued is None or queued.deadline_at != key:
                continue  # stale
            queued.deadline_at = None
            deadline = _nearest_deadline(queued)
            if deadline is not None and deadline <= now:
                due[cid] = queued
            else:
                self._note_deadline(queued)  # came up early: the deadline moved later
        for cid in sorted(due):  # in accept order, whatever order the deadlines fell in
            conn = due[cid]
            conn.deadline_at = None
            for name, reason, counter in _TIMEOUTS:
                t = getattr(conn, name)
                if t is not None and t <= now:
                    setattr(self.stats, counter, getattr(self.stats, counter) + 1)
                    self._drop(conn, reason)
                    break
            else:
                self._note_deadline(conn)

    # -- epoll ------------------------------------------------------------------------------------

    def _conn_want(self, conn: Connection) -> int:
        """The mask a connection should be registered with now."""
        if self.config.edge_triggered:
            return _ET_MASK  # registered once: see "Epoll modes" above
        mask = 0
        if self.would_read(conn) or conn.state is CONN_SETUP:
            mask |= sc.EPOLLIN | sc.EPOLLRDHUP
        # OUT only once the socket has said it is full (EAGAIN, or in LT a partial write): while
        # it is writable, pending output is in the run queue or parked, and taken up after the
        # next EpollWait(0) without an event. Arming OUT there would cost a MOD to add it and
        # another to drop it at every cut turn (0.2 per request under wrk with most turns cut).
        if conn.out and not conn.writable and conn.state in (OPEN, FLUSHING):
            mask |= sc.EPOLLOUT
        return mask

    def _next_interest(self) -> sc.Syscall | None:
        """EPOLL_CTL_MOD where a registered mask differs from what we want: done just before
        EpollWait, because the mask matters only while we sleep (fewer MODs than on every change)."""
        if self.listen_fd is not None and self._listener_mask is not None:
            want = self._listener_want()
            if want != self._listener_mask:
                request = sc.EpollCtl(epfd=self._epfd(), op=sc.EPOLL_CTL_MOD, fd=self.listen_fd, mask=want)
                return self._issue(request, functools.partial(self._on_listener_mod, want))
        dirty = self._dirty
        if not dirty:
            return None
        if self.config.edge_triggered:
            dirty.clear()
            return None
        for cid in sorted(dirty):  # in accept order, as a scan of every connection would go
            del dirty[cid]
            conn = self.connections.get(cid)
            if (
                conn is None
                or conn.registered is None
                or conn.state not in (OPEN, FLUSHING, LINGERING)
            ):
                continue
            want = self._conn_want(conn)
            if want != conn.registered:
                request = sc.EpollCtl(epfd=self._epfd(), op=sc.EPOLL_CTL_MOD, fd=conn.fd, mask=want)
                return self._issue(request, functools.partial(self._on_conn_mod, conn, want))
        return None

    def _on_listener_mod(self, want: int, result: sc.Result) -> None:
        if result.error is not None:
            self._count_error(result.error)
            self._abort(f"epoll_ctl MOD listener: {result.error}")
            return
        if want and not self._listener_mask:
            self._accept_ready = True  # MOD re-polls, but asking costs one EAGAIN at most
        self._listener_mask = want

    def _on_conn_mod(self, conn: Connection, want: int, result: sc.Result) -> None:
        if result.error is not None:
            self._count_error(result.error)
            self._drop(conn, CloseReason.RESET, result.error)
            return
        conn.registered = want

    def _on_epoll_wait(self, result: sc.Result) -> None:
        self.stats.epoll_waits += 1
        for cid in self._touched:
            conn = self.connections.get(cid)
            if conn is not None:
                conn.budget_used = 0
        self._touched.clear()
        self._accepts_this_turn = 0
        self._work_left = False
        self._turn_started, self._turn_io = self.now, 0
        if result.error is not None:
            if result.error != "EINTR":
                self._count_error(result.error)
                self._abort(f"epoll_wait: {result.error}")
            self._expire()
            return
        events: tuple[tuple[int, int], ...] = result.value  # type: ignore[assignment]
        self.stats.events += len(events)
        touched: list[Connection] = []
        for fd, mask in events:
            if fd == self.listen_fd:
                self._accept_ready = True  # ERR/HUP on a listener: accept() will say what
                continue
            conn = self.connections[self._by_fd[fd]]
            if mask & _ERR_HUP:
                if conn.state is LINGERING and not mask & sc.EPOLLERR:
                    # HUP after our SHUT_WR: the peer's FIN arrived too; lingering is over.
                    self._transition(conn, ConnEvent.PEER_EOF, CloseReason.APP_CLOSE)
                else:
                    self._count_error("EPOLLERR" if mask & sc.EPOLLERR else "EPOLLHUP")
                    self._drop(conn, CloseReason.RESET, "EPOLLERR" if mask & sc.EPOLLERR else "EPOLLHUP")
                continue
            if mask & _READ_EVENTS:
                conn.readable = True
            if mask & sc.EPOLLOUT:
                conn.writable = True
            touched.append(conn)
        for conn in touched:
            self._settle(conn)
        self._expire()
        # Work parked by a budget last turn: its flags are still set, no event will repeat them.
        parked, self._parked = self._parked, []
        for cid in parked:
            conn = self.connections.get(cid)
            if conn is not None:
                self._enqueue(conn)

    # -- shutdown and abort -----------------------------------------------------------------------

    def _begin_shutdown(self, reason: str) -> None:
        self.shutdown_requested = True
        if self.exit_reason is None:
            self.exit_reason = reason
        if self.state is MACHINE_SETUP:
            # Nothing is serving yet: close what exists and stop.
            self.state = SHUTTING_DOWN
            self._listener_close_due = self.listen_fd is not None
            return
        if self.state is not RUNNING:
            return
        self.state = SHUTTING_DOWN
        self.shutdown_deadline = self.now + self.config.shutdown_grace_ns
        self._listener_close_due = self.listen_fd is not None
        self._accept_ready = False
        for conn in list(self.connections.values()):
            self._settle(conn)
        if self.config.shutdown_grace_ns == 0:
            self._expire()

    def _abort(self, reason: str) -> None:
        """The server cannot go on: close everything now and exit."""
        self.exit_reason = reason
        was_setup = self.state is MACHINE_SETUP
        self._begin_shutdown(reason)
        if was_setup:
            return
        for conn in list(self.connections.values()):
            self._drop(conn, CloseReason.ABORT)


def _nearest_deadline(conn: Connection) -> Any:
    """The nearest of a connection's deadlines (None: none is set). Here rather than on the
    Connection, so that compiled it costs no Python frame: it runs several times per step."""
    nearest: Any = conn.idle_deadline
    t: Any = conn.header_deadline
    if t is not None and (nearest is None or t < nearest):
        nearest = t
    t = conn.keepalive_deadline
    if t is not None and (nearest is None or t < nearest):
        nearest = t
    t = conn.linger_deadline
    if t is not None and (nearest is None or t < nearest):
        nearest = t
    return nearest


def _is_fd(value: object) -> bool:
    return type(value) is int and value >= 0


def _is_addr(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], str)
        and type(value[1]) is int
        and 0 <= value[1] <= 65535
    )
