"""`simnet sweep`: a scenario (or an asyncio program, --aio) over many seeds, on local processes
or a Dask cluster, with the failing seeds and their reproduce commands."""

from __future__ import annotations

import argparse
import functools
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
from simnet.cli.run import reproduce_command
from simnet.cli.trace import EXIT_BAD_INPUT


def add_parser(subparsers: Any) -> None:
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
    add_scenario_options(p)
    p.set_defaults(func=cmd_sweep, seed=None)


# simnet.aio.run's keywords that `simnet sweep --aio` takes from the scenario options.
AIO_OPTIONS = ("latency", *FAULT_OPTIONS)


def _aio_scenario(args: argparse.Namespace) -> Any:
    """The AioScenario of `--aio MODULE:FUNCTION` and the fault options; ValueError (one line)
    for an option that describes a `simnet run` scenario, an unloadable target or a bad option."""
    from simnet.sim.run import load_object
    from simnet.testing.sweep import AioScenario

    foreign = [name for name in ("config", *WORKLOAD_OPTIONS, *RUN_OPTIONS, *APP_OPTIONS)
               if name not in AIO_OPTIONS and getattr(args, name, None) is not None]  # fmt: skip
    if foreign:
        flag = "--" + foreign[0].replace("_", "-")
        raise ValueError(f"{flag} describes a simnet run scenario; with --aio only --latency and the fault "
                         "options apply")
    if not callable(load_object(args.aio)):
        raise ValueError(f"{args.aio!r} is not a function")
    options = {name: getattr(args, name) for name in AIO_OPTIONS if getattr(args, name, None) is not None}
    import simnet.aio as sa

    try:
        sa.new_event_loop(**options).close()  # a bad --faults file or --jitter: said now, once
    except (OSError, TypeError, ValueError) as exc:
        raise ValueError(str(exc).strip().splitlines()[0]) from None
    return AioScenario(args.aio, options, check_determinism=args.check_determinism)


def _aio_reproduce_command(args: argparse.Namespace, seed: int) -> str:
    words = ["simnet", "sweep", "--aio", args.aio, "--seeds", str(seed)]
    for name in AIO_OPTIONS:
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
