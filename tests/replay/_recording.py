"""Recorded runs to re-simulate: a server machine in simnet, scripted clients, a TraceWriter.

`record_scripted` runs the real ServerMachine on a simulated host and one simpy process per
`Script`; each script is a list of steps a client takes in order. The server's syscalls go to a
trace file, exactly as realnet would write them (only the backend name differs), and what each
client sent and read is returned, so tests can check the extraction against the truth.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Generator
from pathlib import Path
from typing import Any

import attrs

from simnet.drivers.simulated import SimDriver
from simnet.kernel import Network
from simnet.server.apps import make_app
from simnet.server.config import ServerConfig
from simnet.server.machine import ServerMachine
from simnet.sim.run import RunConfig, simulate
from simnet.trace import TraceHeader, TraceWriter

SERVER = ("10.0.0.1", 80)
NS = 1_000_000_000

# Steps: ("wait", seconds) | ("send", bytes) | ("read", n) -- until n more bytes or EOF |
# ("read_all",) -- until EOF | ("shut_wr",) | ("close",) | ("reset",)
Step = tuple[Any, ...]


@attrs.define
class Script:
    steps: list[Step]
    start: float = 0.0  # seconds
    sent: bytearray = attrs.field(factory=bytearray)
    received: bytearray = attrs.field(factory=bytearray)
    error: str | None = None


def get(path: str, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: simnet\r\n" + extra + b"\r\n"


def post_echo(body: bytes) -> bytes:
    return b"POST /echo HTTP/1.1\r\nHost: simnet\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def _client(host: Any, script: Script) -> Generator[Any, Any, None]:
    env = host.net.env
    if script.start:
        yield env.timeout(int(script.start * NS))
    sock = host.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield from sock.co.connect(SERVER)
        for step in script.steps:
            what = step[0]
            if what == "wait":
                yield env.timeout(int(step[1] * NS))
            elif what == "send":
                yield from sock.co.sendall(step[1])
                script.sent += step[1]
            elif what in ("read", "read_all"):
                want = len(script.received) + step[1] if what == "read" else None
                while want is None or len(script.received) < want:
                    data = yield from sock.co.recv(65536)
                    if not data:
                        break
                    script.received += data
            elif what == "shut_wr":
                sock.shutdown(socket.SHUT_WR)
            elif what == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                return
            elif what == "close":
                sock.close()
                return
            else:
                raise ValueError(f"unknown step {step!r}")
    except OSError as exc:
        script.error = type(exc).__name__
    sock.close()


def record_scripted(
    path: Path,
    scripts: list[Script],
    *,
    app: str = "http",
    seed: int = 1,
    latency: float = 0.0005,
    **config: Any,
) -> Path:
    """Run `scripts` against the real server machine in simnet, recording the server's trace."""
    server_config = ServerConfig(host=SERVER[0], port=SERVER[1], **config)
    header = TraceHeader.create(backend="simnet", app=app, server_config=server_config, seed=seed)
    net = Network(seed=seed, latency=latency)
    server_host = net.host(SERVER[0])
    machine = ServerMachine(server_config, make_app(app))
    with TraceWriter(path, header) as writer:
        driver = SimDriver(server_host, machine, on_syscall=writer.record)
        server = server_host.process(driver.run())
        hosts = [net.host(f"10.0.2.{i + 1}") for i in range(len(scripts))]
        procs = [host.process(_client(host, script)) for host, script in zip(hosts, scripts)]

        def supervisor() -> Generator[Any, Any, None]:
            yield net.env.all_of(procs)
            driver.request_shutdown()

        net.env.process(supervisor())
        net.run(until=3600, stop=server)
        assert driver.finished, "the recorded server did not exit"
        writer.record_exit()
    return path


def record_workload(path: Path, config: RunConfig) -> Path:
    """A whole `simulate()` run (seeded workload clients), recorded."""
    header = TraceHeader.create(
        backend="simnet",
        app=config.workload.app,
        app_config=config.app_options,
        server_config=config.server_config(),
        seed=config.seed,
    )
    with TraceWriter(path, header) as writer:
        summary = simulate(config, on_syscall=writer.record)
        assert summary.finished
        writer.record_exit()
    return path


def rewrite_records(path: Path, out: Path, edit: Any) -> None:
    """Copy a trace, passing each record's JSON object through `edit(obj) -> obj`."""
    lines = path.read_text().splitlines(keepends=True)
    with out.open("w") as f:
        f.write(lines[0])
        for line in lines[1:]:
            f.write(json.dumps(edit(json.loads(line)), separators=(",", ":")) + "\n")
