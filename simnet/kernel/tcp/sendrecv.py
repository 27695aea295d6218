"""TcpSendRecv: moving data through the socket API.

send, sendall and sendmsg copy into the send buffer and push (tcp_sendmsg, tcp_push); recv,
recv_into, recvmsg and recvmsg_into copy out of the receive queue (tcp_recvmsg, MSG_PEEK) and
then advertise a window that grew (tcp_cleanup_rbuf). sendmsg's iovec and control messages are
checked as CPython parses them and Linux accepts them (sock_cmsg_send).
"""

from __future__ import annotations

import errno
import functools
import operator
import socket as _socket
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, cast

from simnet.kernel.errors import raise_errno, timeout_error
from simnet.kernel.tcp.api import TcpApi, check_address, syscall
from simnet.kernel.tcp.constants import (
    CLOSE_WAIT,
    CLOSED,
    EPOLLERR,
    EPOLLHUP,
    EPOLLOUT,
    ESTABLISHED,
    KEY_IN,
    KEY_OUT,
    LISTEN,
    MSG_DONTWAIT,
    MSG_PEEK,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SYN_RECV,
    SYN_SENT,
)

if TYPE_CHECKING:
    from simnet.kernel.tcp.socket import TcpSocket


def _index(value: Any) -> int:
    """An int argument as CPython's "i"/"n" converters take it (TypeError for a float)."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"'{type(value).__name__}' object cannot be interpreted as an integer") from None


def _gather(buffers: Any, message: str) -> bytes:
    """sendmsg's iovec: any iterable of bytes-like objects, concatenated."""
    try:
        items = list(buffers)
    except TypeError:
        raise TypeError(message) from None
    out = bytearray()
    for item in items:
        try:
            out += memoryview(item).cast("B")
        except TypeError:
            raise TypeError(f"a bytes-like object is required, not '{type(item).__name__}'") from None
    return bytes(out)


# SOL_SOCKET control messages __sock_cmsg_send accepts, with the payload size it requires
# (None: any; SCM_RIGHTS and SCM_CREDENTIALS are skipped unread on a non-AF_UNIX socket).
_SOL_SOCKET_CMSGS: dict[int, int | None] = {
    _socket.SCM_RIGHTS: None,
    getattr(_socket, "SCM_CREDENTIALS", 2): None,
    getattr(_socket, "SO_MARK", 36): 4,
    37: 4,  # SO_TIMESTAMPING_OLD
    getattr(_socket, "SO_PRIORITY", 12): 4,
    61: 8,  # SCM_TXTIME
}


def _bad_cmsg(ancdata: Any) -> bool:
    """Check sendmsg's ancdata as CPython parses it (TypeError for a malformed item); True if
    Linux's sock_cmsg_send would refuse one of them (EINVAL from tcp_sendmsg)."""
    try:
        items = list(ancdata)
    except TypeError:
        raise TypeError("sendmsg() argument 2 must be an iterable") from None
    bad = False
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError("[sendmsg() ancillary data items]() argument must be sequence of length 3")
        level, kind, data = _index(item[0]), _index(item[1]), memoryview(item[2])
        if level != _socket.SOL_SOCKET:
            continue  # sock_cmsg_send: only SOL_SOCKET is looked at
        if kind not in _SOL_SOCKET_CMSGS:
            bad = True
            continue
        size = _SOL_SOCKET_CMSGS[kind]
        if size is not None and data.nbytes != size:
            bad = True
    return bad


# What send and sendall take, as CPython's do. Annotated exactly: compiled (setup.py), a
# parameter typed `bytes` would refuse a bytearray at the call.
BytesLike = bytes | bytearray | memoryview


def as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'")


class TcpSendRecv(TcpApi):
    """send and receive, blocking or not (see the module docstring)."""

    __slots__ = ()

    # -- send ---------------------------------------------------------------------------------

    def _send_now(self, data: bytes) -> int:
        """tcp_sendmsg_locked for a non-blocking caller: queue what fits, else EAGAIN."""
        state = self.state
        if state != ESTABLISHED and state != CLOSE_WAIT:
            # sk_stream_wait_connect: a pending error first, EPIPE unless still connecting.
            if self.err:
                raise_errno(self._sock_error())
            if state != SYN_SENT and state != SYN_RECV:
                raise_errno(errno.EPIPE)
            raise_errno(errno.EAGAIN)
        if self.err or self.shutdown_flags & SEND_SHUTDOWN:
            # sk_stream_error: a pending sk_err replaces EPIPE (and is consumed).
            raise_errno(self._sock_error() or errno.EPIPE)
        space = self.sndbuf - len(self.sndq)
        if space <= 0:
            self.nospace = True
            raise_errno(errno.EAGAIN)
        if not data:
            return 0
        n = len(data) if len(data) <= space else space
        short_io = self.host.short_io
        if short_io is not None and n > 1 and short_io.send:
            # Injected fault: accept fewer bytes than fit (at least one). SOCK_NOSPACE is set as
            # for a real partial write, so the next ACK wakes EPOLLOUT for an edge-triggered
            # caller waiting on it.
            rng = self.net.fault_rng
            if rng.random() < short_io.send:  # type: ignore[union-attr]
                n = rng.randint(1, n - 1)  # type: ignore[union-attr]
                self.net.counters["short_sends"] += 1
        if n < len(data):
            self.nospace = True
            self.net.counters["partial_sends"] += 1
        self.sndq += data[:n] if n < len(data) else data
        if self.net.queue_watch is not None:
            self.net.queue_watch(cast("TcpSocket", self))
        self._output()
        return n

    @syscall
    def send(self, data: BytesLike, flags: int = 0) -> int:
        payload = as_bytes(data)
        if self.timeout_ns is None and not flags & MSG_DONTWAIT:
            # A blocking send queues everything (sleeping for memory), unless an error stops it.
            return self._blocking_send(payload, "send")
        return self._blocking_call(lambda: self._send_now(payload), KEY_OUT, "send", flags)

    @syscall
    def sendall(self, data: BytesLike, flags: int = 0) -> None:
        payload = as_bytes(data)
        if self.timeout_ns is None:
            self._blocking_send(payload, "sendall")
            return
        if self.timeout_ns == 0:
            # CPython's sendall on a non-blocking socket: send until EAGAIN, which it raises.
            view = memoryview(payload)
            while view:
                n = self._blocking_call(functools.partial(self._send_now, bytes(view)), KEY_OUT, "sendall")
                view = view[n:]
            return
        self.net.drive(self._sendall_timeout_gen(payload), "sendall")

    def _blocking_send(self, data: bytes, what: str) -> int:
        try:
            sent = self._send_some(data, 0)
            if sent == len(data):
                return sent
        finally:
            self.net.drain()
        return self.net.drive(self._send_all_gen(data, sent), what)

    def _send_some(self, data: bytes, sent: int) -> int:
        try:
            return sent + self._send_now(data[sent:] if sent else data)
        except BlockingIOError:
            return sent
        except OSError:
            if sent:
                return sent  # the kernel returns the partial count; the error comes next time
            raise

    def _send_all_gen(self, data: bytes, sent: int) -> Generator[Any, Any, int]:
        while sent < len(data):
            yield self._wait_event()
            sent = self._send_some(data, sent)
            self.net.drain()
        return sent

    def _sendall_timeout_gen(self, data: bytes) -> Generator[Any, Any, None]:
        # CPython: each send waits up to the timeout for writability; the deadline is global.
        deadline = self.net.env.now + (self.timeout_ns or 0)
        sent = 0
        while sent < len(data):
            if self.poll_mask() & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                # (No `continue` inside the try: mypyc cannot compile one in a finally's scope.)
                progressed = True
                try:
                    sent += self._send_now(data[sent:])
                except BlockingIOError:
                    progressed = False
                finally:
                    self.net.drain()
                if progressed:
                    continue
            if self.net.env.now >= deadline:
                raise timeout_error()
            yield self._wait_event(deadline)

    # -- recv ---------------------------------------------------------------------------------

    def _recv_now(self, bufsize: int, flags: int = 0) -> bytes:
        """tcp_recvmsg: queued data first; then FIN, error, shutdown, ENOTCONN, EAGAIN."""
        if bufsize == 0:
            return b""
        rcvq = self.rcvq
        if rcvq:
            peek = flags & MSG_PEEK
            short_io = self.host.short_io
            if short_io is not None and short_io.recv and not peek:
                # Injected fault: return a shorter prefix (at least one byte) of what is there.
                available = len(rcvq) if bufsize >= len(rcvq) else bufsize
                rng = self.net.fault_rng
                if available > 1 and rng.random() < short_io.recv:  # type: ignore[union-attr]
                    bufsize = rng.randint(1, available - 1)  # type: ignore[union-attr]
                    self.net.counters["short_recvs"] += 1
            if bufsize >= len(rcvq):
                data = bytes(rcvq)
                if not peek:
                    rcvq.clear()
            else:
                data = bytes(rcvq[:bufsize])
                if not peek:
                    del rcvq[:bufsize]
            if not peek:
                if self.net.queue_watch is not None:
                    self.net.queue_watch(cast("TcpSocket", self))
                self._cleanup_rbuf()
            return data
        if self.done:
            return b""
        if self.err:
            raise_errno(self._sock_error())
        if self.shutdown_flags & RCV_SHUTDOWN:
            return b""
        if self.state == CLOSED or self.state == LISTEN:
            raise_errno(errno.ENOTCONN)
        raise_errno(errno.EAGAIN)

    @syscall
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not isinstance(bufsize, int):
            raise TypeError(f"'{type(bufsize).__name__}' object cannot be interpreted as an integer")
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        return self._blocking_call(lambda: self._recv_now(bufsize, flags), KEY_IN, "recv", flags)

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer), flags)
        buffer[: len(data)] = data
        return len(data)

    # -- sendmsg / recvmsg --------------------------------------------------------------------

    @syscall
    def sendmsg(self, buffers: Iterable[Any], ancdata: Iterable[Any] = (), flags: int = 0,
                address: Any = None) -> int:
        """tcp_sendmsg with an iovec: the buffers are gathered and sent as one send(), so the
        count is partial, EAGAIN and EPIPE come exactly as send()'s.

        Ancillary data on TCP (measured, LINUX.md-style, in tests/conformance/test_socket_api.py):
        tcp_sendmsg_locked runs sock_cmsg_send, which skips every level but SOL_SOCKET and, at
        SOL_SOCKET, *ignores* SCM_RIGHTS and SCM_CREDENTIALS ("semantically in SOL_UNIX"): an
        fd sent over TCP is silently dropped and the bytes go. An unknown SOL_SOCKET type fails
        the whole call with EINVAL -- after the connection-state checks, before EPIPE. A
        destination address is converted (so a malformed one is CPython's TypeError) and then
        ignored, as tcp_sendmsg ignores msg_name without MSG_FASTOPEN.
        """
        data = _gather(buffers, "sendmsg() argument 1 must be an iterable")
        bad_cmsg = _bad_cmsg(ancdata)
        if address is not None:
            check_address(address, "sendmsg")

        def attempt() -> int:
            if bad_cmsg and (self.state == ESTABLISHED or self.state == CLOSE_WAIT):
                raise_errno(errno.EINVAL)  # sock_cmsg_send failed: tcp_sendmsg says EINVAL
            return self._send_now(data)  # else the state's own error first (EPIPE, EAGAIN, ...)

        if self.timeout_ns is None and not flags & MSG_DONTWAIT and not bad_cmsg:
            return self._blocking_send(data, "sendmsg")
        return self._blocking_call(attempt, KEY_OUT, "sendmsg", flags)

    @syscall
    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> tuple[bytes, list[Any], int, None]:
        """tcp_recvmsg through recvmsg(2): (data, ancdata, msg_flags, address). TCP fills in
        no address (msg_namelen 0: CPython gives None) and, with no IP_RECV* option modelled,
        no ancillary data; msg_flags is 0 (a stream is never MSG_TRUNC)."""
        bufsize = _index(bufsize)
        ancbufsize = _index(ancbufsize)
        if bufsize < 0 or ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        data = self._blocking_call(lambda: self._recv_now(bufsize, flags), KEY_IN, "recvmsg", flags)
        return data, [], 0, None

    @syscall
    def recvmsg_into(self, buffers: Iterable[Any], ancbufsize: int = 0,
                     flags: int = 0) -> tuple[int, list[Any], int, None]:
        """recvmsg with an iovec: one receive of up to the buffers' total size, scattered."""
        views = [memoryview(b).cast("B") for b in buffers]
        ancbufsize = _index(ancbufsize)
        if ancbufsize < 0:
            raise ValueError("negative buffer size in recvmsg()")
        total = sum(len(v) for v in views)
        data = self._blocking_call(lambda: self._recv_now(total, flags), KEY_IN, "recvmsg_into", flags)
        offset = 0
        for view in views:
            if offset >= len(data):
                break
            chunk = data[offset : offset + len(view)]
            view[: len(chunk)] = chunk
            offset += len(chunk)
        return len(data), [], 0, None

    def _cleanup_rbuf(self) -> None:
        """tcp_cleanup_rbuf: after the reader drained data, advertise a window that grew a lot.

        Linux sends a window update when the window left from the last advertisement is at most
        half the buffer and the new window is at least twice that. This is what lets a sender
        stalled on a zero window go on without waiting for a probe.
        """
        state = self.state
        if state in (CLOSED, LISTEN, SYN_SENT) or self.shutdown_flags & RCV_SHUTDOWN:
            return
        left = self.rcv_wnd_edge - self.rcv_nxt
        if 2 * left <= self._rcv_capacity():
            new_window = self._select_window()
            if new_window and new_window >= 2 * left:
                self._send_ack()
