"""`simnet replay` and `simnet show`: argparse wiring and exit codes, for simnet/cli.py.

    parser = argparse.ArgumentParser(prog="simnet")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_replay_parser(subparsers)
    add_show_parser(subparsers)
    args = parser.parse_args()
    sys.exit(args.func(args))

Exit status: 0 all well, 1 the replay diverged, 2 bad input. Bad input -- a malformed trace, a
missing file, a factory that cannot be imported -- is one line on stderr (`path:line: problem`)
and never a traceback: the user's mistake is not our crash.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from simnet.trace.codec import TraceError

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a trace exactly through a fresh server machine",
        description=(
            "Build the server machine the trace's header describes, hand it the recorded results "
            "and check that it asks for exactly the recorded syscalls. Exit status 0: all matched; "
            "1: the first divergence is printed; 2: the trace is malformed."
        ),
    )
    parser.add_argument("trace", help="the trace file (JSON Lines, see docs/trace-format.md)")
    parser.add_argument(
        "--machine",
        metavar="MODULE:FACTORY",
        help="build the machine with FACTORY(header) from MODULE instead of from the header's app and configs",
    )
    parser.add_argument(
        "--context", type=int, default=5, metavar="N", help="records to show before a divergence (default 5)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the traceback when the machine raised"
    )
    parser.set_defaults(func=cmd_replay)
    return parser


def add_show_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "show",
        help="print a trace as a timeline per connection, with a summary",
        description=(
            "Print each connection's accept, reads (sizes, EAGAIN), writes (partial counts), "
            "waits for EPOLLOUT, EOF or RST and close, then counts per syscall and per errno."
        ),
    )
    parser.add_argument("trace", help="the trace file (JSON Lines, see docs/trace-format.md)")
    parser.add_argument(
        "--conn", type=int, metavar="N", help="show only connection #N (numbered in order of accept)"
    )
    parser.add_argument("--summary", action="store_true", help="print only the summary")
    parser.add_argument(
        "--preview", type=int, default=40, metavar="CHARS", help="payload characters to show (default 40)"
    )
    parser.set_defaults(func=cmd_show)
    return parser


def _bad_input(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_BAD_INPUT


def _load_factory(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--machine {spec!r}: expected MODULE:FACTORY, e.g. mytests.machines:make_machine")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--machine {spec!r}: cannot import {module_name}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--machine {spec!r}: {module_name} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


def cmd_replay(args: argparse.Namespace) -> int:
    from simnet.replay import replay_exact  # not at import time: simnet.replay imports simnet.trace

    try:
        factory = _load_factory(args.machine) if args.machine else None
    except ValueError as exc:
        return _bad_input(f"simnet replay: {exc}")
    try:
        report = replay_exact(args.trace, factory, context=max(0, args.context))
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        return _bad_input(f"{args.trace}: cannot read: {exc.strerror or exc}")
    except ImportError as exc:
        # Only the default factory imports anything: the server machine is not installed.
        return _bad_input(
            f"simnet replay: cannot build the server machine ({exc}); pass --machine MODULE:FACTORY"
        )
    print(report.format())
    if report.divergence is not None:
        if args.verbose and report.divergence.traceback:
            print(report.divergence.traceback, end="")
        return EXIT_DIVERGED
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from simnet.trace.show import render_trace

    try:
        text = render_trace(
            args.trace, conn=args.conn, summary_only=args.summary, preview=max(1, args.preview)
        )
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        return _bad_input(f"{args.trace}: cannot read: {exc.strerror or exc}")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `simnet show trace | head`: the reader left, which is fine. Point stdout at /dev/null
        # so the interpreter's own flush at exit does not complain about the pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """`python -m simnet.trace replay|show ...`, until simnet/cli.py offers the same commands."""
    parser = argparse.ArgumentParser(
        prog="python -m simnet.trace", description="Replay or show a simnet trace."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_replay_parser(subparsers)
    add_show_parser(subparsers)
    args = parser.parse_args(argv)
    return int(args.func(args))
