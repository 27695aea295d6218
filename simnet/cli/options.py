"""Options shared by `simnet run` and `simnet sweep`: durations, sizes, fractions, the
scenario options, and the RunConfig they describe."""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from simnet import units

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


def add_scenario_options(p: argparse.ArgumentParser) -> None:
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

WORKLOAD_OPTIONS = (
    "app", "clients", "requests", "pipeline", "arrival_window", "think_time", "request_size", "response_size",
    "slow_readers", "read_rate", "early_closers", "resetters", "response_timeout",
)  # fmt: skip
RUN_OPTIONS = ("seed", "latency", "rcvbuf", "sndbuf", "backlog", "max_connections", "output_cap", "edge_triggered",
                "idle_timeout", "header_timeout", "keepalive_timeout", "machine")  # fmt: skip
APP_OPTIONS = ("max_header_bytes", "max_body_bytes")  # into RunConfig.app_options
FAULT_OPTIONS = ("faults", "loss", "duplicate", "reorder", "jitter", "short_io")  # into RunConfig.faults


def config_from_args(args: argparse.Namespace) -> Any:
    """The RunConfig the options describe: a --config file, else the defaults, with each option
    given on the command line laid over it. ValueError (one line) on a bad file or value."""
    import json

    from simnet.sim.run import RunConfig
    from simnet.sim.workload import Workload

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
    workload_changes = {k: getattr(args, k) for k in WORKLOAD_OPTIONS if getattr(args, k, None) is not None}
    if "read_rate" in workload_changes:
        workload_changes["read_rate"] = float(workload_changes["read_rate"])
    run_changes = {k: getattr(args, k) for k in RUN_OPTIONS if getattr(args, k, None) is not None}
    for name in ("idle_timeout", "header_timeout", "keepalive_timeout"):
        if run_changes.get(name) == "off":
            run_changes[name] = None
    app_changes = {k: getattr(args, k) for k in APP_OPTIONS if getattr(args, k, None) is not None}
    if app_changes:
        run_changes["app_options"] = {**base.app_options, **app_changes}
    faults = faults_from_args(args, base.faults)
    if faults is not base.faults:
        run_changes["faults"] = faults
    try:
        config = attrs.evolve(base, workload=attrs.evolve(base.workload, **workload_changes), **run_changes)
        config.server_config()  # validates the server's share of the options now
        from simnet.server.apps import make_app

        make_app(config.workload.app, **config.app_options)  # and the app's (--max-body-bytes with echo)
        if config.machine is not None:
            from simnet.sim.run import load_object

            load_object(config.machine)
        from simnet.sim.run import _resolve_faults

        _resolve_faults(config.faults)  # refuses a crash of the server's host
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return config


def faults_from_args(args: argparse.Namespace, base: Any) -> Any:
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
