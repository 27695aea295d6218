"""A small simulated world for hostile clients: one server machine, scripted clients, the verdict.

`run_world(app, clients, config)` builds a Network, runs a `ServerMachine` on 10.0.0.1 through
the simnet driver, and runs each client as a simpy process on its own host. A client is a
generator function `(sock, log) -> ...` that talks to the server through a connected simulated
socket and records what it saw in its `ClientLog`. When every client is done, the world notes
what the server still holds (connections, fds), then asks the server to shut down gracefully
and notes how it exited and what it left open.
"""

from __future__ import annotations

import errno as errno_module
import socket
import struct
from collections.abc import Callable, Generator
from typing import Any

import attrs

from simnet.drivers.simulated import SimDriver
from simnet.kernel import Network
from simnet.server.apps.base import AppFactory
from simnet.server.config import SECOND, ServerConfig
from simnet.server.machine import ServerMachine

SERVER = ("10.0.0.1", 80)

# Short timeouts: virtual time is cheap, but fewer timer events keep each example fast.
CONFIG = ServerConfig(
    host=SERVER[0],
    port=SERVER[1],
    header_timeout_ns=2 * SECOND,
    keepalive_timeout_ns=2 * SECOND,
    idle_timeout_ns=5 * SECOND,
    linger_timeout_ns=1 * SECOND,
)


@attrs.define
class ClientLog:
    name: str
    received: bytearray = attrs.field(factory=bytearray)
    ended: str | None = None  # "eof" (the server closed), an errno name, or "self" (we closed)
    ended_at_ns: int | None = None
    notes: list[str] = attrs.field(factory=list)


Client = Callable[[Any, ClientLog], Generator[Any, Any, None]]


@attrs.frozen(kw_only=True)
class World:
    logs: list[ClientLog]
    machine: ServerMachine
    connections_after_clients: int  # what the machine still held when the last client finished
    fds_after_clients: int  # fds open on the server host then (the listener and epoll: 2)
    fds_at_end: int  # after the graceful shutdown: 0
    exit_reason: str | None
    finished: bool


def read_until_closed(sock: Any, log: ClientLog, limit: int = 1 << 24) -> Generator[Any, Any, None]:
    """Read until the server's FIN or a reset, keeping everything; the usual ending of a client."""
    env = sock.net.env
    try:
        while True:
            data = yield from sock.co.recv(65536)
            if not data:
                log.ended = "eof"
                break
            log.received += data
            if len(log.received) > limit:
                log.ended = "too_much"
                break
    except OSError as exc:
        log.ended = errno_module.errorcode.get(exc.errno or 0, type(exc).__name__)
    log.ended_at_ns = env.now


def send_pieces(sock: Any, pieces: list[bytes], gap_ns: int = 1_000_000) -> Generator[Any, Any, None]:
    """Send each piece, `gap_ns` apart, so that they arrive (mostly) in separate reads."""
    env = sock.net.env
    for i, piece in enumerate(pieces):
        if i:
            yield env.timeout(gap_ns)
        yield from sock.co.sendall(piece)


def reset(sock: Any) -> None:
    """close() with SO_LINGER {1, 0}: the kernel sends a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _client_process(host: Any, client: Client, log: ClientLog, start_ns: int) -> Generator[Any, Any, None]:
    env = host.net.env
    if start_ns:
        yield env.timeout(start_ns)
    sock = host.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield from sock.co.connect(SERVER)
        yield from client(sock, log)
    except OSError as exc:
        if log.ended is None:
            log.ended = errno_module.errorcode.get(exc.errno or 0, type(exc).__name__)
            log.ended_at_ns = env.now
    finally:
        sock.close()  # idempotent, as for a real socket


def run_world(
    app: AppFactory,
    clients: list[tuple[str, Client, int]],
    *,
    config: ServerConfig = CONFIG,
    seed: int = 0,
    latency: float = 0.0005,
    time_limit: float = 600.0,
) -> World:
    """Run `clients` -- (name, client, start time in ns) -- against a server of `app`."""
    net = Network(seed=seed, latency=latency)
    server_host = net.host(SERVER[0])
    machine = ServerMachine(config, app)
    driver = SimDriver(server_host, machine)
    server_proc = server_host.process(driver.run())
    logs: list[ClientLog] = []
    procs = []
    for i, (name, client, start_ns) in enumerate(clients):
        host = net.host(f"10.0.1.{i + 1}")
        log = ClientLog(name=name)
        logs.append(log)
        procs.append(host.process(_client_process(host, client, log, start_ns)))
    env = net.env
    seen: dict[str, int] = {}

    def supervisor() -> Generator[Any, Any, None]:
        if procs:
            yield env.all_of(procs)
        # Let the server finish closing what the clients' last segments asked it to close.
        yield env.timeout(int(0.1 * SECOND))
        seen["connections"] = len(machine.connections)
        seen["fds"] = len(server_host.fds)
        driver.request_shutdown()

    env.process(supervisor())
    net.run(until=time_limit, stop=server_proc)
    return World(
        logs=logs,
        machine=machine,
        connections_after_clients=seen.get("connections", -1),
        fds_after_clients=seen.get("fds", -1),
        fds_at_end=len(server_host.fds),
        exit_reason=machine.exit_reason,
        finished=driver.finished,
    )
