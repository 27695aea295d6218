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
import sys

from simnet.cli import demo, run, sweep, trace
from simnet.cli.options import duration, size

__all__ = ["build_parser", "duration", "main", "size"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simnet",
        description="Deterministic simulation of Linux TCP sockets and epoll for testing event-loop servers.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo.add_parser(subparsers)
    run.add_parser(subparsers)
    sweep.add_parser(subparsers)
    trace.add_replay_parser(subparsers)
    trace.add_show_parser(subparsers)
    trace.add_record_parser(subparsers)
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
