"""A simulated host: its file descriptor table, its port table, and TCP demultiplexing."""

from __future__ import annotations

import heapq
import operator
import select as _select
import socket as _socket
from collections.abc import Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import simpy

from simnet.kernel.segment import ACK, FIN, RST, SYN, Address, Segment

if TYPE_CHECKING:
    from simnet.kernel.epoll import Epoll
    from simnet.kernel.network import Network
    from simnet.kernel.poll import Poll
    from simnet.kernel.tcp import TcpSocket

FIRST_FD = 3  # 0, 1 and 2 are stdin, stdout and stderr in every real process


def _c_int(value: Any) -> int:
    """CPython's "i" argument converter: an int (or __index__) that fits a C int."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None
    if v > 0x7FFFFFFF:
        raise OverflowError("signed integer is greater than maximum")
    if v < -0x80000000:
        raise OverflowError("signed integer is less than minimum")
    return v


class Host:
    """One machine: an IPv4 address plus 127.0.0.1, an fd table and a TCP port table."""

    def __init__(self, net: Network, ip: str, first_fd: int = FIRST_FD, fd_limit: int = 1 << 31) -> None:
        self.net = net
        self.ip = ip
        # The lowest fd this host hands out. A process sees 3 first; when many hosts' fds meet in
        # one event loop (simnet.aio), each host gets its own range so that fds never collide.
        self.first_fd = first_fd
        self.fd_limit = fd_limit  # RLIMIT_NOFILE's role: no fd at or above it (EMFILE)
        self.fds: dict[int, TcpSocket | Epoll] = {}
        # Every fd below _next_fd is either in fds or in the heap _free_fds, so the lowest free
        # one is found in O(log n), not by a scan (10,000 connections made the scan quadratic).
        self._free_fds: list[int] = []
        self._next_fd = first_fd
        # Connected sockets (SYN_SENT onwards, including orphans and TIME_WAIT), by 4-tuple.
        self.connections: dict[tuple[Address, Address], TcpSocket] = {}
        self.listeners: dict[Address, TcpSocket] = {}
        # Everything holding a local port, for bind conflicts (inet_bind_conflict) and ss: port ->
        # the one socket on it (the usual case; no dict, P6), or {file_id: socket} when several
        # share it (SO_REUSEADDR, a listener's children), in the order they took it. A dict, not
        # a list: a busy server port has one holder per TIME_WAIT, and they leave from the front.
        self.ports: dict[int, TcpSocket | dict[int, TcpSocket]] = {}
        self.crashed = False
        # Short I/O injection (simnet.faults.ShortIO) on this host's sockets and epolls, or None.
        self.short_io: Any = None
        self.conn_count = 0  # connections made on this host so far (InjectRst's `nth`)

    def __repr__(self) -> str:
        return f"<Host {self.ip}>"

    # -- the socket API entry points ----------------------------------------------------------

    def socket(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM, proto: int = 0) -> TcpSocket:
        if family != _socket.AF_INET:
            raise OSError(97, "Address family not supported by protocol (simnet models AF_INET only)")
        if type & ~(_socket.SOCK_NONBLOCK | _socket.SOCK_CLOEXEC) != _socket.SOCK_STREAM:
            raise OSError(94, "Socket type not supported (simnet models SOCK_STREAM only)")
        if proto not in (0, _socket.IPPROTO_TCP):
            # inet_create finds no (SOCK_STREAM, proto) entry in inetsw: EPROTONOSUPPORT.
            raise OSError(93, "Protocol not supported")
        from simnet.kernel.tcp import TcpSocket

        sock = TcpSocket(self)
        # Python's `.proto` is the argument as given (0 stays 0); SO_PROTOCOL reads 6 for both.
        sock.proto = proto
        sock._install_fd()
        if type & _socket.SOCK_NONBLOCK:
            sock.setblocking(False)
        return sock

    def socketpair(self, family: int = _socket.AF_INET, type: int = _socket.SOCK_STREAM,
                   proto: int = 0) -> tuple[TcpSocket, TcpSocket]:
        """socket.socketpair on this host: two connected sockets.

        Linux's socketpair is AF_UNIX; simnet models AF_INET only, so the pair is a TCP
        connection over 127.0.0.1 -- what CPython's own socketpair builds where there is no
        AF_UNIX (a listener on an ephemeral loopback port, connect, accept, close the
        listener). The peers therefore behave as TCP sockets do: Nagle, buffer sizes, RST on
        a close with unread data. Both are blocking unless `type` has SOCK_NONBLOCK.
        """
        nonblock = bool(type & _socket.SOCK_NONBLOCK)
        plain = type & ~_socket.SOCK_NONBLOCK
        a = self.socket(family, plain, proto)
        listener = self.socket(family, plain, proto)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            a.setblocking(False)
            # Loopback delivers inside the syscall (LINUX.md), so the handshake is over when
            # connect_ex returns: no virtual time passes, and this works inside a simulated
            # process too, where a blocking connect could not wait.
            a.connect_ex(listener.getsockname())
            self.net.drain()
            listener.setblocking(False)
            b, _ = listener.accept()
            a.connect_ex(listener.getsockname())  # 0: SS_CONNECTED, as a blocking connect leaves it
        except BaseException:
            a.close()
            raise
        finally:
            listener.close()
        a.setblocking(not nonblock)
        b.setblocking(not nonblock)
        return a, b

    def epoll(self, sizehint: int = -1, flags: int = 0) -> Epoll:
        """select.epoll(sizehint=-1, flags=0), with CPython's argument checks (select_epoll_impl):
        a non-int is a TypeError, a sizehint of 0 or below -1 a ValueError ('negative sizehint'),
        and flags other than 0 or EPOLL_CLOEXEC an OSError('invalid flags') without an errno."""
        from simnet.kernel.epoll import Epoll

        sizehint = _c_int(sizehint)
        flags = _c_int(flags)
        if sizehint != -1 and sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != _select.EPOLL_CLOEXEC:
            raise OSError("invalid flags")
        ep = Epoll(self)
        ep.fd = ep._file_fd = self.allocate_fd(ep)
        return ep

    def epoll_fromfd(self, fd: int) -> Epoll:
        """select.epoll.fromfd: another Python object for the epoll fd `fd` -- not a dup, the
        same number. It shares the epoll file with the object that made it (one interest set,
        one ready list: Linux has only the one file), and closing either closes the fd for
        both (see simnet/kernel/epoll.py). Like CPython it checks nothing: a bad fd shows at
        the first call (EBADF, or EINVAL for a socket's fd)."""
        from simnet.kernel.epoll import Epoll

        ep = Epoll(self)
        ep.fd = _c_int(fd)
        return ep

    def select(self, rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
               ) -> tuple[list[Any], list[Any], list[Any]]:
        """select.select on this host's fds (simnet/kernel/poll.py): the ready items of each
        list in the order given; timeout None blocks and 0 polls, in virtual time."""
        from simnet.kernel.poll import select

        return select(self, rlist, wlist, xlist, timeout)

    def poll(self) -> Poll:
        """select.poll() on this host (simnet/kernel/poll.py)."""
        from simnet.kernel.poll import Poll

        return Poll(self)

    def process(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        """Run a simulated process (a simpy generator) on this host."""
        return self.net.env.process(generator)

    # -- fds ----------------------------------------------------------------------------------

    def allocate_fd(self, obj: TcpSocket | Epoll) -> int:
        # Linux hands out the lowest free descriptor (fs/file.c alloc_fd).
        fds = self.fds
        free = self._free_fds
        if not fds:  # all closed (or the host crashed): start again from the bottom
            free.clear()
            self._next_fd = self.first_fd
        if free:
            fd = heapq.heappop(free)
        else:
            fd = self._next_fd
            if fd >= self.fd_limit:
                raise OSError(24, "Too many open files")  # EMFILE, as alloc_fd past the rlimit
            self._next_fd = fd + 1
        fds[fd] = obj
        return fd

    def release_fd(self, fd: int) -> None:
        if self.fds.pop(fd, None) is not None:
            heapq.heappush(self._free_fds, fd)

    def is_local_address(self, ip: str) -> bool:
        return ip == self.ip or ip == "0.0.0.0" or ip.startswith("127.")

    # -- ports --------------------------------------------------------------------------------

    def take_port(self, sock: TcpSocket, port: int) -> None:
        holders = self.ports.get(port)
        if holders is None:
            self.ports[port] = sock  # the usual case, one socket on a port: no dict for it (P6)
        elif isinstance(holders, dict):
            holders[sock.file_id] = sock
        elif holders is not sock:
            self.ports[port] = {holders.file_id: holders, sock.file_id: sock}

    def free_port(self, sock: TcpSocket, port: int) -> None:
        holders = self.ports.get(port)
        if holders is None:
            return
        if type(holders) is dict:
            holders.pop(sock.file_id, None)
            if len(holders) == 1:
                self.ports[port] = next(iter(holders.values()))
        elif holders is sock:
            del self.ports[port]

    def port_holders(self, port: int) -> Iterable[TcpSocket]:
        """The sockets bound to `port`, in the order they took it."""
        holders = self.ports.get(port)
        if holders is None:
            return ()
        if type(holders) is dict:
            return holders.values()
        return (holders,)  # type: ignore[return-value]

    def bind_conflict(self, sock: TcpSocket, ip: str, port: int, listening: bool = False) -> bool:
        """inet_bind_conflict: an existing holder is forgiven only if both sides set SO_REUSEADDR
        and the holder is not listening (a live LISTEN socket always conflicts)."""
        for other in self.port_holders(port):
            if other is sock:
                continue
            other_ip = other.local[0] if other.local else "0.0.0.0"
            if other_ip != ip and other_ip != "0.0.0.0" and ip != "0.0.0.0":
                continue
            if listening:
                # listen() re-validates the port: another listener on it, or a holder that has not
                # agreed to share, makes the listen fail with EADDRINUSE.
                if other.is_listening or not (sock.reuseaddr and other.reuseaddr):
                    return True
                continue
            if not (sock.reuseaddr and other.reuseaddr and not other.is_listening):
                return True
        return False

    def ephemeral_port(self) -> int:
        """An unused port from ip_local_port_range, starting at a seeded random offset."""
        low, high = self.net.sysctl.ip_local_port_range
        span = high - low + 1
        start = self.net.rng.randrange(span)
        for i in range(span):
            port = low + (start + i) % span
            if port not in self.ports:
                return port
        raise OSError(99, "Cannot assign requested address (ephemeral ports exhausted)")

    # -- segment demultiplexing ---------------------------------------------------------------

    def receive(self, seg: Segment) -> None:
        """A segment arrives at this host (tcp_v4_rcv): find its socket, or answer with a RST."""
        if self.crashed:
            return
        sock = self.connections.get((seg.dst, seg.src))
        if sock is not None:
            sock.segment_arrived(seg)
            return
        listener = self.listener_for(seg.dst)
        if listener is not None:
            listener.listener_segment(seg)
            return
        self.send_reset_for(seg)

    def listener_for(self, local: Address) -> TcpSocket | None:
        """The listener a SYN to `local` reaches: bound to that address, else to 0.0.0.0."""
        return self.listeners.get(local) or self.listeners.get(("0.0.0.0", local[1]))

    def send_reset_for(self, seg: Segment) -> None:
        """tcp_v4_send_reset: answer a segment that matches no socket. Never answer a RST."""
        if seg.flags & RST:
            return
        if seg.flags & ACK:
            reply = Segment(seg.dst, seg.src, RST, seg.ack, 0, 0)
        else:
            ack = seg.seq + len(seg.data) + (1 if seg.flags & SYN else 0) + (1 if seg.flags & FIN else 0)
            reply = Segment(seg.dst, seg.src, RST | ACK, 0, ack, 0)
        self.net.counters["resets_sent"] += 1
        self.net.transmit(self, reply)

    # -- faults -------------------------------------------------------------------------------

    def next_conn_no(self) -> int:
        self.conn_count += 1
        return self.conn_count

    def crash(self) -> None:
        """The machine stops: every socket and epoll vanishes at once, with no FIN or RST (the
        peers find out by RST when they next send after a restart, or by time-out), and
        whatever arrives is dropped until the host restarts. Processes that held the fds are
        gone too; simulated ones are the caller's to stop (see Network.crash_callbacks)."""
        self.crashed = True
        sockets: list[Any] = []
        for obj in self.fds.values():
            sockets.append(obj)
        sockets.extend(self.connections.values())
        sockets.extend(self.listeners.values())
        for port in sorted(self.ports):
            sockets.extend(self.port_holders(port))
        for obj in sockets:
            obj._vanish()
        self.fds.clear()
        self.connections.clear()
        self.listeners.clear()
        self.ports.clear()
        self.net._routes.clear()

    # -- inspection ---------------------------------------------------------------------------

    def all_sockets(self) -> Iterator[TcpSocket]:
        seen: set[int] = set()  # file_ids; only looked up, never iterated
        for port in sorted(self.ports):
            for sock in self.port_holders(port):
                if sock.file_id not in seen:
                    seen.add(sock.file_id)
                    yield sock

    def socket_table(self) -> list[tuple[str, int, int, str, str]]:
        rows = []
        for sock in self.all_sockets():
            rows.extend(sock.ss_rows())
        # Listeners first, then by local and peer address: stable whatever the creation order.
        rows.sort(key=lambda r: (r[0] != "LISTEN", r[3], r[4]))
        return rows
