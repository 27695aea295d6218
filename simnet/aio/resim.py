"""`simnet replay --sim T.jsonl -- python app.py`: a recorded program's clients, re-simulated.

    python -m simnet.aio.resim [--seed N ...] T.jsonl -- app.py [args]     (what `simnet replay` runs)

A program trace (`simnet record`) holds the program's side of every connection it accepted:
what it read (the client's bytes, with the trace's clock between them), `b""` (the client's
half-close), ECONNRESET (its reset), and what it sent back. `extract_program_clients` follows
the listening sockets (Bind, Listen, GetSockName) and the fds their Accepts returned, and hands
the per-connection records to the machine's extractor (simnet/sim/resim/, docs/resim.md): one
`RecordedClient` per accepted connection, plus the listener it came in on.

`resimulate_program` then runs the program itself -- unchanged, through runpy, as `simnet record`
did -- on simnet.aio, on host "main" (10.0.0.1), under the seed and faults asked for, and one
simulated client per recorded connection, from hosts "client1", ... over links with the latency
and faults asked for: each connects as long after the program's (simulated) listen as it did
after the recorded one, sends its recorded chunks with the recorded pauses, and ends as it
ended (docs/resim.md: the same client script as the machine's re-simulation). The program's own
calls on "main" are watched through simnet.aio's trace recorder, and per connection the bytes
the program sent are compared with the recorded ones: equal, reset (prefix matches) or DIFFERS
(with the first differing byte).

Two decisions, each for a reason:

* **Where the clients come from.** A live program usually listens on 127.0.0.1, which only its
  own host can reach -- and loopback has no latency and no faults, so a re-simulation over it
  could not perturb anything. So a bind to the recorded listening port on any address other
  than the wildcard is widened to 0.0.0.0 in the simulation (the Bind the program sees still
  succeeds; getsockname says 0.0.0.0), and the clients connect from other hosts to 10.0.0.1
  over links that have `--latency` and the faults. Loopback still reaches the program too.
* **How the program is stopped.** Once every client is done (or a bound of virtual time has
  passed), the program gets what Ctrl-C would give it: the handler it added for SIGINT (or
  SIGTERM) with `loop.add_signal_handler` runs; else its `signal.signal` SIGINT handler runs --
  under `asyncio.run` that is asyncio's own, which cancels the main task and makes asyncio.run
  raise KeyboardInterrupt, so `finally:` blocks and cleanups run as they would. A program that
  ignores SIGINT and has no SIGTERM handler is stopped as SIGTERM would: at once. A program
  still running 10 virtual seconds later gets a second SIGINT (asyncio.run then raises
  KeyboardInterrupt at once), and 10 s after that it is cut off: the report is printed and the
  process exits.

This file is longer than most (~770 lines) because the three steps -- taking the clients out
of a program trace, running the program with them, stopping it -- share one set of options and
one report, and each is short; the client script and the comparison are the machine's.

Exit status: 0 every connection equal (or reset with one stream a prefix of the other), 1 a
connection differs, 2 bad input (one line: a malformed or foreign trace, a program that does not
exist, a program that never listened where the recording did, a bad option value).
"""

from __future__ import annotations

import asyncio
import io
import os
import shlex
import signal
import sys
import traceback
from collections.abc import Callable, Generator
from typing import Any

import attrs

from simnet.aio.options import new_event_loop
from simnet.aio.program import Program, ProgramError, exit_status, parse_program, run_program
from simnet.aio.replay_main import check_program
from simnet.aio.runner import quiet_cancelled_handlers
from simnet.aio.socket import SimSocket
from simnet.aio.world import MAIN_HOST
from simnet.server import syscalls as sc
from simnet.sim.resim import (
    NS,
    OPEN,
    SERVER_CLOSE,
    ClientExtractor,
    ConnectionResult,
    RecordedClient,
    ReplayingClient,
    compare_clients,
    replay_client,
    total_lines,
)
from simnet.trace.codec import TraceError, TraceHeader
from simnet.trace.reader import read_trace
from simnet.units import parse_duration_ns, parse_size

EXIT_OK, EXIT_DIFFERS, EXIT_BAD_INPUT = 0, 1, 2
CLIENTS_PER_HOST = 5000  # as simnet run: ephemeral ports per client host are 28k
GRACE_NS = 10 * NS  # after a SIGINT, before the next step of stopping the program
TIME_LIMIT_NS = 600 * NS  # after the last recorded event, the program is stopped regardless
_WILDCARDS = ("", "0.0.0.0")


class BadInput(Exception):
    """One line for the user, exit status 2."""


# ------------------------------------------------------------------------------------------------
# The clients in a program's trace
# ------------------------------------------------------------------------------------------------


@attrs.define
class Listener:
    """A socket the program listened on: where its clients connected."""

    index: int  # 0, 1, ...: order of Listen
    fd: int
    host: str  # the address it bound ("127.0.0.1", "0.0.0.0", ...)
    bound_port: int  # the port it bound (0: any)
    port: int  # the port it listened on (GetSockName's, for a port-0 bind)
    listen_ns: int  # from the extractor's origin
    line: int  # the trace line of its Listen (0 in a simulation)


class ProgramClientExtractor:
    """Follows a program's calls and collects, per accepted connection, what its client did.

    Only connections accepted on a listening socket are clients: the program's self-pipe, its
    outgoing connections and its epolls are none of theirs and are skipped. What a connection's
    records say is read by the machine's `ClientExtractor`. A Signal record marks the start of
    the program's shutdown, as a graceful shutdown does in a machine trace: a connection the
    program closed after it was closed *by* the shutdown, not by its client.
    """

    def __init__(self, *, origin: int, path: str = "<trace>") -> None:
        self.clients = ClientExtractor(origin=origin, path=path)
        self.origin = origin
        self.listeners: list[Listener] = []
        self.conn_listener: list[int] = []  # per accepted connection: its listener's index
        self._bound: dict[int, tuple[str, int]] = {}
        self._listening: dict[int, Listener] = {}
        self.on_listen: Callable[[Listener], None] | None = None
        self.epoch_ns: int | None = None  # the wall clock at the origin, from the first time.time()

    def feed(self, request: Any, result: sc.Result | None, seq: int = 0, line: int = 0) -> None:
        if result is None:  # Exit
            return
        kind = type(request)
        inner = self.clients
        if kind is sc.Recv or kind is sc.Send or kind is sc.Shutdown:
            if request.fd in inner.by_fd:
                inner.feed(request, result, seq)
        elif kind is sc.EpollWait:
            inner.feed(request, result, seq)  # it looks only at the fds of connections
        elif kind is sc.Accept:
            listener = self._listening.get(request.fd)
            if listener is not None:
                before = len(inner.conns)
                inner.feed(request, result, seq)
                if len(inner.conns) > before:
                    self.conn_listener.append(listener.index)
        elif kind is sc.Close:
            self._bound.pop(request.fd, None)
            self._listening.pop(request.fd, None)
            inner.feed(request, result, seq)
        elif result.error is not None:
            return
        elif kind is sc.Bind:
            self._bound[request.fd] = (request.host, request.port)
        elif kind is sc.Listen and request.fd not in self._listening:
            host, port = self._bound.get(request.fd, ("0.0.0.0", 0))
            listener = Listener(
                index=len(self.listeners), fd=request.fd, host=host, bound_port=port, port=port,
                listen_ns=result.now - self.origin, line=line,
            )  # fmt: skip
            self.listeners.append(listener)
            self._listening[request.fd] = listener
            if self.on_listen is not None:
                self.on_listen(listener)
        elif kind is sc.GetSockName and request.fd in self._listening:
            listener = self._listening[request.fd]
            if listener.port == 0 and isinstance(result.value, tuple) and len(result.value) >= 2:
                listener.port = int(result.value[1])
        elif kind is sc.Clock:
            if self.epoch_ns is None and request.kind == "time" and type(result.value) is int:
                self.epoch_ns = result.value - (result.now - self.origin)
        elif kind is sc.Signal:
            if not inner.shutdown_seen:
                inner.shutdown_seen = True
                inner.shutdown_ns = result.now - self.origin
        elif kind is sc.OpenSocket or kind is sc.SocketPair:
            # A new fd: whatever connection had it before is gone (its Close was not recorded).
            fds = result.value if kind is sc.SocketPair else (result.value,)
            for fd in fds:  # type: ignore[union-attr]
                inner.by_fd.pop(fd, None)


@attrs.frozen(kw_only=True)
class ProgramClients:
    """What a program trace says about its clients."""

    path: str
    header: TraceHeader
    clients: tuple[RecordedClient, ...]
    listeners: tuple[Listener, ...]
    conn_listener: tuple[int, ...]  # per client: the index of the listener it connected to
    accept_errors: dict[str, int]
    last_ns: int
    epoch: float | None  # time.time() at the recording's origin, if the program read it


def extract_program_clients(path: str) -> ProgramClients:
    """The clients of a program trace (`simnet record`), in order of accept. TraceError for a
    malformed trace; OSError when it cannot be read."""
    header, records = read_trace(path)
    extractor = ProgramClientExtractor(origin=header.clock_origin, path=path)
    try:
        for rec in records:
            extractor.feed(rec.request, rec.result, rec.seq, rec.line)
    finally:
        records.close()  # type: ignore[attr-defined]
    inner = extractor.clients
    return ProgramClients(
        path=path,
        header=header,
        clients=tuple(inner.clients()),
        listeners=tuple(extractor.listeners),
        conn_listener=tuple(extractor.conn_listener),
        accept_errors=dict(inner.accept_errors),
        last_ns=inner.last_ns,
        epoch=None if extractor.epoch_ns is None else extractor.epoch_ns / NS,
    )


# ------------------------------------------------------------------------------------------------
# Options
# ------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Options:
    """A re-simulation's knobs, checked (`Options.parse` says what is wrong in one line)."""

    seed: int = 0
    latency: float = 0.0  # one-way, seconds: a live trace was recorded on loopback
    loss: float = 0.0
    reorder: float = 0.0
    jitter: str | None = None
    short_io: float = 0.0
    faults: str | None = None
    rcvbuf: int | None = None
    sndbuf: int | None = None
    trace_out: str | None = None
    pcap: str | None = None
    timing: str = "recorded"
    pace_reads: bool = True

    @classmethod
    def parse(cls, given: dict[str, str | bool]) -> Options:
        """From option texts as given on the command line (keys without the dashes)."""
        values: dict[str, Any] = {}
        for name, text in given.items():
            flag = "--" + name.replace("_", "-")
            if name in ("asap", "no_pace"):
                if name == "asap":
                    values["timing"] = "asap"
                else:
                    values["pace_reads"] = False
                continue
            assert isinstance(text, str)
            if name == "seed":
                try:
                    values["seed"] = int(text, 10)
                except ValueError:
                    raise BadInput(f"simnet replay: {flag} {text!r}: expected an integer") from None
            elif name == "latency":
                try:
                    values["latency"] = parse_duration_ns(text) / NS
                except ValueError as exc:
                    raise BadInput(f"simnet replay: {flag} {exc}") from None
            elif name in ("loss", "reorder", "short_io"):
                try:
                    rate = float(text)
                except ValueError:
                    raise BadInput(f"simnet replay: {flag} {text!r}: expected a fraction between 0 and 1") from None
                if not 0 <= rate <= 1 or (name == "short_io" and rate >= 1):
                    raise BadInput(
                        f"simnet replay: {flag} {text!r}: expected a fraction between 0 and 1"
                        + (" (below 1: a call must be able to succeed)" if name == "short_io" else "")
                    )
                values[name] = rate
            elif name in ("rcvbuf", "sndbuf"):
                try:
                    values[name] = parse_size(text, positive=True)
                except ValueError:
                    problem = "expected a positive number of bytes, e.g. 4096 or 64k"
                    raise BadInput(f"simnet replay: {flag} {text!r}: {problem}") from None
            elif name in ("jitter", "faults", "trace_out", "pcap"):
                values[name] = text
            else:
                raise BadInput(f"simnet replay: {flag}: not an option of a program's re-simulation")
        options = cls(**values)
        try:  # a bad --jitter or --faults file: said now, in one line, before the program runs
            new_event_loop(**options.loop_options(seed=options.seed)).close()
        except (OSError, TypeError, ValueError) as exc:
            message = str(exc).strip().splitlines()[0]
            named = options.faults is not None and message.startswith(options.faults)  # file:line: ...
            raise BadInput(message if named else f"simnet replay: --{message}") from None
        return options

    def loop_options(self, *, seed: int) -> dict[str, Any]:
        """new_event_loop's keywords."""
        return {
            "seed": seed, "latency": self.latency, "loss": self.loss, "reorder": self.reorder,
            "jitter": self.jitter, "short_io": self.short_io, "faults": self.faults,
            "rcvbuf": self.rcvbuf, "sndbuf": self.sndbuf,
        }  # fmt: skip

    def describe(self, seed: int) -> str:
        words = [f"seed {seed}", f"latency {self.latency * 1e3:g}ms"]
        for name in ("loss", "reorder", "short_io"):
            if getattr(self, name):
                words.append(f"{name.replace('_', '-')} {getattr(self, name):g}")
        for name in ("jitter", "faults"):
            if getattr(self, name) is not None:
                words.append(f"{name} {getattr(self, name)}")
        if self.rcvbuf is not None:
            words.append(f"rcvbuf {self.rcvbuf}")
        if self.sndbuf is not None:
            words.append(f"sndbuf {self.sndbuf}")
        if self.timing != "recorded":
            words.append(f"timing {self.timing}")
        return ", ".join(words)


def parse_seeds(text: str) -> list[int]:
    """`0-9`, `1,5,9-12` -> seeds in order (as `simnet sweep --seeds`)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low, 10), int(high, 10) if dash else int(low, 10)
            if last < first or first < 0:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise BadInput(f"simnet replay: --seeds {text!r}: expected seeds such as 0-9 or 1,5,9-12") from None
    return seeds


# ------------------------------------------------------------------------------------------------
# The re-simulation
# ------------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ProgramResimReport:
    path: str
    description: str  # the seed and faults, as a reader wants them in the total line
    connections: tuple[ConnectionResult, ...]
    accept_errors: dict[str, int]
    ending: str  # how the program ended
    sim_time_ns: int

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.connections)

    def lines(self) -> list[str]:
        out = [c.format() for c in self.connections]
        out.extend(total_lines(self.connections, self.description, self.accept_errors))
        out.append(f"program: {self.ending} (after {self.sim_time_ns / NS:.3f} s of virtual time)")
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


class _Watch:
    """Stands in for the trace writer of simnet.aio's recorder: the program's own calls (host
    "main") go to an extractor, and every record to --trace's writer when there is one."""

    def __init__(self, extractor: ProgramClientExtractor, forward: Any) -> None:
        self.extractor = extractor
        self.forward = forward

    def record(self, request: Any, result: sc.Result | None, host: str | None = None) -> None:
        if host == MAIN_HOST:
            self.extractor.feed(request, result)
        if self.forward is not None:
            self.forward.record(request, result, host)

    def record_exit(self) -> None:
        if self.forward is not None:
            self.forward.record_exit()

    def flush(self) -> None:
        if self.forward is not None:
            self.forward.flush()

    def close(self) -> None:
        if self.forward is not None:
            self.forward.close()


class _OneLoop(asyncio.DefaultEventLoopPolicy):
    """asyncio's policy, but the program's event loop is the simulated one made for it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = loop

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop, self._loop = self._loop, None
        if loop is None:
            raise RuntimeError(
                "simnet replay --sim: the program made a second event loop; its clients are "
                "re-simulated against the first one only"
            )
        return loop


def _widen_binds(ports: set[int]) -> None:
    """A bind to a recorded listening port on a specific address (127.0.0.1) binds the wildcard
    instead, so that clients on other hosts -- over links with latency and faults -- reach it."""
    bind = SimSocket.bind

    def widened(self: SimSocket, address: Any) -> None:
        specific = isinstance(address, tuple) and len(address) >= 2 and address[0] not in _WILDCARDS
        if specific and isinstance(address[1], int) and address[1] in ports:
            address = ("0.0.0.0", address[1])
        bind(self, address)

    SimSocket.bind = widened  # type: ignore[method-assign]


@attrs.define
class _Stopper:
    """Stops the program once its clients are done: SIGINT as Ctrl-C would deliver it, then
    again, then the report and the end of the process (see the module docstring)."""

    loop: Any
    finish: Callable[[str], None]  # prints the report and ends the process
    step: int = 0
    how: str = ""

    def next_step(self) -> None:
        self.step += 1
        if self.step > 2:
            self.finish(f"did not end within {2 * GRACE_NS // NS} s after SIGINT: cut off")
            return
        self.loop.call_soon(self._deliver)
        self.loop.world.net.wake_waiter()  # the loop may be waiting in select: it has work now

    def _deliver(self) -> None:
        if self.step == 1:
            quiet_cancelled_handlers(self.loop)
        handles = self.loop._signal_handlers
        for signum in (signal.SIGINT, signal.SIGTERM):
            handle = handles.get(signum)
            if handle is not None and not handle._cancelled:
                self.how = f"stopped by {signal.Signals(signum).name} (its loop.add_signal_handler handler)"
                handle._run()
                return
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):
                self.how = f"stopped by {signal.Signals(signum).name}"
                handler(signum, None)  # asyncio.run's: cancels the main task; the default: KeyboardInterrupt
                return
        self.finish("killed by SIGTERM (it handles neither SIGINT nor SIGTERM)")


def resimulate_program(
    program: Program, recorded: ProgramClients, options: Options, *, seed: int, quiet: bool = False
) -> int:
    """Run `program` on simnet.aio against the recorded clients; print the report; return the
    exit status. Runs the program in this process: call it once per process (fork for more)."""
    path = recorded.path
    trace_target: Any = options.trace_out if options.trace_out is not None else io.BytesIO()
    sys.argv = program.argv  # the simulated trace's header names the program as it ran
    # The program's wall clock starts where the recording's did, so that what it prints of the
    # date (an HTTP Date header, say) is what it printed then (as far as the second matches).
    epoch: dict[str, Any] = {} if recorded.epoch is None else {"epoch": recorded.epoch}
    loop = new_event_loop(**options.loop_options(seed=seed), trace=trace_target, pcap=options.pcap, **epoch)
    world = loop.world
    net = world.net
    env = net.env
    main_host = world.host(MAIN_HOST)
    watcher = ProgramClientExtractor(origin=0, path="<simulation>")
    recorder = world.recorder
    recorder.writer = _Watch(watcher, recorder.writer if options.trace_out is not None else None)

    # Each recorded listener's simulated twin, in order of Listen: the event carries its port.
    listened = [env.event() for _ in recorded.listeners]

    def on_listen(listener: Listener) -> None:
        sock = main_host.fds.get(listener.fd)
        local = getattr(sock, "local", None)
        if local is not None:
            listener.port = int(local[1])
        if listener.index < len(listened):
            listened[listener.index].succeed(listener)

    watcher.on_listen = on_listen
    _widen_binds({listener.bound_port for listener in recorded.listeners})
    server_ip = world.address(MAIN_HOST)

    clients: list[ReplayingClient] = []
    for i, rec in enumerate(recorded.clients):
        waits = rec.ending == OPEN or (rec.ending == SERVER_CLOSE and rec.closed_in_shutdown)
        client = ReplayingClient(recorded=rec, done=env.event(), waits_for_bytes=waits)
        clients.append(client)
        host = world.host(f"client{1 + i // CLIENTS_PER_HOST}")
        listener = recorded.listeners[recorded.conn_listener[i]]
        env.process(_connect_after_listen(env, host, server_ip, client, listener, listened[listener.index], options))

    def finish(ending: str) -> None:
        report = _report(recorded, clients, watcher, options, seed, ending, net.now_ns)
        _print_report(report, quiet, seed)
        _flush_and_exit(EXIT_OK if report.ok else EXIT_DIFFERS)

    stopper = _Stopper(loop=loop, finish=finish)

    def supervisor() -> Generator[Any, Any, None]:
        everything = env.all_of([*listened, *(c.done for c in clients)])
        yield env.any_of([everything, env.timeout(recorded.last_ns + TIME_LIMIT_NS)])
        while True:
            stopper.next_step()
            yield env.timeout(GRACE_NS)

    env.process(supervisor())
    asyncio.set_event_loop_policy(_OneLoop(loop))
    status, crashed = 0, ""
    try:
        run_program(program)
    except SystemExit as exc:
        status = exit_status(exc)
    except KeyboardInterrupt:
        status = 130  # the program let our SIGINT end it, as Python does after Ctrl-C
    except BaseException as exc:  # noqa: BLE001 -- the program's own failure: shown, then judged
        traceback.print_exc()
        status, crashed = 1, f" with {type(exc).__name__}"
    finally:
        asyncio.set_event_loop_policy(None)
    if not loop.is_closed():
        loop.close()  # the trace and the capture are complete once the loop is closed
    if not watcher.listeners and recorded.listeners:
        first = recorded.listeners[0]
        raise BadInput(
            f"{path}:{first.line}: the program exited (status {status}) without listening, where the "
            f"recording listened on {first.host or '0.0.0.0'}:{first.port}: it exits early, or the "
            "trace is of another program"
        )
    if stopper.step == 0:
        ending = f"ended by itself{crashed} before its clients were done (status {status})"
    else:
        ending = f"{stopper.how or 'stopped'} once its clients were done; it exited{crashed} (status {status})"
    report = _report(recorded, clients, watcher, options, seed, ending, net.now_ns)
    _print_report(report, quiet, seed)
    return EXIT_OK if report.ok else EXIT_DIFFERS


def _connect_after_listen(
    env: Any, host: Any, server_ip: str, client: ReplayingClient, listener: Listener, listened: Any, options: Options
) -> Generator[Any, Any, None]:
    """The recorded client, from when the program listens: it connects as long after the
    simulated listen as it did after the recorded one (a program may take its time to start)."""
    simulated: Listener = yield listened
    rec = client.recorded
    client.recorded = attrs.evolve(rec, accepted_ns=max(0, rec.accepted_ns - listener.listen_ns) + env.now)
    address = (server_ip, simulated.port)
    yield from replay_client(host, lambda: address, client, options.timing, options.pace_reads)


def _report(
    recorded: ProgramClients,
    clients: list[ReplayingClient],
    watcher: ProgramClientExtractor,
    options: Options,
    seed: int,
    ending: str,
    now_ns: int,
) -> ProgramResimReport:
    results = compare_clients(clients, watcher.clients.conns, "program")
    return ProgramResimReport(
        path=recorded.path,
        description=options.describe(seed),
        connections=results,
        accept_errors=recorded.accept_errors,
        ending=ending,
        sim_time_ns=now_ns,
    )


def _print_report(report: ProgramResimReport, quiet: bool, seed: int) -> None:
    lines = report.lines()
    if quiet and report.ok:
        lines = [f"seed {seed}: {lines[-2] if not report.accept_errors else lines[-3]}"]
    elif quiet:
        lines = [f"seed {seed}: {line}" for line in lines]
    _flush_stdio()
    os.write(1, ("\n".join(lines) + "\n").encode())


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 -- the program may have closed or replaced them
            pass


def _flush_and_exit(status: int) -> None:
    _flush_stdio()
    os._exit(status)


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------

_VALUE_OPTIONS = ("seed", "seeds", "latency", "loss", "reorder", "jitter", "short_io", "faults",
                  "rcvbuf", "sndbuf", "trace", "pcap")  # fmt: skip
_FLAG_OPTIONS = ("asap", "no_pace")


def _split(argv: list[str]) -> tuple[dict[str, str | bool], str, list[str]]:
    """`[--name value | --flag]... TRACE -- program...` -> (options, trace, program words)."""
    given: dict[str, str | bool] = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] != "--":
        name = argv[i][2:].replace("-", "_")
        if name in _FLAG_OPTIONS:
            given[name] = True
            i += 1
        elif name in _VALUE_OPTIONS and i + 1 < len(argv):
            given["trace_out" if name == "trace" else name] = argv[i + 1]
            i += 2
        else:
            raise BadInput(f"simnet replay: {argv[i]}: not an option of a program's re-simulation")
    if i >= len(argv):
        raise BadInput("simnet replay: no trace given: simnet replay --sim TRACE.jsonl -- python app.py [args]")
    return given, argv[i], argv[i + 1 :]


def _load(path: str, program: Program) -> ProgramClients:
    try:
        recorded = extract_program_clients(path)
    except TraceError as exc:
        raise BadInput(str(exc)) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror or exc}") from None
    problem = check_program(path, recorded.header, program)
    if problem is not None:
        raise BadInput(problem)
    if not recorded.listeners:
        raise BadInput(
            f"{path}: the program never listened: --sim re-runs the clients a server accepted, and "
            "this recording has none (replay it exactly instead, without --sim)"
        )
    return recorded


def _reproduce(path: str, given: dict[str, str | bool], seed: int, words: list[str]) -> str:
    out = ["simnet", "replay", "--sim", path, "--seed", str(seed)]
    for name, value in given.items():
        if name in ("seed", "seeds"):
            continue
        flag = "--trace" if name == "trace_out" else "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(w) for w in [*out, "--", *words])


def _sweep(program: Program, recorded: ProgramClients, options: Options, seeds: list[int],
           given: dict[str, str | bool], words: list[str]) -> int:  # fmt: skip
    """One re-simulation per seed, each in a child process forked before the program is loaded
    (a program runs once per process: its modules, globals and signal handlers are its own)."""
    failed: list[int] = []
    for seed in seeds:
        _flush_stdio()
        pid = os.fork()
        if pid == 0:
            try:
                status = resimulate_program(program, recorded, options, seed=seed, quiet=True)
            except BadInput as exc:
                _flush_stdio()
                os.write(2, f"{exc}\n".encode())
                status = EXIT_BAD_INPUT
            _flush_and_exit(status)
        _, wait_status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if code == EXIT_BAD_INPUT:
            return EXIT_BAD_INPUT
        if code != EXIT_OK:
            failed.append(seed)
    print(f"seeds: {len(seeds)} run, {len(seeds) - len(failed)} equal, {len(failed)} differ")
    for seed in failed:
        print(f"seed {seed} differs; reproduce: {_reproduce(recorded.path, given, seed, words)}")
    return EXIT_DIFFERS if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        given, path, rest = _split(argv)
        words = rest[1:] if rest and rest[0] == "--" else rest
        try:
            program = parse_program(rest)
            program.check()
        except ProgramError as exc:
            raise BadInput(f"simnet replay: {exc}") from None
        seeds_text = given.pop("seeds", None)
        options = Options.parse(given)
        recorded = _load(path, program)
        if seeds_text is not None:
            if "seed" in given or options.trace_out is not None or options.pcap is not None:
                raise BadInput("simnet replay: --seeds runs one seed after another: not with --seed, --trace or --pcap")
            return _sweep(program, recorded, options, parse_seeds(str(seeds_text)), given, words)
        return resimulate_program(program, recorded, options, seed=options.seed)
    except BadInput as exc:
        _flush_stdio()
        os.write(2, f"{str(exc).splitlines()[0] if str(exc) else exc}\n".encode())
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    status = main()
    _flush_and_exit(status)


__all__ = [
    "Listener",
    "Options",
    "ProgramClientExtractor",
    "ProgramClients",
    "ProgramResimReport",
    "extract_program_clients",
    "main",
    "parse_seeds",
    "resimulate_program",
]
