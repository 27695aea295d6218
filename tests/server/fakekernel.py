"""A small fake kernel and driver for testing ServerMachine directly, with invariant checks.

The kernel answers every request with a result that Linux could give (LINUX.md §3, §4), but
chooses freely where Linux leaves a choice: how many bytes a recv returns, how many a send
takes, when buffer space frees up. A `Chooser` makes those choices -- hypothesis in the property
tests, a fixed policy in the unit tests.

It checks the machine as it goes and raises `Violation` on:
- a syscall on an fd that is not open, or of the wrong kind (Recv on the listener, ...);
- a Close of a connection that is not CLOSING in the machine, or closed twice;
- Send after our own SHUT_WR; EPOLL_CTL_ADD twice; MOD of an unregistered fd;
- bytes sent that are not the app's output in order (checked on every Send), and, for a
  connection closed gracefully, not all of it;
- app input that is not what the peer sent, in order;
- pending output above output_cap plus the largest single piece the app handed over;
- in LT: EPOLLOUT registered with no output pending; at a blocking wait, output pending and
  EPOLLOUT not registered, or readable data and EPOLLIN not registered while the machine reads;
- in ET: at a blocking wait, a socket the machine would act on that is ready with no edge
  pending (a lost wakeup: the server would sleep forever);
- a busy loop: EpollWait(timeout=0) after a turn that made no progress, or a turn of only
  no-progress results that is longer than one attempt per fd.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Protocol

import attrs

from simnet.server import syscalls as sc
from simnet.server.apps.base import AppFactory, AppProtocol, Phase
from simnet.server.machine import CloseReason, ConnState, ServerMachine

MS = 1_000_000


class Violation(AssertionError):
    pass


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...


class MaxChooser:
    """Always the most generous choice: whole recvs, whole sends."""

    def integer(self, lo: int, hi: int) -> int:
        return hi


# ---------------------------------------------------------------------------------------------
# a recording app wrapper: what the app was given and what it handed back, per connection


class RecordingApp:
    def __init__(self, inner: AppProtocol) -> None:
        self.inner = inner
        self.input = bytearray()
        self.output = bytearray()
        self.max_piece = 0
        self.eof_seen = False

    def _out(self, out: bytes) -> bytes:
        self.output += out
        self.max_piece = max(self.max_piece, len(out))
        return out

    def receive(self, data: bytes) -> bytes:
        self.input += data
        return self._out(self.inner.receive(data))

    def eof(self) -> bytes:
        self.eof_seen = True
        return self._out(self.inner.eof())

    def pull(self, max_bytes: int) -> bytes:
        return self._out(self.inner.pull(max_bytes))

    @property
    def close_after_flush(self) -> bool:
        return self.inner.close_after_flush

    @property
    def phase(self) -> Phase:
        return self.inner.phase

    @property
    def requests(self) -> int:
        return self.inner.requests

    @property
    def responses(self) -> int:
        return self.inner.responses


class Recording:
    """AppFactory wrapper; `apps[k]` is the app of the k-th accepted connection."""

    def __init__(self, inner: AppFactory) -> None:
        self.inner = inner
        self.apps: list[RecordingApp] = []

    def __call__(self) -> RecordingApp:
        app = RecordingApp(self.inner())
        self.apps.append(app)
        return app


# ---------------------------------------------------------------------------------------------
# the kernel


@attrs.define
class Peer:
    """One client connection as the kernel sees it (the server's accepted socket and its peer)."""

    index: int  # k-th accepted
    port: int
    fd: int | None = None
    sent: bytearray = attrs.field(factory=bytearray)  # everything the client sent
    inbox: bytearray = attrs.field(factory=bytearray)  # not yet read by the server
    fin: bool = False  # the client sent FIN after `sent`
    rst: bool = False  # the client reset the connection
    rst_reported: bool = False
    space: int = 0  # send buffer space the server may use now
    received: bytearray = attrs.field(factory=bytearray)  # everything the server's sends queued
    nospace: bool = False  # a send ran out of space (SOCK_NOSPACE): OUT wakeup on new space
    shut_wr: bool = False  # the server did shutdown(SHUT_WR)
    closed: bool = False
    aborted_in_queue: bool = False  # accept() reports ECONNABORTED for it


class FakeKernel:
    def __init__(self, chooser: Chooser, *, initial_space: int = 1 << 20, fd_limit: int | None = None) -> None:
        self.chooser = chooser
        self.now = 0
        self.initial_space = initial_space
        self.fd_limit = fd_limit  # EMFILE once this many fds are open
        self.open: dict[int, str] = {}  # fd -> "socket" | "epoll" | "conn"
        self.listen_fd: int | None = None
        self.listening = False
        self.queue: deque[Peer] = deque()  # accept queue
        self.peers: list[Peer] = []  # accepted, in order
        self.by_fd: dict[int, Peer] = {}
        self.registered: dict[int, int] = {}  # fd -> mask
        self.ready: dict[int, None] = {}  # ET ready list, in wakeup order
        self.spurious: dict[int, int] = {}  # extra bits to report once
        self.next_port = 50000

    # -- the world --------------------------------------------------------------------------------

    def connect(self, *, aborted: bool = False) -> Peer:
        peer = Peer(index=-1, port=self.next_port, space=self.initial_space, aborted_in_queue=aborted)
        self.next_port += 1
        self.queue.append(peer)
        if self.listen_fd is not None:
            self._wake(self.listen_fd, sc.EPOLLIN)
        return peer

    def client_send(self, peer: Peer, data: bytes) -> None:
        if peer.fin or peer.rst or peer.closed or not data:
            return
        peer.sent += data
        peer.inbox += data
        if peer.fd is not None:
            self._wake(peer.fd, sc.EPOLLIN | sc.EPOLLRDNORM)

    def client_fin(self, peer: Peer) -> None:
        if peer.fin or peer.rst or peer.closed:
            return
        peer.fin = True
        if peer.fd is not None:
            self._wake(peer.fd, sc.EPOLLIN | sc.EPOLLRDHUP)

    def client_reset(self, peer: Peer) -> None:
        if peer.rst or peer.closed:
            return
        peer.rst = True
        if peer.fd is not None:
            self._wake(peer.fd, sc.EPOLLIN | sc.EPOLLOUT | sc.EPOLLERR | sc.EPOLLHUP | sc.EPOLLRDHUP)

    def client_read(self, peer: Peer, n: int) -> None:
        """The client consumed n bytes: that much buffer space frees up at the server."""
        if peer.closed or peer.rst or n <= 0:
            return
        peer.space += n
        if peer.nospace and peer.fd is not None:
            # sk_stream_write_space runs only while SOCK_NOSPACE is set (LINUX.md §4).
            peer.nospace = False
            self._wake(peer.fd, sc.EPOLLOUT)

    def spurious_event(self, peer: Peer, bits: int) -> None:
        if peer.fd is not None and peer.fd in self.registered:
            self.spurious[peer.fd] = self.spurious.get(peer.fd, 0) | bits

    # -- readiness (tcp_poll) ---------------------------------------------------------------------

    def poll_mask(self, fd: int) -> int:
        if fd == self.listen_fd:
            return sc.EPOLLIN if self.queue else 0
        peer = self.by_fd[fd]
        if peer.rst:
            return sc.EPOLLIN | sc.EPOLLOUT | sc.EPOLLERR | sc.EPOLLHUP | sc.EPOLLRDHUP
        mask = 0
        if peer.inbox or peer.fin:
            mask |= sc.EPOLLIN
        if peer.fin:
            mask |= sc.EPOLLRDHUP
            if peer.shut_wr:
                mask |= sc.EPOLLHUP
        if peer.space > 0 or peer.shut_wr:
            mask |= sc.EPOLLOUT
        return mask

    def reportable(self, fd: int) -> int:
        return self.poll_mask(fd) & (self.registered[fd] | sc.EPOLLERR | sc.EPOLLHUP)

    def _wake(self, fd: int, key: int) -> None:
        # ep_poll_callback: queue the item if the wakeup key intersects its interest (ERR and HUP
        # are always of interest); an item already queued keeps its place.
        mask = self.registered.get(fd)
        if mask is None:
            return
        if key & (mask | sc.EPOLLERR | sc.EPOLLHUP) and fd not in self.ready:
            self.ready[fd] = None

    def readable(self, peer: Peer) -> bool:
        return bool(peer.inbox) or peer.fin or peer.rst

    # -- syscalls ---------------------------------------------------------------------------------

    def _alloc(self, kind: str) -> int | None:
        if self.fd_limit is not None and len(self.open) >= self.fd_limit:
            return None
        fd = 3
        while fd in self.open:  # the lowest free fd, as Linux: re-use is what flushes out bugs
            fd += 1
        self.open[fd] = kind
        return fd

    def _need(self, fd: int, *kinds: str) -> None:
        if self.open.get(fd) not in kinds:
            raise Violation(f"syscall on fd {fd}: open as {self.open.get(fd)!r}, expected {kinds}")

    def execute(self, req: sc.Syscall, timeout_passed: bool = False) -> sc.Result | None:
        """The result of `req`, or None if it is an EpollWait that would block now."""
        ok = lambda value=None: sc.Result(value=value, now=self.now)  # noqa: E731
        err = lambda name: sc.Result(error=name, now=self.now)  # noqa: E731
        if isinstance(req, sc.Socket):
            fd = self._alloc("socket")
            return err("EMFILE") if fd is None else ok(fd)
        if isinstance(req, sc.EpollCreate):
            fd = self._alloc("epoll")
            return err("EMFILE") if fd is None else ok(fd)
        if isinstance(req, sc.SetSockOpt):
            self._need(req.fd, "socket", "conn")
            return ok()
        if isinstance(req, sc.Bind):
            self._need(req.fd, "socket")
            self.listen_fd = req.fd
            return ok()
        if isinstance(req, sc.Listen):
            self._need(req.fd, "socket")
            self.listening = True
            return ok()
        if isinstance(req, sc.GetSockName):
            self._need(req.fd, "socket")
            return ok(("127.0.0.1", 8080))
        if isinstance(req, sc.Accept):
            self._need(req.fd, "socket")
            if req.fd != self.listen_fd:
                raise Violation("accept on a socket that is not the listener")
            if not self.queue:
                return err("EAGAIN")
            if self.queue[0].aborted_in_queue:
                self.queue.popleft()
                return err("ECONNABORTED")
            fd = self._alloc("conn")
            if fd is None:
                return err("EMFILE")
            peer = self.queue.popleft()
            peer.index, peer.fd = len(self.peers), fd
            self.peers.append(peer)
            self.by_fd[fd] = peer
            return ok((fd, ("10.0.0.2", peer.port)))
        if isinstance(req, sc.Recv):
            self._need(req.fd, "conn")
            peer = self.by_fd[req.fd]
            if peer.inbox:  # queued data survives a RST (tcp_reset purges only the write queue)
                n = self.chooser.integer(1, min(req.size, len(peer.inbox)))
                data = bytes(peer.inbox[:n])
                del peer.inbox[:n]
                return ok(data)
            if peer.rst and not peer.rst_reported:
                peer.rst_reported = True
                return err("ECONNRESET")
            if peer.fin or peer.rst:
                return ok(b"")
            return err("EAGAIN")
        if isinstance(req, sc.Send):
            self._need(req.fd, "conn")
            peer = self.by_fd[req.fd]
            if peer.shut_wr:
                raise Violation(f"Send on fd {req.fd} after our own SHUT_WR")
            if peer.rst:
                if not peer.rst_reported:
                    peer.rst_reported = True
                    return err("ECONNRESET")
                return err("EPIPE")
            if peer.space == 0:
                peer.nospace = True
                return err("EAGAIN")
            n = self.chooser.integer(1, min(len(req.data), peer.space))
            peer.space -= n
            peer.received += req.data[:n]
            if n < len(req.data):
                peer.nospace = True
            return ok(n)
        if isinstance(req, sc.Shutdown):
            self._need(req.fd, "conn")
            peer = self.by_fd[req.fd]
            if peer.shut_wr:
                raise Violation(f"Shutdown twice on fd {req.fd}")
            peer.shut_wr = True
            if peer.fin:
                self._wake(req.fd, sc.EPOLLHUP)
            return ok()
        if isinstance(req, sc.Close):
            kind = self.open.get(req.fd)
            self._need(req.fd, "socket", "epoll", "conn")
            del self.open[req.fd]
            self.registered.pop(req.fd, None)
            self.ready.pop(req.fd, None)
            self.spurious.pop(req.fd, None)
            if kind == "conn":
                peer = self.by_fd.pop(req.fd)
                peer.closed = True
            if req.fd == self.listen_fd:
                self.listen_fd = None
                self.queue.clear()  # un-accepted connections get a RST
            return ok()
        if isinstance(req, sc.EpollCtl):
            self._need(req.epfd, "epoll")
            self._need(req.fd, "socket", "conn")
            if req.op == sc.EPOLL_CTL_ADD:
                if req.fd in self.registered:
                    raise Violation(f"EPOLL_CTL_ADD of fd {req.fd} twice")
            elif req.op == sc.EPOLL_CTL_MOD:
                if req.fd not in self.registered:
                    raise Violation(f"EPOLL_CTL_MOD of unregistered fd {req.fd}")
            else:
                raise Violation(f"unexpected {req!r}")
            self.registered[req.fd] = req.mask
            # ADD and MOD poll at once: a ready fd is reported even in ET (LINUX.md §4).
            self.ready.pop(req.fd, None)
            if self.reportable(req.fd):
                self.ready[req.fd] = None
            return ok()
        if isinstance(req, sc.EpollWait):
            self._need(req.epfd, "epoll")
            events = self.collect(req.max_events)
            if events or req.timeout_ms == 0 or timeout_passed:
                return ok(tuple(events))
            return None
        raise Violation(f"unexpected request {req!r}")

    def collect(self, max_events: int) -> list[tuple[int, int]]:
        events: list[tuple[int, int]] = []
        # ET items are reported from the ready list (wakeups); LT items whenever they are ready.
        candidates = [fd for fd in self.registered if not self.registered[fd] & sc.EPOLLET]
        candidates += [fd for fd in self.ready if self.registered[fd] & sc.EPOLLET]
        for fd in list(self.spurious):
            if fd not in candidates:
                candidates.append(fd)
        for fd in candidates:
            if len(events) >= max_events:
                break
            mask = self.reportable(fd) | (self.spurious.pop(fd, 0) & self.registered[fd])
            self.ready.pop(fd, None)
            if mask:
                events.append((fd, mask))
        return events


# ---------------------------------------------------------------------------------------------
# the driver: runs the machine against the kernel and checks invariants between steps

GRACEFUL = (CloseReason.PEER_EOF, CloseReason.APP_CLOSE, CloseReason.LINGER_TIMEOUT, CloseReason.SHUTDOWN)


class Driver:
    def __init__(self, machine: ServerMachine, kernel: FakeKernel, recording: Recording) -> None:
        self.m = machine
        self.k = kernel
        self.rec = recording
        self.request: sc.Syscall = machine.start()
        self.exited = False
        self.blocked_since: int | None = None
        self.closed_ids: list[int] = []
        self.requests = 0
        # busy-loop accounting for the current turn (since the last EpollWait)
        self.turn_progress = False
        self.turn_io_attempts = 0
        self.shutdown = False
        self.interrupted = False
        self.log: list[str] = []

    def run(self, max_steps: int = 5000) -> None:
        """Step until the machine blocks in EpollWait or exits."""
        for _ in range(max_steps):
            if self.exited:
                return
            req = self.request
            if isinstance(req, sc.Exit):
                self.exited = True
                self.check_exit()
                return
            if isinstance(req, sc.EpollWait):
                if self.blocked_since is None:
                    self.before_wait(req)
                    self.blocked_since = self.k.now
                passed = req.timeout_ms >= 0 and self.k.now >= self.blocked_since + req.timeout_ms * MS
                result = self.k.execute(req, timeout_passed=passed)
                if result is None and self.shutdown and not self.interrupted:
                    # SIGTERM interrupts epoll_wait, once: EINTR carries the shutdown flag in.
                    self.interrupted = True
                    result = sc.Result(error="EINTR", now=self.k.now)
                if result is None:
                    return
                self.blocked_since = None
            else:
                self.before(req)
                result = self.k.execute(req)
                assert result is not None
                self.after(req, result)
            if self.shutdown:
                result = attrs.evolve(result, shutdown=True)
            self.log.append(f"{req!r} -> {result!r}")
            del self.log[:-40]
            self.requests += 1
            self.request = self.m.step(result)
            self.check_state()
        raise Violation(f"no EpollWait or Exit within {max_steps} requests: the machine spins")

    def advance(self, ns: int) -> None:
        self.k.now += ns

    # -- checks -----------------------------------------------------------------------------------

    def conn_for_fd(self, fd: int):  # type: ignore[no-untyped-def]
        found = [c for c in self.m.connections.values() if c.fd == fd]
        return found[0] if found else None

    def app_for(self, fd: int) -> RecordingApp:
        return self.rec.apps[self.k.by_fd[fd].index]

    def before(self, req: sc.Syscall) -> None:
        if isinstance(req, sc.Close) and self.k.open.get(req.fd) == "conn":
            conn = self.conn_for_fd(req.fd)
            if conn is None or conn.state is not ConnState.CLOSING:
                raise Violation(f"{req!r}: no CLOSING connection has that fd")
            if conn.id in self.closed_ids:
                raise Violation(f"connection {conn.id} closed twice")
            self.closed_ids.append(conn.id)
            peer = self.k.by_fd[req.fd]
            app = self.rec.apps[peer.index]
            if conn.close_reason in GRACEFUL or conn.shut_wr:
                if bytes(peer.received) != bytes(app.output):
                    raise Violation(
                        f"connection {conn.id} closed gracefully ({conn.close_reason}) with "
                        f"{len(app.output) - len(peer.received)} bytes of output not sent"
                    )
        if isinstance(req, (sc.Recv, sc.Send, sc.Accept)):
            self.turn_io_attempts += 1

    def after(self, req: sc.Syscall, result: sc.Result) -> None:
        if isinstance(req, sc.Send) and result.ok:
            peer = self.k.by_fd[req.fd]
            app = self.rec.apps[peer.index]
            if not bytes(app.output).startswith(bytes(peer.received)):
                raise Violation(f"fd {req.fd}: bytes sent are not the app's output in order")
        progress = result.ok or result.error not in ("EAGAIN",)
        if isinstance(req, (sc.Recv, sc.Send, sc.Accept)) and progress:
            self.turn_progress = True
        if isinstance(req, (sc.Close, sc.Shutdown)):
            self.turn_progress = True

    def check_state(self) -> None:
        cap = self.m.config.output_cap
        for conn in self.m.connections.values():
            peer = self.k.by_fd.get(conn.fd)
            if peer is None:
                continue
            app = self.rec.apps[peer.index]
            if len(conn.out) > cap + app.max_piece:
                raise Violation(f"connection {conn.id}: {len(conn.out)} bytes pending > cap + {app.max_piece}")
            if not bytes(peer.sent).startswith(bytes(app.input)):
                raise Violation(f"connection {conn.id}: app input is not what the peer sent")
            if app.eof_seen and bytes(app.input) != bytes(peer.sent):
                raise Violation(f"connection {conn.id}: EOF handed to the app before all data")

    def before_wait(self, req: sc.EpollWait) -> None:
        m, k = self.m, self.k
        blocking = req.timeout_ms != 0
        if req.timeout_ms == 0 and not self.turn_progress:
            raise Violation("EpollWait(timeout=0) after a turn without progress: busy loop")
        if not self.turn_progress and self.turn_io_attempts > len(m.connections) + 1:
            raise Violation(f"{self.turn_io_attempts} fruitless attempts in one turn")
        self.turn_progress = False
        self.turn_io_attempts = 0
        et = m.config.edge_triggered
        for conn in m.connections.values():
            if conn.state not in (ConnState.OPEN, ConnState.FLUSHING, ConnState.LINGERING):
                raise Violation(f"EpollWait with connection {conn.id} in {conn.state}")
            peer = k.by_fd[conn.fd]
            registered = k.registered.get(conn.fd)
            if registered is None:
                raise Violation(f"connection {conn.id} not registered at EpollWait")
            pending = bool(conn.out) and conn.state is not ConnState.LINGERING
            if not et:
                if registered & sc.EPOLLOUT and not pending:
                    raise Violation(f"LT: EPOLLOUT held on connection {conn.id} with no output pending")
                if blocking and pending and not registered & sc.EPOLLOUT:
                    raise Violation(f"LT: output pending on connection {conn.id} without EPOLLOUT")
                if blocking and m.would_read(conn) and k.readable(peer) and not registered & sc.EPOLLIN:
                    raise Violation(f"LT: connection {conn.id} readable and read-wanted without EPOLLIN")
            elif blocking:
                edge = conn.fd in k.ready
                if m.would_read(conn) and k.readable(peer) and not edge:
                    raise Violation(f"ET: lost wakeup: connection {conn.id} has input, no edge will come")
                if pending and (peer.space > 0 or peer.rst) and not edge:
                    raise Violation(f"ET: lost wakeup: connection {conn.id} can write, no edge will come")
        if blocking and m.listen_fd is not None and k.queue and m.state.value == "RUNNING":
            accepting = len(m.connections) < m.config.max_connections
            lmask = k.registered.get(m.listen_fd, 0)
            if accepting and k.fd_limit is None and not (lmask & sc.EPOLLIN and (not et or m.listen_fd in k.ready)):
                raise Violation("connections queued, accepting, and no listener wakeup will come")

    def check_exit(self) -> None:
        if self.k.open:
            raise Violation(f"Exit with fds still open: {self.k.open}")
        if self.m.connections:
            raise Violation("Exit with connections left")
        if len(self.closed_ids) != self.m.stats.accepted:
            raise Violation(f"{self.m.stats.accepted} accepted, {len(self.closed_ids)} closed")

    def finish(self, max_rounds: int = 200) -> None:
        """Request a graceful shutdown with a cooperative world, and run to Exit."""
        self.shutdown = True
        for _ in range(max_rounds):
            self.run()
            if self.exited:
                return
            for peer in self.k.peers:
                self.k.client_read(peer, 1 << 20)
            self.advance(1000 * MS)
        raise Violation("no Exit after shutdown")


def make(
    app: AppFactory,
    config_kw: dict[str, object],
    chooser: Chooser | None = None,
    **kernel_kw: object,
) -> Driver:
    from simnet.server.config import ServerConfig

    recording = Recording(app)
    machine = ServerMachine(ServerConfig(**config_kw), recording)  # type: ignore[arg-type]
    kernel = FakeKernel(chooser or MaxChooser(), **kernel_kw)  # type: ignore[arg-type]
    return Driver(machine, kernel, recording)


Callback = Callable[[], None]
