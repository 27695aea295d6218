"""`simnet run`: one simulated run of the server machine and its clients, with the summary and
the command that reproduces it."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from simnet.cli.options import (
    APP_OPTIONS,
    FAULT_OPTIONS,
    RUN_OPTIONS,
    WORKLOAD_OPTIONS,
    add_scenario_options,
    config_from_args,
)
from simnet.cli.trace import EXIT_BAD_INPUT


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="simulate a server and a seeded population of clients; print what happened",
        description="Run the server machine on a simulated host against seeded clients, then print a summary. "
        "Without options: 200 HTTP clients, 20 requests each, seed 7.",
    )
    p.add_argument("--seed", type=int)
    add_scenario_options(p)
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
    from simnet.sim.run import simulate

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
        from simnet.sim.plot import RunRecorder

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
    later = [name for name in (*RUN_OPTIONS, *APP_OPTIONS, *FAULT_OPTIONS) if name != "seed"]
    for name in ("seed", *WORKLOAD_OPTIONS, *later):  # the seed first, where a reader looks for it
        value = seed if name == "seed" and seed is not None else getattr(args, name, None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        words += [flag] if value is True else [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)
