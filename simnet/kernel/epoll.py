"""epoll as fs/eventpoll.c implements it, on simulated sockets.

Some facts about Linux epoll that this model keeps (LINUX.md §4):

* Readiness is never stored: every report re-polls the socket (`tcp_poll`) and intersects the
  result with the registered mask. EPOLLERR and EPOLLHUP are added to every registration
  (epoll_ctl ORs them in), so they are reported even with mask 0.
* An item gets onto the ready list only through a *wake-up*: the socket calls its wait queue with
  a key (EPOLLIN for data, EPOLLOUT for write space, EPOLLERR for an error, 0 = "everything" for a
  state change). `ep_poll_callback` ignores a key that does not intersect the item's events.
  Edge-triggered mode is therefore "wake-up based", not "0->1 transition based": new data on a
  socket that still has unread data wakes an EPOLLIN|EPOLLET item again, and because the report
  re-polls, an IN|OUT item reports IN|OUT on each data arrival.
* Level-triggered items are put back on the ready list after each report; the next epoll_wait
  re-polls them and drops them if they are no longer ready.
* EPOLLONESHOT clears the item's events after one report; EPOLL_CTL_MOD re-arms it. ADD and MOD
  both poll at once, so an fd that is already ready is reported once even in ET mode.
* An item is keyed by (fd, open file), not by the fd alone (epoll(7) Q6). Closing an fd does
  not touch the interest set; only the file's last close does (eventpoll_release, from fput).
  So closing the only fd of a socket removes its registrations, but while a dup() of it is
  alive, events keep coming under the *old* fd number -- which epoll_ctl can no longer name
  (EBADF), and which a new socket may be given and registered under again, beside the old item.
* An Epoll object is CPython's `select.epoll`: a wrapper around an fd *number*. Each call looks
  the number up in the host's fd table, as the syscall would (EBADF once it is closed, EINVAL
  if it now names a socket). `select.epoll.fromfd(fd)` (Host.epoll_fromfd) makes a second
  wrapper of the same number, not a dup: both objects drive the one epoll file, so they share
  its interest set and ready list, and closing either closes the fd -- the other then reports
  `closed` False (CPython only knows its own close) and EBADF on every call. The file is freed
  (ep_free: every registration dropped) at that close.
"""

from __future__ import annotations

import errno
import select
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

from simnet.kernel.errors import raise_errno

if TYPE_CHECKING:
    from simnet.kernel.host import Host
    from simnet.kernel.tcp import TcpSocket

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR
EPOLLHUP = select.EPOLLHUP
EPOLLET = select.EPOLLET
EPOLLONESHOT = select.EPOLLONESHOT
EPOLLPRI = select.EPOLLPRI
# EPOLLEXCLUSIVE and EPOLLWAKEUP are private bits too; ONESHOT/ET are the ones a server uses.
EP_PRIVATE_BITS = EPOLLONESHOT | EPOLLET | getattr(select, "EPOLLEXCLUSIVE", 1 << 28) | (1 << 29)
DEFAULT_MASK = select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT  # Python's register() default


class EpItem:
    """One registration: (fd, socket) with its event mask; on the ready list or not."""

    __slots__ = ("epoll", "fd", "sock", "events", "ready")

    def __init__(self, epoll: Epoll, fd: int, sock: TcpSocket, events: int) -> None:
        self.epoll = epoll
        self.fd = fd
        self.sock = sock
        self.events = events
        self.ready = False

    def wake(self, key: int) -> None:
        """ep_poll_callback."""
        events = self.events
        if not events & ~EP_PRIVATE_BITS:
            return  # a disarmed EPOLLONESHOT item
        if key and not key & events:
            return
        if not self.ready:
            self.ready = True
            ep = self.epoll
            ep.ready.append(self)
            waiter = ep.waiter
            if waiter is not None:
                ep.waiter = None
                if not waiter.triggered:
                    waiter.succeed()


class Epoll:
    """A simulated epoll instance with `select.epoll`'s methods."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.net = host.net
        self.fd = -1
        # (fd, the socket's file_id) -> item: ep_find's key is (file, fd).
        self.items: dict[tuple[int, int], EpItem] = {}
        self.ready: list[EpItem] = []
        self.waiter: simpy.Event | None = None
        self._interrupted = False
        # The fd of the epoll *file* (ep_free at its close), apart from `fd`, the number this
        # Python object holds: the two differ once another wrapper (fromfd) closed the file.
        self._file_fd = -1
        self.co = EpollCoroutines(self)

    @property
    def closed(self) -> bool:
        """select.epoll.closed: this object's close() ran (or its host crashed)."""
        return self.fd < 0

    def __repr__(self) -> str:
        return f"<simnet.epoll fd={self.fd} host={self.host.ip} items={len(self.items)}>"

    def __enter__(self) -> Epoll:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def fileno(self) -> int:
        if self.fd < 0:
            raise ValueError("I/O operation on closed epoll object")
        return self.fd

    def _check_open(self) -> Epoll:
        """The epoll file this object's fd names now: ValueError once closed here, EBADF once
        the fd was closed through another wrapper, EINVAL if a socket took the number since."""
        fd = self.fd
        if fd < 0:
            raise ValueError("I/O operation on closed epoll object")
        obj = self.host.fds.get(fd)
        if obj is self:
            return self
        if obj is None:
            raise_errno(errno.EBADF)
        if not isinstance(obj, Epoll):
            raise_errno(errno.EINVAL)  # epoll_ctl / epoll_wait on an fd that is no epoll
        return obj

    def _target(self, fd: Any) -> tuple[int, TcpSocket]:
        from simnet.kernel.tcp import TcpSocket

        if not isinstance(fd, int):
            fileno = getattr(fd, "fileno", None)  # Python accepts any object with fileno()
            if fileno is None:
                raise TypeError("argument must be an int, or have a fileno() method.")
            fd = fileno()
        if fd < 0:
            raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
        obj = self.host.fds.get(fd)
        if obj is None:
            raise_errno(errno.EBADF)
        if not isinstance(obj, TcpSocket):
            # epoll of an epoll is legal in Linux but not modelled; refusing beats pretending.
            raise_errno(errno.EPERM)
        return fd, obj

    # -- epoll_ctl ----------------------------------------------------------------------------

    def register(self, fd: Any, eventmask: int = DEFAULT_MASK) -> None:
        ep = self._check_open()
        if ep is not self:
            return ep.register(fd, eventmask)
        fd, sock = self._target(fd)
        key = (fd, sock.file_id)
        if key in self.items:
            raise_errno(errno.EEXIST)
        item = EpItem(self, fd, sock, eventmask | EPOLLERR | EPOLLHUP)
        self.items[key] = item
        watchers = sock.watchers
        if isinstance(watchers, tuple):  # an empty tuple until the first watcher (TcpSocket.__init__)
            watchers = sock.watchers = []
        watchers.append(item)
        self._poll_now(item)

    def modify(self, fd: Any, eventmask: int) -> None:
        ep = self._check_open()
        if ep is not self:
            return ep.modify(fd, eventmask)
        fd, sock = self._target(fd)
        item = self.items.get((fd, sock.file_id))
        if item is None:
            raise_errno(errno.ENOENT)
        item.events = eventmask | EPOLLERR | EPOLLHUP
        self._poll_now(item)

    def unregister(self, fd: Any) -> None:
        ep = self._check_open()
        if ep is not self:
            return ep.unregister(fd)
        fd, sock = self._target(fd)
        item = self.items.pop((fd, sock.file_id), None)
        if item is None:
            raise_errno(errno.ENOENT)
        self._forget(item)

    def _forget(self, item: EpItem) -> None:
        watchers = item.sock.watchers
        if isinstance(watchers, list):  # else the empty tuple of a socket that lost its watchers
            for i, other in enumerate(watchers):
                if other is item:
                    del watchers[i]
                    break
        if item.ready:
            item.ready = False
            self.ready.remove(item)

    def forget(self, item: EpItem) -> None:
        """The socket's last fd was closed: drop this registration of it (eventpoll_release)."""
        key = (item.fd, item.sock.file_id)
        if self.items.get(key) is item:
            del self.items[key]
        self._forget(item)

    def _poll_now(self, item: EpItem) -> None:
        # ep_insert / ep_modify poll the file at once and queue the item if it is ready.
        if item.sock.poll_mask() & item.events:
            item.wake(0)

    # -- epoll_wait ---------------------------------------------------------------------------

    def collect(self, maxevents: int) -> list[tuple[int, int]]:
        """ep_send_events: re-poll each ready item, report what is ready, requeue LT items."""
        events: list[tuple[int, int]] = []
        ready = self.ready
        if not ready:
            return events
        leftover: list[EpItem] = []
        requeue: list[EpItem] = []
        for i, item in enumerate(ready):
            if len(events) >= maxevents:
                leftover = ready[i:]  # not reached this time: they stay at the head, in order
                break
            item.ready = False
            revents = item.sock.poll_mask() & item.events
            if not revents:
                continue
            events.append((item.fd, revents))
            if item.events & EPOLLONESHOT:
                item.events &= EP_PRIVATE_BITS
            elif not item.events & EPOLLET:
                item.ready = True
                requeue.append(item)
        self.ready = leftover + requeue
        return events

    def poll(self, timeout: float | None = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        """select.epoll.poll: timeout in seconds (-1 or None blocks); from plain code, a blocking
        poll advances the virtual clock until an event or the timeout."""
        ep = self._check_open()
        if ep is not self:
            return ep.poll(timeout, maxevents)
        maxevents = self._check_maxevents(maxevents)
        try:
            events = self.collect(maxevents)
            if events or timeout == 0:
                return events
        finally:
            self.net.drain()
        process = self._wait_gen(_timeout_ns(timeout), maxevents)
        return self.net.drive(process, f"epoll.poll({timeout})")

    @staticmethod
    def _check_maxevents(maxevents: int) -> int:
        if maxevents == -1:
            return 1 << 30
        if maxevents <= 0:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        return maxevents

    def _wait_gen(self, timeout_ns: int | None, maxevents: int) -> Generator[Any, Any, list[tuple[int, int]]]:
        env = self.net.env
        deadline = None if timeout_ns is None else env.now + timeout_ns
        while True:
            events = self.collect(maxevents)
            self.net.drain()
            if events or self._interrupted:
                self._interrupted = False
                return events
            if deadline is not None and env.now >= deadline:
                return events
            short_io = self.host.short_io
            if short_io is not None and short_io.spurious_wakeup:
                # Injected fault: the wait ends at once with no events, as a signal's EINTR or
                # a wake-up whose readiness another waiter took would end it. A correct loop
                # just waits again.
                net = self.net
                if net.fault_rng.random() < short_io.spurious_wakeup:  # type: ignore[union-attr]
                    net.counters["spurious_wakeups"] += 1
                    return events
            self.waiter = self.net.wait_event(deadline)
            yield self.waiter
            self.waiter = None

    def interrupt(self) -> None:
        """End a blocked poll now with whatever is ready (maybe nothing): a signal's EINTR,
        as simulated drivers deliver a shutdown request."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.triggered:
                waiter.succeed()
            self._interrupted = True

    def _vanish(self) -> None:
        """The host crashed: the epoll is gone, nobody waits on it any more."""
        for item in list(self.items.values()):
            watchers = item.sock.watchers
            if isinstance(watchers, list) and item in watchers:
                watchers.remove(item)
        self.items.clear()
        self.ready = []
        self.waiter = None
        self.fd = self._file_fd = -1

    def close(self) -> None:
        """select.epoll.close: close(2) of this object's fd; a second call does nothing."""
        fd = self.fd
        if fd < 0:
            return
        self.fd = -1
        obj = self.host.fds.get(fd)
        # Closed through another wrapper already: the number is free or someone else's now.
        # (Linux's close(2) would close whatever took the number; simnet closes only an epoll.)
        if isinstance(obj, Epoll):
            obj._close_file()

    def _close_file(self) -> None:
        """The epoll file's fd closed (ep_eventpoll_release -> ep_free): drop every item."""
        fd = self._file_fd
        if fd < 0:
            return
        self._file_fd = -1
        for item in list(self.items.values()):
            self._forget(item)
        self.items.clear()
        self.ready = []
        self.host.release_fd(fd)


class EpollCoroutines:
    """Blocking forms for use inside simulated processes: `events = yield from ep.co.poll(1.0)`."""

    def __init__(self, ep: Epoll) -> None:
        self._ep = ep

    def poll(self, timeout: float | None = -1, maxevents: int = -1) -> Generator[Any, Any, list[tuple[int, int]]]:
        ep = self._ep._check_open()
        return (yield from ep._wait_gen(_timeout_ns(timeout), ep._check_maxevents(maxevents)))

    def poll_ns(self, timeout_ns: int, maxevents: int = -1) -> Generator[Any, Any, list[tuple[int, int]]]:
        """Like poll, with the timeout in integer nanoseconds (-1 blocks): no float rounding."""
        ep = self._ep._check_open()
        return (yield from ep._wait_gen(None if timeout_ns < 0 else timeout_ns, ep._check_maxevents(maxevents)))


def _timeout_ns(timeout: float | None) -> int | None:
    """select.epoll.poll's timeout: seconds as a float; None or negative blocks."""
    if timeout is None or timeout < 0:
        return None
    return int(round(timeout * 1_000_000_000))
