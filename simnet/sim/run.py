"""A whole simulated run: one server machine on one host, a seeded workload of clients on others.

`simulate(RunConfig)` is what `simnet run` prints and what the whole-run property tests call.
It builds the network from the seed, runs the server through the simnet driver and the clients
through `simnet.sim.workload`, shuts the server down gracefully when the last client is done, and
returns a `RunSummary` -- a value, identical for identical configs.
"""

from __future__ import annotations

import importlib
import os
import random
import sys
from collections.abc import Callable
from typing import IO, Any

import attrs

from simnet.drivers.simulated import SimDriver
from simnet.faults import FaultSchedule
from simnet.kernel import Network
from simnet.server import syscalls as sc
from simnet.server.apps import make_app
from simnet.server.config import ServerConfig
from simnet.server.machine import ServerMachine
from simnet.sim.workload import ClientStats, Workload, client_process, plan_clients
from simnet.trace import Recorder, TraceHeader, TraceWriter

SERVER_IP = "10.0.0.1"
SERVER_PORT = 80
CLIENTS_PER_HOST = 5000  # ephemeral ports per client host are 28k; keep well inside


# The server's defaults are ServerConfig's, written once there (timeouts here in seconds).
_SERVER = ServerConfig()


def _seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


@attrs.frozen(kw_only=True)
class RunConfig:
    seed: int = 0
    workload: Workload = Workload()
    latency: float = 0.001  # one-way, seconds, between every client host and the server
    rcvbuf: int | None = None  # SO_RCVBUF/SO_SNDBUF for the server's listener (inherited)
    sndbuf: int | None = None
    edge_triggered: bool = False
    max_connections: int = _SERVER.max_connections
    output_cap: int = _SERVER.output_cap
    backlog: int = _SERVER.backlog
    # The server's timeouts in seconds, None for off (`simnet run --header-timeout 2`); the
    # defaults are ServerConfig's. The http app's size limits travel in app_options.
    idle_timeout: float | None = _seconds(_SERVER.idle_timeout_ns)
    header_timeout: float | None = _seconds(_SERVER.header_timeout_ns)
    keepalive_timeout: float | None = _seconds(_SERVER.keepalive_timeout_ns)
    app_options: dict[str, Any] = attrs.field(factory=dict)
    time_limit: float = 3600.0  # virtual seconds: a run that has not finished by then is stopped
    # "MODULE:FACTORY" of a machine variant to run instead of ServerMachine -- a user's own, or a
    # deliberately broken one in a test -- called as FACTORY(server_config, app_factory).
    machine: str | None = None
    # Faults (docs/faults.md): link faults on every client's link, partitions, holds, injected
    # RSTs, client-host crashes, short I/O (on the server's host unless a ShortIO names one).
    faults: FaultSchedule | None = None

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON form that `from_json` reads back (for failure files and `--config`).
        No faults, no "faults" key: the form (and a failure file's digest) of a fault-free
        config is what it was before faults existed."""
        out = attrs.asdict(self, filter=lambda field, value: field.name != "faults")
        if self.faults is not None and not self.faults.empty:
            out["faults"] = self.faults.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Any) -> RunConfig:
        """Build from `to_json`'s form; ValueError naming the field on anything else."""
        if not isinstance(obj, dict):
            raise ValueError("a run configuration is a JSON object")
        known = {field.name for field in attrs.fields(cls)}
        unknown = sorted(set(obj) - known)
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
        fields = dict(obj)
        if "workload" in fields:
            workload = fields["workload"]
            if not isinstance(workload, dict):
                raise ValueError("'workload' must be an object")
            wknown = {field.name for field in attrs.fields(Workload)}
            wunknown = sorted(set(workload) - wknown)
            if wunknown:
                raise ValueError(f"unknown workload field {wunknown[0]!r}")
            fields["workload"] = Workload(**workload)
        if fields.get("faults") is not None:
            fields["faults"] = FaultSchedule.from_json(fields["faults"])
        try:
            return cls(**fields)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def server_config(self) -> ServerConfig:
        return ServerConfig(
            host=SERVER_IP,
            port=SERVER_PORT,
            backlog=self.backlog,
            edge_triggered=self.edge_triggered,
            rcvbuf=self.rcvbuf,
            sndbuf=self.sndbuf,
            max_connections=self.max_connections,
            output_cap=self.output_cap,
            idle_timeout_ns=_ns(self.idle_timeout),
            header_timeout_ns=_ns(self.header_timeout),
            keepalive_timeout_ns=_ns(self.keepalive_timeout),
        )


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1_000_000_000)


@attrs.frozen(kw_only=True)
class RunSummary:
    seed: int
    sim_time_ns: int
    syscalls: int
    server: dict[str, Any]
    clients: dict[str, Any]
    kernel: dict[str, int]
    events: int
    open_fds_at_end: int
    server_exit: str | None
    finished: bool
    # The run had faults that can stall or break a connection: clients may also time out, be
    # refused, crash, or be closed on before their response (short I/O alone does not count).
    faulty: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems()

    def problems(self) -> list[str]:
        """What went wrong, one phrase each; empty for a clean run."""
        clients = self.clients
        found = []
        if not self.finished:
            found.append("the server did not exit by the time limit")
        if self.open_fds_at_end:
            found.append(f"{self.open_fds_at_end} fds left open")
        if clients["wrong_responses"]:
            found.append(f"{clients['wrong_responses']} wrong responses: " + "; ".join(clients["failures"]))
        expected = _EXPECTED_CLIENT_ERRORS + (_FAULT_CLIENT_ERRORS if self.faulty else ())
        unexpected = {name: n for name, n in clients["errors"].items() if name not in expected}
        if unexpected:
            found.append(f"client errors {_fmt_counts(unexpected)}")
        if not self.faulty:
            # ECONNRESET and EPIPE are expected of a client that provoked them (a slow reader timed
            # out, a client closing or resetting early), not of one that behaved normally.
            unprovoked = {
                name: n for name, n in clients.get("unprovoked_errors", {}).items() if name in _EXPECTED_CLIENT_ERRORS
            }
            if unprovoked:
                found.append(f"client errors of clients that provoked none: {_fmt_counts(unprovoked)}")
        if clients.get("unannounced_closes") and not self.faulty:
            # A client's keep-alive retry hides a server that closes connections for no reason.
            found.append(
                f"{clients['unannounced_closes']} keep-alive connections closed by the server before any timeout "
                "and without `Connection: close` (the clients retried)"
            )
        if self.server.get("app_errors"):
            # The machine keeps serving when an app raises (it drops that connection), but an app
            # that raises is a bug, and its clients' resets would otherwise pass as expected.
            first = self.server.get("first_app_error")
            found.append(f"{self.server['app_errors']} app errors" + (f", the first: {first}" if first else ""))
        if self.server_exit not in (None, "shutdown"):
            found.append(f"server exit: {self.server_exit}")
        if clients.get("unfinished"):
            found.append(
                f"{clients['unfinished']} clients neither completed nor named an error "
                "(with no response timeout, a client waits for ever on a connection a fault killed)"
            )
        return found

    def lines(self) -> list[str]:
        s, c, k = self.server, self.clients, self.kernel
        return [
            f"seed                 {self.seed}",
            f"simulated time       {self.sim_time_ns / 1e9:.6f} s",
            f"connections          {s['accepted']} accepted, {s['closed']} closed, {c['connected']} clients connected",
            f"requests             {c['requests']} sent, {s['requests']} parsed by the server",
            f"responses            {c['responses']} correct, {c['wrong_responses']} wrong, {s['responses']} sent",
            f"clients              {c['completed']} completed, {c['early_closes']} closed early, "
            f"{c['resets']} reset on purpose, {c['retries']} retried after a keep-alive close",
            f"bytes                {s['bytes_in']} in, {s['bytes_out']} out (server)",
            f"EAGAIN               {s['eagain_recv']} on recv, {s['eagain_send']} on send",
            f"partial writes       {s['partial_writes']} ({s['epollout_waits']} waits for EPOLLOUT)",
            f"resets               {s['resets']} seen by the server, {k.get('resets_sent', 0)} RST segments",
            f"backlog drops        {k.get('listen_overflows', 0)}",
            f"segments             {k.get('segments', 0)} ({k.get('retransmits', 0)} retransmitted)",
            f"syscalls             {self.syscalls} ({s['epoll_waits']} epoll_wait)",
            f"client errors        {_fmt_counts(c['errors'])}",
            *([f"faults               {_fmt_counts(faults)}"] if (faults := _fault_counts(k)) else []),
            f"server closes        {_fmt_counts(s['closes'])}",
            f"open fds at end      {self.open_fds_at_end}",
            f"simpy events         {self.events}",
        ]


# Errors a client may see by design: a slow reader or resetter provoking the server, or being
# timed out by it -- and only such a client (ClientStats.unprovoked_errors). A slow reader the
# server timed out mid-response reads the bytes already sent, then EOF (EOF_BEFORE_RESPONSE).
# Anything else in a plain run is a failure.
_EXPECTED_CLIENT_ERRORS = ("ECONNRESET", "EPIPE", "EOF_BEFORE_RESPONSE")
# Under faults a client may also give up on a dead path (ETIMEDOUT), find a restarted server port
# closed (ECONNREFUSED), see the server time a stalled connection out before its first response
# (EOF_BEFORE_RESPONSE), die with its host (HOST_CRASHED), or hit its own response timeout
# (TIMEOUT, Workload.response_timeout). Each is an error it can name.
_FAULT_CLIENT_ERRORS = ("ETIMEDOUT", "ECONNREFUSED", "EOF_BEFORE_RESPONSE", "HOST_CRASHED", "TIMEOUT")
# Kernel counters that count faults and the recovery from them, in the summary's "faults" line.
FAULT_COUNTERS = (
    "lost", "partitioned", "held", "released", "duplicated", "reordered", "out_of_order", "fast_retransmits",
    "rsts_injected", "rsts_missed", "crashes", "restarts", "short_recvs", "short_sends", "spurious_wakeups",
)  # fmt: skip


def _fault_counts(kernel: dict[str, int]) -> dict[str, int]:
    return {name: kernel[name] for name in FAULT_COUNTERS if kernel.get(name)}


def _fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def load_object(spec: str) -> Any:
    """`MODULE:NAME` -> the object; ValueError with a one-line message. The working directory
    is importable, as under `python -m`, so a test module names its machine variants plainly."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"{spec!r}: expected MODULE:NAME, e.g. tests.sweep.broken:ForgetsPartialWrites")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{spec!r}: cannot import {module_name}: {exc}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{spec!r}: {module_name} has no {name!r}") from None


def simulate(
    config: RunConfig,
    *,
    on_syscall: Callable[[sc.Syscall, sc.Result], None] | None = None,
    machine_factory: Callable[[ServerConfig, Any], Any] = ServerMachine,
    trace: str | os.PathLike[str] | IO[bytes] | None = None,
    pcap: str | os.PathLike[str] | IO[bytes] | None = None,
    observe: Callable[[Network], None] | None = None,
) -> RunSummary:
    """Run `config` to the end. With `trace` (a path or a binary file), the server's syscalls are
    recorded there as a trace that `simnet replay` replays exactly; with `pcap`, every segment
    goes there as a capture for Wireshark (Network.capture). `observe(net)` is called on the
    new network before anything runs, to attach hooks (simnet.sim.plot's recorder, say)."""
    faults = _resolve_faults(config.faults)
    net = Network(seed=config.seed, latency=config.latency, faults=faults, pcap=pcap)
    if observe is not None:
        observe(net)
    rng = net.rng
    server_host = net.host(SERVER_IP)
    workload = config.workload
    app = make_app(workload.app, **config.app_options)
    server_config = config.server_config()
    if config.machine is not None and machine_factory is ServerMachine:
        machine_factory = load_object(config.machine)
    machine = machine_factory(server_config, app)
    writer = None
    driven: Any = machine
    if trace is not None:
        header = TraceHeader.create(
            backend="simnet",
            app=workload.app,
            app_config=config.app_options,
            server_config=server_config,
            seed=config.seed,
            meta={"workload": attrs.asdict(workload), "latency": config.latency},
        )
        writer = TraceWriter(trace, header)
        driven = Recorder(machine, writer, flush_before_wait=False)
    driver = SimDriver(server_host, driven, on_syscall=on_syscall)
    server_proc = server_host.process(driver.run())

    plans = plan_clients(workload, random.Random(rng.getrandbits(64)))
    stats = ClientStats()
    for plan in plans:
        stats.planned[plan.behaviour] = stats.planned.get(plan.behaviour, 0) + 1
    client_hosts = [net.host(f"10.0.1.{i + 1}") for i in range(max(1, -(-len(plans) // CLIENTS_PER_HOST)))]
    close_after_ns = _close_after_ns(server_config)
    procs = [
        client_hosts[plan.client_id % len(client_hosts)].process(
            client_process(
                client_hosts[plan.client_id % len(client_hosts)], (SERVER_IP, SERVER_PORT), plan, workload, stats,
                close_after_ns=close_after_ns,
            )
        )
        for plan in plans
    ]
    env = net.env
    if faults is not None and faults.crashes:
        procs_by_host: dict[str, list[Any]] = {}
        for plan, proc in zip(plans, procs):
            procs_by_host.setdefault(client_hosts[plan.client_id % len(client_hosts)].ip, []).append(proc)

        def crashed(host: Any) -> None:
            # The client processes on a crashed host die with it (they see HOST_CRASHED).
            for proc in procs_by_host.get(host.ip, []):
                if proc.is_alive:
                    proc.interrupt("host crashed")

        net.crash_callbacks.append(crashed)

    def supervisor() -> Any:
        if procs:
            yield env.all_of(procs)
        driver.request_shutdown()

    env.process(supervisor())
    net.run(until=config.time_limit, stop=server_proc)
    finished = driver.finished
    if not finished:
        driver.request_shutdown()
        net.run(until=net.now + 60, stop=server_proc)
        finished = driver.finished
    if writer is not None:
        writer.close()
    net.stop_capture()
    open_fds = len(server_host.fds)
    clients = attrs.asdict(stats)
    if faults is not None:
        clients["unfinished"] = sum(1 for proc in procs if not proc.triggered)
    return RunSummary(
        seed=config.seed,
        sim_time_ns=net.now_ns,
        syscalls=driver.syscalls,
        server=attrs.asdict(machine.stats) if attrs.has(type(machine.stats)) else dict(vars(machine.stats)),
        clients=clients,
        kernel=dict(sorted(net.counters.items())),
        events=env.events_scheduled,
        open_fds_at_end=open_fds,
        server_exit=getattr(machine, "exit_reason", None),
        finished=finished and server_proc.triggered,
        # Short I/O alone stalls nothing (a correct server just calls again), so it excuses no
        # client error: EOF_BEFORE_RESPONSE under short I/O alone is a server bug -- a truncated
        # response from a machine that ignores partial writes, say (tests/faults).
        faulty=faults is not None and not _short_io_only(faults),
    )


def _close_after_ns(config: ServerConfig) -> int | None:
    """The shortest time after which the server may close a quiet connection: its smallest timeout
    (None: it has none). A machine variant with another rule judges against the same config."""
    timeouts = [
        t for t in (config.idle_timeout_ns, config.header_timeout_ns, config.keepalive_timeout_ns) if t is not None
    ]
    return min(timeouts) if timeouts else None


def _short_io_only(faults: FaultSchedule) -> bool:
    return not (faults.links or faults.partitions or faults.holds or faults.rsts or faults.crashes)


def _resolve_faults(faults: FaultSchedule | None) -> FaultSchedule | None:
    """A run's schedule as the Network takes it: ShortIO without a host means the server's;
    a crash of the server's host is refused (the server machine cannot be restarted)."""
    if faults is None or faults.empty:
        return None
    for crash in faults.crashes:
        if crash.host == SERVER_IP:
            raise ValueError(f"crashes: the server's host {SERVER_IP} cannot crash in a run (only client hosts)")
    short_io = tuple(attrs.evolve(item, host=SERVER_IP) if item.host is None else item for item in faults.short_io)
    return attrs.evolve(faults, short_io=short_io)
