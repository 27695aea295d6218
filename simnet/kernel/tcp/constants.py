"""The numbers the TCP socket's modules share: TCP states (include/net/tcp_states.h, spelled as
`ss` prints them), the sk_shutdown bits (include/net/sock.h), struct socket's SS_* states
(net/ipv4/af_inet.c), the timer constants of include/net/tcp.h in ns with tcp_model_timeout
(net/ipv4/tcp_timer.c), the epoll bits tcp_poll reports and the wake-up keys its callbacks pass
(sock_def_readable, sk_stream_write_space, sk_error_report).
"""

from __future__ import annotations

import errno
import socket as _socket
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from simnet.kernel.segment import Address

if TYPE_CHECKING:
    from simnet.kernel.tcp.listen import RequestSock

# TCP states (include/net/tcp_states.h), spelled the way `ss` prints them.
CLOSED = "UNCONN"
LISTEN = "LISTEN"
SYN_SENT = "SYN-SENT"
SYN_RECV = "SYN-RECV"
ESTABLISHED = "ESTAB"
FIN_WAIT1 = "FIN-WAIT-1"
FIN_WAIT2 = "FIN-WAIT-2"
CLOSE_WAIT = "CLOSE-WAIT"
CLOSING = "CLOSING"
LAST_ACK = "LAST-ACK"
TIME_WAIT = "TIME-WAIT"

# sk_shutdown bits (include/net/sock.h)
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2
SHUTDOWN_MASK = 3

# struct socket's state, which drives connect()'s return values (net/ipv4/af_inet.c).
SS_UNCONNECTED = 0
SS_CONNECTING = 1
SS_CONNECTED = 2

# Timers and constants (include/net/tcp.h), in ns.
MS = 1_000_000
TCP_TIMEOUT_INIT = 1000 * MS  # initial RTO, and the SYN retransmit base: 1, 3, 7, 15, 31, 63 s
TCP_RTO_MIN = 200 * MS
TCP_RTO_MAX = 120_000 * MS
TCP_DELACK_MIN = 40 * MS  # the delayed ACK LINUX.md measured at ~44 ms
TCP_TIMEWAIT_LEN = 60_000 * MS
TCP_MAX_QUICKACKS = 16
# The delayed-ACK engine's floor (icsk_ack.ato starts here at the first data and is deflated back
# to it), HZ/25 like TCP_DELACK_MIN.
TCP_ATO_MIN = 40 * MS
# net.ipv4.tcp_pingpong_thresh (Linux >= 6.5, default 1; 3 before): replies sent within `ato` of
# the last data received after which a connection counts as interactive and delays its ACKs so
# that they ride on its replies: 2 segments per keep-alive exchange, not 4 (docs/conformance.md).
TCP_PINGPONG_THRESH = 1
TCP_RETRIES2 = 15


def model_timeout(boundary: int, rto_base: int) -> int:
    """tcp_model_timeout (net/ipv4/tcp_timer.c): how long `boundary` retransmissions take if the
    RTO starts at `rto_base` and doubles up to TCP_RTO_MAX. Linux turns tcp_retries2 into this
    time budget and gives up when it has passed since the first retransmission's original send
    (retransmits_timed_out), whatever the RTO really was: 924.6 s for 15 from 200 ms."""
    threshold = (TCP_RTO_MAX // rto_base).bit_length() - 1  # ilog2
    if boundary <= threshold:
        return ((2 << boundary) - 1) * rto_base
    return ((2 << threshold) - 1) * rto_base + (boundary - threshold) * TCP_RTO_MAX


TCP_RETRIES2_TIMEOUT = model_timeout(TCP_RETRIES2, TCP_RTO_MIN)


TCP_MSS_DEFAULT = 536
NO_REQUESTS: Mapping[Address, RequestSock] = MappingProxyType({})
NO_SEGMENTS: tuple[tuple[int, bytes, int], ...] = ()
MAX_SYN_WINDOW = 65535  # windows in SYN segments are never scaled

EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010
EPOLLRDNORM = 0x040
EPOLLWRNORM = 0x100
EPOLLRDHUP = 0x2000
READABLE = EPOLLIN | EPOLLRDNORM
WRITABLE = EPOLLOUT | EPOLLWRNORM
# Wake-up keys: sock_def_readable, sk_stream_write_space, sk_error_report; 0 = state change.
KEY_IN = EPOLLIN | 0x002 | EPOLLRDNORM | 0x080
KEY_OUT = EPOLLOUT | EPOLLWRNORM | 0x200
KEY_ERR = EPOLLERR
KEY_ALL = 0

ERR_BY_STATE = {SYN_SENT: errno.ECONNREFUSED, CLOSE_WAIT: errno.EPIPE}
# tcp_need_reset(): states in which an abortive close sends a RST.
NEED_RESET = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2, SYN_RECV)
# socket.MSG_* are IntFlag members: `flags & socket.MSG_PEEK` goes through enum's Python-level
# __and__ (~1.5 us), on every recv. Plain ints test the same bits.
MSG_PEEK = int(_socket.MSG_PEEK)
MSG_DONTWAIT = int(_socket.MSG_DONTWAIT)
