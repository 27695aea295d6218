"""A TCP socket as Linux implements it, as far as the socket API can observe it.

One class holds both halves that Linux keeps apart: the `struct socket` a process holds (fd,
timeout, the SS_CONNECTING/SS_CONNECTED state of inet_stream_connect) and the `struct tcp_sock`
the stack runs (TCP state, sequence numbers, queues, timers). An orphan -- a socket whose fd was
closed while TCP still has work (FIN_WAIT, LAST_ACK, TIME_WAIT) -- is the same object with no fd.
dup() adds a DupSocket: another fd for the same open file, which only checks its own fd and
then runs this class's method bodies; the file is closed (tcp_close) when its last fd goes.

Simplifications, each also listed in docs/fidelity.md:
* Buffers count payload bytes, not skb truesize. The send buffer holds SO_SNDBUF bytes (Linux
  holds about that, LINUX.md §2); the receive buffer holds 3/4 of SO_RCVBUF (Linux: 60-100 %).
* No window scaling option, timestamps or SACK; sequence numbers do not wrap.
* Loss recovery is RTO (exponential backoff) with go-back-N retransmission, plus fast
  retransmit of the first unacknowledged segment on the third duplicate ACK and, until the
  recovery point is acknowledged, on each partial ACK (NewReno, RFC 6582) -- without congestion
  control: no cwnd, the peer's window alone limits what is in flight. An RTO sets the recovery
  point as well (Linux's TCP_CA_Loss, high_seq = snd_nxt; RFC 6582 §3.2 step 4): until an ACK
  passes it, the duplicate ACKs that go-back-N draws for segments the receiver already holds
  start no fast retransmit, and partial ACKs add nothing to go-back-N. Without SACK either
  recovery ends only when an ACK covers more than its point, as in Linux. No F-RTO and no undo
  of a spurious RTO (Linux's tcp_frto, tcp_try_undo_loss). Out-of-order segments wait in an
  out-of-order queue (as Linux's rbtree) and are answered with an immediate duplicate ACK; a
  filled hole is ACKed at once. No SACK, so the sender learns only of the first hole.

The package, by concern; each class builds on the ones before it, as Linux's tcp_input.c calls
tcp_output.c and the socket calls reach all of them:

  constants.py  states, shutdown bits, timer constants, epoll bits and wake-up keys
  base.py       TcpBase: the fields (__slots__), tcp_poll and wake-ups, ports, blocking waits
  output.py     TcpOutput: windows, _output (tcp_write_xmit), ACK/RST/SYN, RTO, persist,
                delayed ACK, TIME_WAIT; the ends of a connection (tcp_done)
  input.py      TcpInput: segment_arrived (tcp_rcv_state_process), ACKs, data, FIN, RST
  listen.py     TcpListen, RequestSock: the SYN queue, SYN-ACKs, children, the accept queue
  api.py        TcpApi: bind, listen, accept, connect, shutdown, close, options
  sendrecv.py   TcpSendRecv: send, sendall, sendmsg, recv, recv_into, recvmsg, recvmsg_into
  socket.py     TcpSocket(TcpSendRecv), DupSocket (dup), SocketCoroutines (sock.co)
"""

from simnet.kernel.tcp.constants import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT1,
    FIN_WAIT2,
    LAST_ACK,
    LISTEN,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    SYN_RECV,
    SYN_SENT,
    TCP_ATO_MIN,
    TCP_DELACK_MIN,
    TCP_MAX_QUICKACKS,
    TCP_MSS_DEFAULT,
    TCP_PINGPONG_THRESH,
    TCP_RETRIES2,
    TCP_RETRIES2_TIMEOUT,
    TCP_RTO_MAX,
    TCP_RTO_MIN,
    TCP_TIMEOUT_INIT,
    TCP_TIMEWAIT_LEN,
    TIME_WAIT,
)
from simnet.kernel.tcp.listen import RequestSock
from simnet.kernel.tcp.socket import DupSocket, SocketCoroutines, TcpSocket

__all__ = [
    "CLOSED",
    "CLOSE_WAIT",
    "CLOSING",
    "ESTABLISHED",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "LAST_ACK",
    "LISTEN",
    "RCV_SHUTDOWN",
    "SEND_SHUTDOWN",
    "SHUTDOWN_MASK",
    "SYN_RECV",
    "SYN_SENT",
    "TCP_ATO_MIN",
    "TCP_DELACK_MIN",
    "TCP_MAX_QUICKACKS",
    "TCP_MSS_DEFAULT",
    "TCP_PINGPONG_THRESH",
    "TCP_RETRIES2",
    "TCP_RETRIES2_TIMEOUT",
    "TCP_RTO_MAX",
    "TCP_RTO_MIN",
    "TCP_TIMEOUT_INIT",
    "TCP_TIMEWAIT_LEN",
    "TIME_WAIT",
    "DupSocket",
    "RequestSock",
    "SocketCoroutines",
    "TcpSocket",
]
