"""Sweep throughput: `simnet sweep --dask` (a LocalCluster) against `--jobs N` (forked processes).

    python bench/sweep_dask.py            # two scenarios, 3 rounds, 1 and 2 workers each
    python bench/sweep_dask.py --quick    # a smoke run: few seeds, one round

Everything runs in this one process through `simnet.testing.sweep.sweep`, the function behind the
command, so the figures are the sweep's own and not the interpreter's start-up. Per scenario and
worker count: seeds/s with --jobs (a fork pool), and with Dask on a LocalCluster of that many
worker processes, the cluster's start (~1 s: spawned processes import simnet) left out and then
counted in. Rounds alternate the sides (a busy patch of a shared machine hits both); the figure
is the median. The JSON lines of each side (seed, ok, digest) are compared: a sweep that is
fast but different counts for nothing. Also measured: Dask's own cost per task here (empty
tasks), which sweep_dask.TARGET_BATCH_SECONDS is sized against. Goal: Dask >= 0.9x --jobs 2.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simnet.sim.run import RunConfig
from simnet.testing.sweep import SeedResult, SimScenario, sweep
from simnet.testing.sweep_dask import dask_client, run_on_dask
from simnet.sim.workload import Workload

GOAL = 0.9
# (name, scenario, seeds): a scenario of ~2 ms per seed, where Dask's per-task cost would show
# if batching did not hide it, and one of ~40 ms per seed.
SCENARIOS = (
    ("small: 3 HTTP clients x 3 requests (~2 ms/seed)",
     RunConfig(workload=Workload(app="http", clients=3, requests=3, pipeline=2, resetters=0.2), sndbuf=4096), 3000),
    ("medium: 30 HTTP clients x 5 requests (~40 ms/seed)",
     RunConfig(workload=Workload(app="http", clients=30, requests=5)), 300),
)  # fmt: skip


def digests(results: list[SeedResult]) -> list[tuple[int, bool, str | None]]:
    return [(r.seed, r.ok, r.digest) for r in results]


def timed_jobs(scenario: SimScenario, seeds: range, workers: int) -> tuple[float, list[SeedResult]]:
    started = time.perf_counter()
    results = sweep(scenario, seeds, jobs=workers)
    return time.perf_counter() - started, results


def timed_dask(scenario: SimScenario, seeds: range, workers: int) -> tuple[float, float, list[SeedResult]]:
    """(seconds of the sweep alone, seconds including the cluster's start and stop, results)."""
    started = time.perf_counter()
    with dask_client(None, workers) as client:
        client.submit(len, [], pure=False).result()  # the workers are up and have run a task
        swept = time.perf_counter()
        results = sweep(scenario, seeds, runner=functools.partial(run_on_dask, client))
        sweep_seconds = time.perf_counter() - swept
    return sweep_seconds, time.perf_counter() - started, results


def task_overhead_ms(tasks: int = 500) -> float:
    """Dask's round trip per task on a 2-worker LocalCluster: empty tasks, submitted together."""
    with dask_client(None, 2) as client:
        client.gather([client.submit(len, [], pure=False) for _ in range(20)])
        started = time.perf_counter()
        client.gather([client.submit(len, [i], pure=False) for i in range(tasks)])
        return (time.perf_counter() - started) / tasks * 1000


def measure(name: str, config: RunConfig, count: int, rounds: int, worker_counts: tuple[int, ...]) -> dict[str, Any]:
    scenario = SimScenario(config, digest=True)
    seeds = range(count)
    rows = []
    for workers in worker_counts:
        jobs_s: list[float] = []
        dask_s: list[float] = []
        dask_total_s: list[float] = []
        for _ in range(rounds):
            seconds, forked = timed_jobs(scenario, seeds, workers)
            jobs_s.append(seconds)
            seconds, total, on_dask = timed_dask(scenario, seeds, workers)
            dask_s.append(seconds)
            dask_total_s.append(total)
            if digests(forked) != digests(on_dask):
                raise SystemExit(f"{name}: --jobs {workers} and Dask disagree")
        rows.append({
            "workers": workers,
            "jobs": count / statistics.median(jobs_s),
            "dask": count / statistics.median(dask_s),
            "dask_with_start": count / statistics.median(dask_total_s),
        })  # fmt: skip
    return {"name": name, "seeds": count, "rows": rows}


def report(results: list[dict[str, Any]], overhead_ms: float) -> list[str]:
    lines = [f"Dask per-task cost (empty tasks, 2-worker LocalCluster): {overhead_ms:.2f} ms", ""]
    lines.append(
        "| scenario | seeds | workers | --jobs seeds/s | Dask seeds/s | ratio | Dask incl. cluster start | ratio |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for result in results:
        for row in result["rows"]:
            lines.append(
                f"| {result['name']} | {result['seeds']} | {row['workers']} | {row['jobs']:.0f} | {row['dask']:.0f} "
                f"| {row['dask'] / row['jobs']:.2f}x | {row['dask_with_start']:.0f} "
                f"| {row['dask_with_start'] / row['jobs']:.2f}x |"
            )
    return lines


def run(quick: bool = False, rounds: int | None = None) -> tuple[list[dict[str, Any]], float]:
    rounds = rounds or (1 if quick else 3)
    results = []
    for name, config, count in SCENARIOS:
        results.append(measure(name, config, count // 30 if quick else count, rounds, (1, 2)))
    return results, task_overhead_ms(50 if quick else 500)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    opts = parser.parse_args()
    results, overhead = run(opts.quick, opts.rounds)
    for line in report(results, overhead):
        print(line)
    two = [row for result in results for row in result["rows"] if row["workers"] == 2]
    worst = min(row["dask"] / row["jobs"] for row in two)
    print(f"\nworst Dask / --jobs 2: {worst:.2f}x (goal >= {GOAL}x): {'met' if worst >= GOAL else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
