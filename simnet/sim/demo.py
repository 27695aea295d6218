"""`simnet demo`: the seed article's mechanics, one after another, on two simulated hosts.

A handshake crossing a 1 ms link, accept() returning a new fd, a send() that takes only part of
what it was given, the EAGAIN that follows, EPOLLOUT once the reader drains, FIN and recv() == b"",
then the socket table. Every line comes from the model itself (the segment log, return values,
epoll masks); nothing here is canned text, so a change in the model shows up in the demo.
"""

from __future__ import annotations

import errno
import select
import socket
from collections.abc import Callable

from simnet.kernel import Network
from simnet.server.syscalls import format_events

SERVER, CLIENT = "10.0.0.1", "10.0.0.2"


def run_demo(seed: int = 7, out: Callable[[str], None] = print) -> Network:
    """Run the demo, writing its narration through `out`; return the network to inspect."""
    net = Network(seed=seed, latency=0.001, log_segments=True)
    server_host, client_host = net.host(SERVER), net.host(CLIENT)
    shown = 0

    def segments(title: str) -> None:
        nonlocal shown
        out(title)
        for line in net.segment_log[shown:]:
            out(f"  {line}")
        shown = len(net.segment_log)

    out(f"simnet demo (seed {seed}): {SERVER} serves, {CLIENT} connects; one-way latency 1 ms\n")

    listener = server_host.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # inherited by accepted sockets
    listener.bind((SERVER, 8080))
    listener.listen(4)
    listener.setblocking(False)
    client = client_host.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.setblocking(False)
    code = client.connect_ex((SERVER, 8080))
    out(f"client.connect_ex() -> {errno.errorcode[code]} (non-blocking: the handshake is under way)")
    net.run(until=net.now + 0.01)
    segments("1. the three-way handshake, as tcpdump would show it:")

    conn, peer = listener.accept()
    out(f"\n2. listener.accept() -> new fd {conn.fileno()} for {peer[0]}:{peer[1]} "
        f"(the listener keeps fd {listener.fileno()})")
    conn.setblocking(False)

    payload = b"x" * 100_000
    n = conn.send(payload)
    sndbuf = int(conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))  # no buflen: an int
    out(f"\n3. conn.send(100000 bytes) -> {n}: a partial write; the send buffer "
        f"(SO_SNDBUF {sndbuf}) is full")
    try:
        conn.send(payload[n:])
    except BlockingIOError as exc:
        name = "?" if exc.errno is None else errno.errorcode[exc.errno]
        out(f"   conn.send(rest) -> BlockingIOError: {name}: nothing fits until the peer ACKs")
    ep = server_host.epoll()
    ep.register(conn.fileno(), select.EPOLLOUT)
    out(f"   epoll.poll(0) -> {_masks(ep.poll(0))}  (no EPOLLOUT while the buffer is over 2/3 full)")

    net.run(until=net.now + 0.01)
    segments("\n4. the data crosses the link; the client's ACKs free the send buffer while its\n"
             "   receive window closes (win 0: the client has not read anything yet):")
    out(f"   epoll.poll(0) -> {_masks(ep.poll(0))}  (EPOLLOUT: room again, so send more)")
    sent = n + conn.send(payload[n:])
    out(f"   conn.send(rest) -> {sent - n}: the bytes wait in the send buffer for the window to open")
    received = len(client.recv(1 << 20))
    net.run(until=net.now + 0.01)
    segments(f"\n5. the client reads {received} bytes; its window update lets more data go:")

    client.shutdown(socket.SHUT_WR)
    net.run(until=net.now + 0.01)
    segments("\n6. the client half-closes (shutdown SHUT_WR): a FIN")
    ep.modify(conn.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    out(f"   epoll.poll(0) -> {_masks(ep.poll(0))}")
    out(f"   conn.recv(100) -> {conn.recv(100)!r}  (EOF: the peer will send no more)")

    out("\n7. the socket table (ss -tan):")
    for line in net.ss().splitlines():
        out(f"  {line}")
    return net


def _masks(events: list[tuple[int, int]]) -> str:
    if not events:
        return "[] (nothing ready)"
    return "[" + ", ".join(f"(fd {fd}, {format_events(mask)})" for fd, mask in events) + "]"
