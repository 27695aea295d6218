"""select(2) and poll(2) on simulated sockets, with CPython's `select.select` and `select.poll` API.

Both are built, as in Linux (fs/select.c), on each file's poll method -- `tcp_poll`, which
`TcpSocket.poll_mask` models -- and keep no readiness of their own:

* select's three sets read the mask through fixed filters (fs/select.c): readable is
  POLLIN_SET (IN, RDNORM, RDBAND, HUP, ERR), writable is POLLOUT_SET (OUT, WRNORM, WRBAND, ERR),
  exceptional is POLLEX_SET (PRI: urgent data, which simnet does not model, so never). A hung-up
  socket is thus readable, and a socket with a pending error is both readable and writable.
* poll reports `mask & (events | POLLERR | POLLHUP)` per registered fd (do_pollfd: ERR and HUP
  cannot be masked), and POLLNVAL for an fd that names no open file.
* An fd that names no open file fails select with EBADF before anything is polled.

CPython's wrappers decide the order of the results: select returns, for each of its three
arguments, the items that are ready in the order given (duplicates included); poll reports in
the order fds were first registered (its dict), which `modify` keeps. simnet adds nothing, so
the results are deterministic.

A blocking call (timeout None, or positive) waits in virtual time: from plain code it advances
the clock, as `Epoll.poll` does; it wakes when any watched socket calls its wait queue, re-polls
everything and returns as soon as one is ready, or at the deadline. An epoll fd is polled as
Linux polls it (readable while it has ready items) but does not wake a blocked select or poll.
"""

from __future__ import annotations

import errno
import math
import operator
import select as _select
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from simnet.kernel.epoll import Epoll
from simnet.kernel.errors import raise_errno

if TYPE_CHECKING:
    from simnet.kernel.host import Host
    from simnet.kernel.tcp import TcpSocket

POLLIN = _select.POLLIN
POLLPRI = _select.POLLPRI
POLLOUT = _select.POLLOUT
POLLERR = _select.POLLERR
POLLHUP = _select.POLLHUP
POLLNVAL = _select.POLLNVAL
POLLRDNORM = _select.POLLRDNORM
POLLRDBAND = _select.POLLRDBAND
POLLWRNORM = _select.POLLWRNORM
POLLWRBAND = _select.POLLWRBAND
DEFAULT_POLL_MASK = POLLIN | POLLPRI | POLLOUT  # select.poll.register's default

# fs/select.c
POLLIN_SET = POLLRDNORM | POLLRDBAND | POLLIN | POLLHUP | POLLERR
POLLOUT_SET = POLLWRBAND | POLLWRNORM | POLLOUT | POLLERR
POLLEX_SET = POLLPRI

FD_SETSIZE = 1024  # glibc's fd_set: CPython refuses a larger fd in select()
FIRST_FD = 3  # the lowest fd a process's first socket gets (Host.first_fd's usual value)


def as_fd(obj: Any) -> int:
    """PyObject_AsFileDescriptor: an int, or the int its fileno() returns; never negative."""
    if isinstance(obj, int):
        fd = int(obj)
    else:
        fileno = getattr(obj, "fileno", None)
        if fileno is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


def file_mask(obj: TcpSocket | Epoll) -> int:
    """The file's poll method: tcp_poll for a socket; for an epoll, ep_eventpoll_poll
    (readable while one of its ready items still polls ready)."""
    if isinstance(obj, Epoll):
        for item in obj.ready:
            if item.sock.poll_mask() & item.events:
                return POLLIN | POLLRDNORM
        return 0
    return obj.poll_mask()


def _wait_gen(host: Host, check: Callable[[], Any], fds: Sequence[int],
              timeout_ns: int | None) -> Generator[Any, Any, Any]:
    """Re-run `check` at every wake-up of the files behind `fds` until it returns something,
    or until the deadline (then the empty answer `check` gives with `final=True`)."""
    net = host.net
    deadline = None if timeout_ns is None else net.now_ns + timeout_ns
    while True:
        result = check()
        net.drain()
        if result is not None:
            return result
        if deadline is not None and net.now_ns >= deadline:
            return None
        event = net.wait_event(deadline)
        for fd in fds:
            obj = host.fds.get(fd)
            if obj is None or isinstance(obj, Epoll):
                continue
            waiters = obj.waiters
            if isinstance(waiters, tuple):  # an empty tuple until the first waiter (TcpSocket.__init__)
                waiters = obj.waiters = []
            waiters.append(event)
        yield event


def _block(host: Host, check: Callable[[], Any], fds: Sequence[int], timeout_ns: int | None,
           what: str) -> Any:
    """Poll once; if nothing is ready and the timeout allows, wait in virtual time."""
    net = host.net
    try:
        result = check()
    finally:
        net.drain()
    if result is not None or timeout_ns == 0:
        return result
    return net.drive(_wait_gen(host, check, fds, timeout_ns), what)


def _block_co(host: Host, check: Callable[[], Any], fds: Sequence[int],
              timeout_ns: int | None) -> Generator[Any, Any, Any]:
    """_block for a simulated process: the wait is a `yield from`, not a drive of the clock."""
    if timeout_ns == 0:
        try:
            return check()
        finally:
            host.net.drain()
    return (yield from _wait_gen(host, check, fds, timeout_ns))


# -- select ------------------------------------------------------------------------------------


def _select_timeout_ns(timeout: Any) -> int | None:
    """select.select's timeout: None blocks; seconds, rounded up to select's microseconds."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a float or None")
    if isinstance(timeout, float) and math.isnan(timeout):
        raise ValueError("Invalid value NaN (not a number)")
    if timeout < 0:
        raise ValueError("timeout must be non-negative")
    return math.ceil(timeout * 1_000_000) * 1000  # _PyTime_ROUND_TIMEOUT, then a timeval


def select(host: Host, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
           ) -> tuple[list[Any], list[Any], list[Any]]:
    """select.select on `host`'s fds (see the module docstring)."""
    check, fds, timeout_ns = _prepare_select(host, rlist, wlist, xlist, timeout)
    result = _block(host, check, fds, timeout_ns, f"select(timeout={timeout})")
    return ([], [], []) if result is None else result


def co_select(host: Host, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
              ) -> Generator[Any, Any, tuple[list[Any], list[Any], list[Any]]]:
    """select for simulated processes: `r, w, x = yield from co_select(host, [s], [], [], 1.0)`."""
    check, fds, timeout_ns = _prepare_select(host, rlist, wlist, xlist, timeout)
    result = yield from _block_co(host, check, fds, timeout_ns)
    return ([], [], []) if result is None else result


def _prepare_select(host: Host, rlist: Any, wlist: Any, xlist: Any, timeout: float | None
                    ) -> tuple[Callable[[], Any], list[int], int | None]:
    """CPython's argument checks and Linux's EBADF check; the readiness test to re-run."""
    sets: list[list[tuple[Any, int]]] = []
    for seq in (rlist, wlist, xlist):
        try:
            items = list(seq)
        except TypeError:
            raise TypeError("arguments 1-3 must be sequences") from None
        entries = []
        for item in items:
            fd = as_fd(item)
            # FD_SETSIZE bounds the fd a process would have: with Network(distinct_fds=True) a
            # host's fds start far above any real one, so the bound is on the host-relative
            # number (the 5th fd of a host counts as fd 7, whatever its range).
            if fd - host.first_fd + FIRST_FD >= FD_SETSIZE:
                raise ValueError("filedescriptor out of range in select()")
            entries.append((item, fd))
        sets.append(entries)
    timeout_ns = _select_timeout_ns(timeout)
    fds = sorted({fd for entries in sets for _, fd in entries})
    for fd in fds:
        if fd not in host.fds:
            raise_errno(errno.EBADF)  # max_select_fd: a set bit naming no open file
    rset, wset, xset = sets

    def check() -> tuple[list[Any], list[Any], list[Any]] | None:
        masks: dict[int, int] = {}
        for fd in fds:
            obj = host.fds.get(fd)
            masks[fd] = 0 if obj is None else file_mask(obj)
        r = [item for item, fd in rset if masks[fd] & POLLIN_SET]
        w = [item for item, fd in wset if masks[fd] & POLLOUT_SET]
        x = [item for item, fd in xset if masks[fd] & POLLEX_SET]
        if r or w or x:
            return r, w, x
        return None

    return check, fds, timeout_ns


# -- poll --------------------------------------------------------------------------------------


def _ushort(value: Any) -> int:
    """CPython's unsigned-short converter for poll event masks."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None
    if v < 0:
        raise ValueError("value must be positive")
    if v > 0xFFFF:
        raise OverflowError("Python int too large for C unsigned short")
    return v


def _poll_timeout_ns(timeout: Any) -> int | None:
    """select.poll.poll's timeout: milliseconds (a float is rounded up); None or negative blocks."""
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be an integer or None")
    if isinstance(timeout, float) and math.isnan(timeout):
        raise ValueError("Invalid value NaN (not a number)")
    ms = math.ceil(timeout)
    if ms < 0:
        return None
    if ms > 0x7FFFFFFF:
        raise OverflowError("Timeout value too large")
    return ms * 1_000_000


class Poll:
    """select.poll on a simulated host: register/modify/unregister keep an fd -> events dict
    (no kernel state, as in CPython); poll() polls each fd in the dict's order."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._fds: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"<simnet.poll host={self.host.ip} fds={list(self._fds)}>"

    def register(self, fd: Any, eventmask: int = DEFAULT_POLL_MASK) -> None:
        # CPython checks nothing here: a closed fd is registered, and poll() says POLLNVAL.
        self._fds[as_fd(fd)] = _ushort(eventmask)

    def modify(self, fd: Any, eventmask: int) -> None:
        fd = as_fd(fd)
        mask = _ushort(eventmask)
        if fd not in self._fds:
            raise_errno(errno.ENOENT)
        self._fds[fd] = mask

    def unregister(self, fd: Any) -> None:
        fd = as_fd(fd)
        if fd not in self._fds:
            raise KeyError(fd)
        del self._fds[fd]

    def _check(self) -> list[tuple[int, int]] | None:
        host = self.host
        events = []
        for fd, mask in self._fds.items():
            obj = host.fds.get(fd)
            if obj is None:
                events.append((fd, POLLNVAL))
                continue
            revents = file_mask(obj) & (mask | POLLERR | POLLHUP)
            if revents:
                events.append((fd, revents))
        return events or None

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """select.poll.poll: timeout in milliseconds; None or negative blocks (in virtual time)."""
        timeout_ns = _poll_timeout_ns(timeout)
        fds = list(self._fds)
        result = _block(self.host, self._check, fds, timeout_ns, f"poll({timeout})")
        return [] if result is None else result

    def co_poll(self, timeout: float | None = None) -> Generator[Any, Any, list[tuple[int, int]]]:
        """poll for simulated processes: `events = yield from p.co_poll(1000)`."""
        timeout_ns = _poll_timeout_ns(timeout)
        result = yield from _block_co(self.host, self._check, list(self._fds), timeout_ns)
        return [] if result is None else result
