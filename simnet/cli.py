"""The `simnet` command: demo, run, replay, show.

    simnet demo                      the socket mechanics, step by step, on two simulated hosts
    simnet run --app http --clients 200 --requests 50 --seed 7 --latency 1ms --rcvbuf 4096
    simnet sweep --seeds 0-999 --jobs 2 --check-determinism
    simnet sweep --seeds 0-9999 --dask tcp://HOST:8786 --json seeds.jsonl
    simnet replay TRACE              exact replay (--sim: re-simulation)
    simnet show TRACE                a per-connection timeline

Exit status: 0 all well; 1 the run or replay found a failure; 2 bad input (one line on stderr,
never a traceback).
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
import time
from typing import Any

import attrs

from simnet import units
from simnet.trace.commands import (
    EXIT_BAD_INPUT,
    add_record_parser,
    add_replay_parser,
    add_show_parser,
)

# Durations and sizes are read by simnet/units.py, as realnet serve reads them. A size is positive
# (a buffer, a cap, a limit, a rate of 0 bytes means nothing), except a payload's, which may be empty.


def duration(text: str) -> float:
    """`1ms`, `250us`, `0.5s`, `2` (seconds) -> seconds."""
    try:
        return units.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def size(text: str) -> int:
    """`4096`, `64k`, `64KiB`, `1m` -> a positive number of bytes (binary multiples)."""
    try:
        return units.parse_size(text, positive=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def payload_size(text: str) -> int:
    """As `size`, but 0 is allowed: an empty echo payload, /bytes/0."""
    try:
        return units.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def timeout(text: str) -> float | str:
    """A duration as for `duration`, or "off" (kept as the word, so a reproduce line can repeat it)."""
    if units.is_off(text):
        return "off"
    value = duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a timeout is positive or 'off', not {text!r}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction is between 0 and 1, not {text}")
    return value


def _add_scenario_options(p: argparse.ArgumentParser) -> None:
    """The options that describe a simulated run: shared by `run` and `sweep`."""
    p.add_argument("--config", metavar="RUN.json", help="a run configuration file (a failure file, say); "
                   "options given as well override it")
    p.add_argument("--app", choices=("http", "echo"))
    p.add_argument("--clients", type=int)
    p.add_argument("--requests", type=int, help="requests per connection")
    p.add_argument("--pipeline", type=int, help="requests in flight per connection")
    p.add_argument("--arrival-window", type=duration, help="clients arrive (Poisson) within it")
    p.add_argument("--think-time", type=duration, help="mean pause between request batches")
    p.add_argument("--request-size", type=payload_size, help="echo payload / POST body size")
    p.add_argument("--response-size", type=payload_size, help="mean /bytes/N size (http)")
    p.add_argument("--slow-readers", type=fraction, help="share of clients reading slowly")
    p.add_argument("--read-rate", type=size, help="a slow reader's bytes per second")
    p.add_argument("--early-closers", type=fraction, help="share closing before their responses")
    p.add_argument("--resetters", type=fraction, help="share resetting (SO_LINGER 0) mid-response")
    p.add_argument("--response-timeout", type=duration, metavar="DURATION",
                   help="a client blocked this long gives up and names TIMEOUT (default: never; "
                   "set one under faults that can kill a connection silently)")
    p.add_argument("--latency", type=duration, help="one-way link latency (default 1ms)")
    p.add_argument("--rcvbuf", type=size, help="server SO_RCVBUF (default: autotuning)")
    p.add_argument("--sndbuf", type=size, help="server SO_SNDBUF (default: autotuning)")
    p.add_argument("--backlog", type=int)
    p.add_argument("--max-connections", type=int)
    p.add_argument("--output-cap", type=size, help="per-connection pending output cap")
    p.add_argument("--edge-triggered", action="store_const", const=True, help="EPOLLET instead of level-triggered")
    p.add_argument("--idle-timeout", type=timeout, help="close after no byte in or out (default 60s; 'off')")
    p.add_argument("--header-timeout", type=timeout, help="request head due within (default 10s; 'off')")
    p.add_argument("--keepalive-timeout", type=timeout, help="between requests (default 5s; 'off')")
    p.add_argument("--max-header-bytes", type=size, help="http: request head limit, else 431 (default 8k)")
    p.add_argument("--max-body-bytes", type=size, help="http: request body limit, else 413 (default 1m)")
    p.add_argument("--machine", metavar="MODULE:FACTORY", help="run a machine variant instead of ServerMachine")
    # Faults (docs/faults.md): a schedule file, and shorthands for the commonest ones, which
    # apply to every client's link (merged into the file's catch-all [[links]] entry, if any).
    p.add_argument("--faults", metavar="SCHEDULE.toml", help="a fault schedule (TOML or JSON; docs/faults.md)")
    p.add_argument("--loss", type=fraction, help="per-segment loss probability on every link")
    p.add_argument("--duplicate", type=fraction, help="per-segment duplication probability")
    p.add_argument("--reorder", type=fraction, help="per-segment probability of being held back 5 ms")
    p.add_argument("--jitter", metavar="DIST:PARAMS", help="extra delay per segment, e.g. uniform:0:2ms, "
                   "exponential:1ms, normal:1ms:0.5ms, constant:3ms")
    p.add_argument("--short-io", type=fraction, metavar="RATE",
                   help="server: short recv, short send and spurious epoll wake-ups, each at this rate (< 1)")


# `simnet run` with no options: the example, 200 HTTP clients.
RUN_SEED = 7
RUN_WORKLOAD_DEFAULTS: dict[str, Any] = {"clients": 200, "requests": 20}

_WORKLOAD_OPTIONS = (
    "app", "clients", "requests", "pipeline", "arrival_window", "think_time", "request_size", "response_size",
    "slow_readers", "read_rate", "early_closers", "resetters", "response_timeout",
)  # fmt: skip
_RUN_OPTIONS = ("seed", "latency", "rcvbuf", "sndbuf", "backlog", "max_connections", "output_cap", "edge_triggered",
                "idle_timeout", "header_timeout", "keepalive_timeout", "machine")  # fmt: skip
_APP_OPTIONS = ("max_header_bytes", "max_body_bytes")  # into RunConfig.app_options
_FAULT_OPTIONS = ("faults", "loss", "duplicate", "reorder", "jitter", "short_io")  # into RunConfig.faults


def config_from_args(args: argparse.Namespace) -> Any:
    """The RunConfig the options describe: a --config file, else the defaults, with each option
    given on the command line laid over it. ValueError (one line) on a bad file or value."""
    import json

    from simnet.run import RunConfig
    from simnet.workload import Workload

    if args.config:
        try:
            with open(args.config, encoding="utf-8") as file:
                base = RunConfig.from_json(json.load(file))
        except OSError as exc:
            raise ValueError(f"{args.config}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.config}:{exc.lineno}: bad JSON: {exc.msg}") from None
        except ValueError as exc:
            raise ValueError(f"{args.config}: {exc}") from None
    else:
        base = RunConfig(seed=RUN_SEED, workload=Workload(**RUN_WORKLOAD_DEFAULTS))
    workload_changes = {k: getattr(args, k) for k in _WORKLOAD_OPTIONS if getattr(args, k, None) is not None}
    if "read_rate" in workload_changes:
        workload_changes["read_rate"] = float(workload_changes["read_rate"])
    run_changes = {k: getattr(args, k) for k in _RUN_OPTIONS if getattr(args, k, None) is not None}
    for name in ("idle_timeout", "header_timeout", "keepalive_timeout"):
        if run_changes.get(name) == "off":
            run_changes[name] = None
    app_changes = {k: getattr(args, k) for k in _APP_OPTIONS if getattr(args, k, None) is not None}
    if app_changes:
        run_changes["app_options"] = {**base.app_options, **app_changes}
    faults = _faults_from_args(args, base.faults)
    if faults is not base.faults:
        run_changes["faults"] = faults
    try:
        config = attrs.evolve(base, workload=attrs.evolve(base.workload, **workload_changes), **run_changes)
        config.server_config()  # validates the server's share of the options now
        from simnet.server.apps import make_app

        make_app(config.workload.app, **config.app_options)  # and the app's (--max-body-bytes with echo)
        if config.machine is not None:
            from simnet.run import load_object

            load_object(config.machine)
        from simnet.run import _resolve_faults

        _resolve_faults(config.faults)  # refuses a crash of the server's host
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return config


def _faults_from_args(args: argparse.Namespace, base: Any) -> Any:
    """The run's FaultSchedule: --faults FILE (else the --config file's), with the shorthand
    options laid over it. `base` itself when no fault option was given."""
    from simnet.faults import FaultSchedule, LinkFaults, ShortIO, load_schedule, parse_jitter

    schedule = base
    if getattr(args, "faults", None):
        schedule = load_schedule(args.faults)
    link: dict[str, Any] = {}
    for name in ("loss", "duplicate", "reorder"):
        if getattr(args, name, None) is not None:
            link[name] = getattr(args, name)
    if getattr(args, "jitter", None) is not None:
        link["jitter"] = parse_jitter(args.jitter, "--jitter")
    short_io = getattr(args, "short_io", None)
    if short_io is not None and short_io >= 1:
        raise ValueError(f"--short-io: a rate below 1 (a call must be able to succeed), not {short_io}")
    if not link and short_io is None:
        return schedule
    schedule = schedule or FaultSchedule()
    if link:
        links = list(schedule.links)
        for i, entry in enumerate(links):
            if entry.src is None and entry.dst is None:
                links[i] = attrs.evolve(entry, **link)
                break
        else:
            links.insert(0, LinkFaults(**link))
        schedule = attrs.evolve(schedule, links=tuple(links))
    if short_io is not None:
        rest = tuple(item for item in schedule.short_io if item.host is not None)
        server = ShortIO(recv=short_io, send=short_io, spurious_wakeup=short_io)
        schedule = attrs.evolve(schedule, short_io=(server, *rest))
    return schedule


def _add_run_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="simulate a server and a seeded population of clients; print what happened",
        description="Run the server machine on a simulated host against seeded clients, then print a summary. "
        "Without options: 200 HTTP clients, 20 requests each, seed 7.",
    )
    p.add_argument("--seed", type=int)
    _add_scenario_options(p)
    p.add_argument("--trace", metavar="OUT.jsonl", default=None, help="write the server's syscall trace")
    p.add_argument("--pcap", metavar="OUT.pcap", default=None,
                   help="write every segment on the simulated wire as pcap, for Wireshark (docs/pcap.md)")
    p.add_argument("--plot", metavar="DIR", default=None,
                   help="write PNGs to DIR: a sequence diagram per chosen connection and the socket queues over time")
    p.add_argument("--plot-conn", metavar="N", type=int, action="append", default=None,
                   help="the connection to draw (1 = the first connection made; repeatable; default: the first 3)")
    p.set_defaults(func=cmd_run)


def _check_outputs(args: argparse.Namespace) -> str | None:
    """Open --pcap and make --plot's directory before the run starts, so that a bad path costs
    nothing: the error as one line (`--pcap /x/y.pcap: No such file or directory`), else None.
    The opened pcap file is left in args.pcap_file."""
    import os

    args.pcap_file = None
    if getattr(args, "pcap", None):
        try:
            args.pcap_file = open(args.pcap, "wb", buffering=1 << 20)  # noqa: SIM115 (closed after the run)
        except OSError as exc:
            return f"--pcap {args.pcap}: {exc.strerror or exc}"
    if getattr(args, "plot", None):
        try:
            os.makedirs(args.plot, exist_ok=True)
            if not os.access(args.plot, os.W_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            if args.pcap_file is not None:
                args.pcap_file.close()
            return f"--plot {args.plot}: {exc.strerror or exc}"
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return "--plot needs matplotlib: pip install 'simnet[plot]'"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here so `simnet show` and `simnet replay` start without the kernel.
    from simnet.run import simulate

    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"simnet run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _check_outputs(args)
    if problem is not None:
        print(f"simnet run: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    recorder = None
    if args.plot:
        from simnet.plot import RunRecorder

        recorder = RunRecorder()
    started = time.perf_counter()
    try:
        summary = simulate(
            config, trace=args.trace, pcap=args.pcap_file, observe=None if recorder is None else recorder.attach
        )
    except OSError as exc:  # the trace file could not be written
        print(f"simnet run: {args.trace}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if args.pcap_file is not None:
            args.pcap_file.close()
    wall = time.perf_counter() - started
    for line in summary.lines():
        print(line)
    sim = summary.sim_time_ns / 1e9
    print(f"wall time            {wall:.3f} s ({sim / wall:.1f}x real time)" if wall else "wall time 0")
    print(f"events per second    {summary.events / wall:,.0f}" if wall else "")
    if args.trace:
        print(f"trace                {args.trace} (simnet replay {shlex.quote(args.trace)})")
    if args.pcap:
        print(f"pcap                 {args.pcap} (wireshark {shlex.quote(args.pcap)})")
    if recorder is not None:
        written = recorder.write_pngs(args.plot, conns=args.plot_conn)
        print(f"plots                {', '.join(written)}")
    if summary.ok:
        print(f"result               ok (seed {summary.seed})")
        return 0
    print(f"result               FAILED: {'; '.join(summary.problems())}")
    print(f"reproduce            {reproduce_command(args)}")
    return 1


def reproduce_command(args: argparse.Namespace, seed: int | None = None) -> str:
    """`simnet run ...` with the options that were given (and `seed` in place of --seed)."""
    words = ["simnet", "run"]
    if args.config:
        words += ["--config", args.config]
    later = [name for name in (*_RUN_OPTIONS, *_APP_OPTIONS, *_FAULT_OPTIONS) if name != "seed"]
    for name in ("seed", *_WORKLOAD_OPTIONS, *later):  # the seed first, where a reader looks for it
        value = seed if name == "seed" and seed is not None else getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _add_sweep_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a scenario over many seeds across processes or a Dask cluster; summarise failures",
        description="Run the scenario the options describe (or, with --aio, an asyncio program) once per seed, "
        "across --jobs processes or a Dask cluster, with a progress bar on a terminal; print each failing seed "
        "with the command that reproduces it.",
    )
    p.add_argument("--seeds", required=True, help="e.g. 0-9999, or 1,5,9-12")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default 1; with --dask and no address: the LocalCluster's workers, "
                   "default one per core)")
    p.add_argument("--dask", nargs="?", const="local", default=None, metavar="tcp://HOST:8786",
                   help="run the seeds on Dask: a LocalCluster on this machine, or the scheduler at the address "
                   "(docs/sweeps.md)")
    p.add_argument("--aio", metavar="MODULE:FUNCTION",
                   help="sweep an asyncio program under simnet.aio: an async function taking no arguments "
                   "(or seed=); the fault options and --latency apply to its network")
    p.add_argument("--json", metavar="OUT.jsonl", default=None,
                   help="write one JSON line per seed (seed, ok, digest: the sha256 of its trace), in seed order")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--check-determinism", action="store_true",
                   help="run every seed twice and compare the traces byte for byte")
    _add_scenario_options(p)
    p.set_defaults(func=cmd_sweep, seed=None)


# simnet.aio.run's keywords that `simnet sweep --aio` takes from the scenario options.
_AIO_OPTIONS = ("latency", *_FAULT_OPTIONS)


def _aio_scenario(args: argparse.Namespace) -> Any:
    """The AioScenario of `--aio MODULE:FUNCTION` and the fault options; ValueError (one line)
    for an option that describes a `simnet run` scenario, an unloadable target or a bad option."""
    from simnet.run import load_object
    from simnet.testing.sweep import AioScenario

    foreign = [name for name in ("config", *_WORKLOAD_OPTIONS, *_RUN_OPTIONS, *_APP_OPTIONS)
               if name not in _AIO_OPTIONS and getattr(args, name, None) is not None]  # fmt: skip
    if foreign:
        flag = "--" + foreign[0].replace("_", "-")
        raise ValueError(f"{flag} describes a simnet run scenario; with --aio only --latency and the fault "
                         "options apply")
    if not callable(load_object(args.aio)):
        raise ValueError(f"{args.aio!r} is not a function")
    options = {name: getattr(args, name) for name in _AIO_OPTIONS if getattr(args, name, None) is not None}
    import simnet.aio as sa

    try:
        sa.new_event_loop(**options).close()  # a bad --faults file or --jitter: said now, once
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None
    return AioScenario(args.aio, options, check_determinism=args.check_determinism)


def _aio_reproduce_command(args: argparse.Namespace, seed: int) -> str:
    words = ["simnet", "sweep", "--aio", args.aio, "--seeds", str(seed)]
    for name in _AIO_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            words += ["--" + name.replace("_", "-"), str(value)]
    return " ".join(shlex.quote(w) for w in words)


def _write_sweep_json(file: Any, results: Any, reproduce: Any, *, with_syscalls: bool) -> None:
    """One line per seed, in seed order, nothing that depends on where it ran or how long it took:
    the files of two sweeps of the same seeds (--jobs, --dask) compare equal with `cmp`."""
    import json

    for result in sorted(results, key=lambda r: r.seed):
        line: dict[str, Any] = {"seed": result.seed, "ok": result.ok, "digest": result.digest,
                                "problems": list(result.problems)}  # fmt: skip
        if result.deterministic is not None:
            line["deterministic"] = result.deterministic
        if with_syscalls:
            line["syscalls"] = result.syscalls
        if not result.ok:
            line["reproduce"] = reproduce(result.seed)
        file.write(json.dumps(line) + "\n")


def cmd_sweep(args: argparse.Namespace) -> int:
    from simnet.testing.sweep import ProgressBar, SimScenario, parse_seeds, sweep

    def bad(message: str) -> int:
        print(f"simnet sweep: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        seeds = parse_seeds(args.seeds)
        if args.jobs is not None and args.jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
        if args.aio:
            scenario = _aio_scenario(args)
        else:
            scenario = SimScenario(config_from_args(args), args.check_determinism, digest=args.json is not None)
    except ValueError as exc:
        return bad(str(exc))
    json_file = None
    if args.json:
        try:
            json_file = open(args.json, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
        except OSError as exc:
            return bad(f"--json {args.json}: {exc.strerror or exc}")
    def reproduce(seed: int) -> str:
        return _aio_reproduce_command(args, seed) if args.aio else reproduce_command(args, seed=seed)

    progress = ProgressBar(quiet=args.quiet)
    started = time.perf_counter()
    try:
        if args.dask is None:
            jobs = args.jobs or 1
            results = sweep(scenario, seeds, jobs=jobs, progress=progress)
            where = f"{jobs} jobs"
        else:
            from simnet.testing.sweep_dask import (
                DaskUnavailable,
                cluster_workers,
                dask_client,
                local_workers,
                run_on_dask,
            )

            address = None if args.dask == "local" else args.dask
            try:
                with dask_client(address, local_workers(args.jobs)) as client:
                    workers = cluster_workers(client)
                    results = sweep(scenario, seeds, progress=progress, runner=functools.partial(run_on_dask, client))
            except DaskUnavailable as exc:
                return bad(str(exc))
            where = f"Dask {'LocalCluster' if address is None else address}, {workers} worker{'s' * (workers != 1)}"
        if json_file is not None:
            _write_sweep_json(json_file, results, reproduce, with_syscalls=not args.aio)
    finally:
        progress.close()
        if json_file is not None:
            json_file.close()
    wall = time.perf_counter() - started
    failing = [r for r in results if not r.ok]
    checked = ", each run twice and compared byte for byte" if args.check_determinism else ""
    print(f"{len(results)} seeds in {wall:.1f} s ({where}{checked}): "
          f"{len(results) - len(failing)} ok, {len(failing)} failing")
    for result in failing[:50]:
        why = list(result.problems)
        if result.deterministic is False:
            why.insert(0, "NOT DETERMINISTIC: two runs gave different traces")
        print(f"  seed {result.seed}: {'; '.join(why)}")
        print(f"    reproduce: {reproduce(result.seed)}")
    if len(failing) > 50:
        print(f"  ... and {len(failing) - 50} more")
    return 1 if failing else 0


def _add_demo_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="watch a handshake, a partial write, EAGAIN, EPOLLOUT and FIN")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from simnet.demo import run_demo

    run_demo(seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simnet",
        description="Deterministic simulation of Linux TCP sockets and epoll for testing event-loop servers.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo_parser(subparsers)
    _add_run_parser(subparsers)
    _add_sweep_parser(subparsers)
    add_replay_parser(subparsers)
    add_show_parser(subparsers)
    add_record_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `simnet show big.jsonl | head`: the reader left; not our failure
        return 0
    except KeyboardInterrupt:
        print("simnet: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
