"""Re-simulation: take the clients' behaviour out of a trace and run it again in simnet.

A trace holds only the *server's* syscalls. Still, every byte a client sent shows up in a Recv,
every FIN as a Recv that returned b"", every RST as an ECONNRESET/EPIPE (or EPOLLERR), and every
byte of the response the client was offered as the accepted prefix of a Send. `extract_clients`
follows the fds through the records and turns that back into one `RecordedClient` per accepted
connection. `resimulate` then builds the same app and server config (optionally perturbed: seed,
latency, buffer sizes), runs the server machine on a simulated host with `SimDriver`, runs one
simulated client per recorded connection that replays what the recording says the client did,
and compares, per connection, the response stream the simulated server sent with the recorded
one. docs/resim.md describes what is reconstructed exactly and what is approximated.

    report = resimulate("live.jsonl", latency="2ms", rcvbuf=4096, trace_out="sim.jsonl")
    print(report.format()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable
from typing import IO, Any

import attrs

from simnet.server import syscalls as sc
from simnet.sim.resim.clients import ReplayingClient, replay_client
from simnet.sim.resim.extract import (
    CLIENT_RECV_SIZE,
    CLOSE,
    CLOSE_ON_EOF,
    HALF_CLOSE,
    NS,
    OPEN,
    RESET,
    SERVER_CLOSE,
    TIMINGS,
    Chunk,
    ClientExtractor,
    RecordedClient,
    extract_clients,
)
from simnet.sim.resim.report import (
    DIFFERS,
    EQUAL,
    RESET_PREFIX,
    ConnectionResult,
    ResimReport,
    compare,
    compare_clients,
    total_lines,
)
from simnet.trace.codec import Record, TraceHeader
from simnet.trace.reader import read_trace, source_name
from simnet.units import parse_duration_ns

__all__ = [
    "CLIENT_RECV_SIZE",
    "CLOSE",
    "CLOSE_ON_EOF",
    "DIFFERS",
    "EQUAL",
    "HALF_CLOSE",
    "NS",
    "OPEN",
    "RESET",
    "RESET_PREFIX",
    "SERVER_CLOSE",
    "TIMINGS",
    "Chunk",
    "ClientExtractor",
    "ConnectionResult",
    "RecordedClient",
    "ReplayingClient",
    "ResimReport",
    "build_machine",
    "compare",
    "compare_clients",
    "extract_clients",
    "replay_client",
    "resimulate",
    "total_lines",
]


def _latency_ns(latency: float | str | None) -> int:
    if latency is None:
        return 0
    if isinstance(latency, str):
        return parse_duration_ns(latency)
    if latency < 0:
        raise ValueError(f"latency must not be negative, not {latency!r}")
    return int(round(latency * NS))


Source = str | os.PathLike[str] | IO[bytes] | IO[str] | tuple[TraceHeader, Iterable[Record]]


def _read(source: Source) -> tuple[TraceHeader, list[RecordedClient], ClientExtractor, str]:
    if isinstance(source, tuple):
        header, records = source
        path = "<records>"
    else:
        header, records = read_trace(source)
        path = source_name(source)
    extractor = ClientExtractor(origin=header.clock_origin, path=path)
    try:
        for rec in records:
            extractor.feed(rec.request, rec.result, rec.seq)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
    return header, extractor.clients(), extractor, path


def build_machine(
    header: TraceHeader,
    path: str = "<trace>",
    *,
    host: str,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
) -> tuple[Any, Any]:
    """(machine, config): the header's app and server config, listening on `host`, with the
    buffer sizes overridden where given. TraceError (line 1) for a header this simnet cannot build."""
    from simnet.drivers.replay import app_and_config
    from simnet.server.machine import ServerMachine

    app, config = app_and_config(header, path)
    changes: dict[str, Any] = {}
    # A live server listened on loopback, which every simulated host has to itself: listen on
    # the server host's address instead (a wildcard listener is left as it was).
    if config.host != "0.0.0.0":
        changes["host"] = host
    if rcvbuf is not None:
        changes["rcvbuf"] = rcvbuf
    if sndbuf is not None:
        changes["sndbuf"] = sndbuf
    config = attrs.evolve(config, **changes)
    return ServerMachine(config, app), config


def resimulate(
    path_or_records: Source,
    *,
    seed: int = 0,
    latency: float | str | None = None,
    rcvbuf: int | None = None,
    sndbuf: int | None = None,
    trace_out: str | os.PathLike[str] | None = None,
    timing: str = "recorded",
    pace_reads: bool = True,
    time_limit: float = 600.0,
    pcap: str | os.PathLike[str] | IO[bytes] | None = None,
) -> ResimReport:
    """Re-run a trace's clients against the same app and config in simnet; see the module docstring.

    `path_or_records`: a trace path or file object, or `(header, records)`. `latency`: one-way,
    between every client and the server, in seconds or as a duration string ("1ms"); default 0
    (a live trace was recorded on loopback). `rcvbuf`/`sndbuf` override the server config's
    SO_RCVBUF/SO_SNDBUF. `trace_out`: write the simulated server's trace there. `timing`:
    "recorded" (each chunk at its recorded time) or "asap". `pace_reads`: clients read at the
    estimated recorded rate where there is one. `time_limit`: virtual seconds after the last
    recorded event before the server is told to shut down regardless. `pcap`: write every
    segment of the re-simulation there (a path or a binary file), for Wireshark (docs/pcap.md).

    Raises TraceError for a malformed trace (nothing is simulated), ValueError for a bad option,
    OSError when the trace cannot be read or `trace_out` cannot be written.
    """
    from simnet.drivers.simulated import SimDriver
    from simnet.kernel import Network
    from simnet.sim.run import CLIENTS_PER_HOST, SERVER_IP
    from simnet.trace.writer import TraceWriter

    if timing not in TIMINGS:
        raise ValueError(f"timing must be one of {', '.join(TIMINGS)}, not {timing!r}")
    for name, value in (("rcvbuf", rcvbuf), ("sndbuf", sndbuf)):
        if value is not None and (type(value) is not int or value <= 0):
            raise ValueError(f"{name} must be a positive number of bytes, not {value!r}")
    if type(seed) is not int:
        raise ValueError(f"seed must be an integer, not {seed!r}")
    latency_ns = _latency_ns(latency)

    header, recorded, extractor, path = _read(path_or_records)
    machine, config = build_machine(header, path, host=SERVER_IP, rcvbuf=rcvbuf, sndbuf=sndbuf)

    net = Network(seed=seed, latency=latency_ns / NS, pcap=pcap)
    env = net.env
    server_host = net.host(SERVER_IP)
    watcher = ClientExtractor(origin=0, path="<simulation>")
    writer = None
    if trace_out is not None:
        sim_header = TraceHeader.create(
            backend="simnet",
            app=header.app,
            app_config=header.app_config,
            server_config=config,
            seed=seed,
            clock_origin=0,
            meta={"resimulation_of": path, "latency_ns": latency_ns, "timing": timing},
        )
        writer = TraceWriter(trace_out, sim_header)

    def on_syscall(request: sc.Syscall, result: sc.Result) -> None:
        watcher.feed(request, result)
        if writer is not None:
            writer.record(request, result)

    try:
        driver = SimDriver(server_host, machine, on_syscall=on_syscall)
        server_proc = server_host.process(driver.run())

        def server_address() -> tuple[str, int]:
            return SERVER_IP, config.port or machine.bound_port or 0

        clients: list[ReplayingClient] = []
        hosts = [
            net.host(f"10.0.{1 + i // 250}.{1 + i % 250}")
            for i in range(max(1, -(-len(recorded) // CLIENTS_PER_HOST)))
        ]
        for i, rec in enumerate(recorded):
            waits = rec.ending == OPEN or (rec.ending == SERVER_CLOSE and rec.closed_in_shutdown)
            client = ReplayingClient(recorded=rec, done=env.event(), waits_for_bytes=waits)
            clients.append(client)
            host = hosts[i % len(hosts)]
            host.process(replay_client(host, server_address, client, timing, pace_reads))

        def supervisor() -> Generator[Any, Any, None]:
            if clients:
                yield env.all_of([c.done for c in clients])
            driver.request_shutdown()

        env.process(supervisor())
        net.run(until=extractor.last_ns / NS + time_limit, stop=server_proc)
        if not driver.finished:
            driver.request_shutdown()
            net.run(until=net.now + 60, stop=server_proc)
        if writer is not None and driver.finished:
            writer.record_exit()
    finally:
        net.stop_capture()  # flushed, and closed if given as a path
        if writer is not None:
            writer.close()

    results = compare_clients(clients, watcher.conns, "server")
    return ResimReport(
        path=path,
        seed=seed,
        latency_ns=latency_ns,
        rcvbuf=rcvbuf,
        sndbuf=sndbuf,
        timing=timing,
        connections=results,
        accept_errors=dict(extractor.accept_errors),
        finished=driver.finished,
        server_exit=getattr(machine, "exit_reason", None),
        sim_time_ns=net.now_ns,
        syscalls=driver.syscalls,
        trace_out=None if trace_out is None else os.fspath(trace_out),
    )
