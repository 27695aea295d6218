"""The `simnet` command: demo, run, replay, show.

    simnet demo                      the socket mechanics, step by step, on two simulated hosts
    simnet run --app http --clients 200 --requests 50 --seed 7 --latency 1ms --rcvbuf 4096
    simnet replay TRACE              exact replay (--sim: re-simulation)
    simnet show TRACE                a per-connection timeline

Exit status: 0 all well; 1 the run or replay found a failure; 2 bad input (one line on stderr,
never a traceback).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from typing import Any

from simnet.trace.commands import EXIT_BAD_INPUT, add_replay_parser, add_show_parser, cmd_replay, cmd_show

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_SIZES = {"": 1, "k": 1024, "m": 1024 * 1024}


def duration(text: str) -> float:
    """`1ms`, `250us`, `0.5s`, `2` (seconds) -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(s|ms|us|ns)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 1ms, 250us, 0.5s)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def size(text: str) -> int:
    """`4096`, `64k`, `1m` -> bytes."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([kKmM]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (try 4096, 64k, 1m)")
    return int(match.group(1)) * _SIZES[match.group(2).lower()]


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction is between 0 and 1, not {text}")
    return value


def _add_run_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="simulate a server and a seeded population of clients; print what happened",
        description="Run the server machine on a simulated host against seeded clients, then print a summary.",
    )
    p.add_argument("--app", choices=("http", "echo"), default="http")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--requests", type=int, default=20, help="requests per connection")
    p.add_argument("--pipeline", type=int, default=1, help="requests in flight per connection")
    p.add_argument("--arrival-window", type=duration, default=1.0, help="clients arrive (Poisson) within it")
    p.add_argument("--think-time", type=duration, default=0.0, help="mean pause between request batches")
    p.add_argument("--request-size", type=size, default=64, help="echo payload / POST body size")
    p.add_argument("--response-size", type=size, default=4096, help="mean /bytes/N size (http)")
    p.add_argument("--slow-readers", type=fraction, default=0.0, help="share of clients reading slowly")
    p.add_argument("--read-rate", type=size, default=16384, help="a slow reader's bytes per second")
    p.add_argument("--early-closers", type=fraction, default=0.0, help="share closing before their responses")
    p.add_argument("--resetters", type=fraction, default=0.0, help="share resetting (SO_LINGER 0) mid-response")
    p.add_argument("--latency", type=duration, default=0.001, help="one-way link latency (default 1ms)")
    p.add_argument("--rcvbuf", type=size, default=None, help="server SO_RCVBUF (default: autotuning)")
    p.add_argument("--sndbuf", type=size, default=None, help="server SO_SNDBUF (default: autotuning)")
    p.add_argument("--backlog", type=int, default=128)
    p.add_argument("--max-connections", type=int, default=1024)
    p.add_argument("--output-cap", type=size, default=256 * 1024, help="per-connection pending output cap")
    p.add_argument("--edge-triggered", action="store_true", help="EPOLLET instead of level-triggered")
    p.add_argument("--trace", metavar="OUT.jsonl", default=None, help="write the server's syscall trace")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here so `simnet show` and `simnet replay` start without the kernel.
    from simnet.run import RunConfig, simulate
    from simnet.workload import Workload

    try:
        workload = Workload(
            app=args.app,
            clients=args.clients,
            requests=args.requests,
            pipeline=args.pipeline,
            arrival_window=args.arrival_window,
            think_time=args.think_time,
            request_size=args.request_size,
            response_size=args.response_size,
            slow_readers=args.slow_readers,
            read_rate=float(args.read_rate),
            early_closers=args.early_closers,
            resetters=args.resetters,
        )
        config = RunConfig(
            seed=args.seed,
            workload=workload,
            latency=args.latency,
            rcvbuf=args.rcvbuf,
            sndbuf=args.sndbuf,
            backlog=args.backlog,
            max_connections=args.max_connections,
            output_cap=args.output_cap,
            edge_triggered=args.edge_triggered,
        )
        config.server_config()  # validates the server's share of the options now
    except (ValueError, TypeError) as exc:
        print(f"simnet run: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    try:
        summary = simulate(config, trace_path=args.trace)
    except OSError as exc:  # the trace file could not be written
        print(f"simnet run: {args.trace}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    wall = time.perf_counter() - started
    for line in summary.lines():
        print(line)
    sim = summary.sim_time_ns / 1e9
    print(f"wall time            {wall:.3f} s ({sim / wall:.1f}x real time)" if wall else "wall time 0")
    print(f"events per second    {summary.events / wall:,.0f}" if wall else "")
    if args.trace:
        print(f"trace                {args.trace} (simnet replay {shlex.quote(args.trace)})")
    reproduce = "simnet " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "simnet run"
    if summary.ok:
        print(f"result               ok (seed {summary.seed})")
        return 0
    print(f"result               FAILED: {'; '.join(summary.problems())}")
    print(f"reproduce            {reproduce}")
    return 1


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
    add_replay_parser(subparsers)
    add_show_parser(subparsers)
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
