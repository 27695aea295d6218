"""S: a sweep of small seeds, the way a user's test run spends its time: seeds/s on 2 processes.

    python bench/s_sweep.py            # 200 seeds, 3 rounds per side
    python bench/s_sweep.py --quick    # a smoke run: 10 seeds, 1 round

The scenario is issue #17's: 20 keep-alive HTTP clients x 10 requests, 2 % segment loss on
every link. It runs through `simnet.testing.sweep.sweep`, the function behind `simnet sweep`,
in this process (so the interpreter's start is not counted): with `jobs=2` (a fork pool, the
figure) and with `jobs=1` (the peer, alternating round by round), and the ratio is how well the
second process pays. The sweep is the plain one `simnet sweep` runs (no trace digest: that would
time the hashing too); both sides must still agree seed by seed on the verdict and on the number of
syscalls the server made, and every seed must pass: a sweep that is fast but different counts for
nothing. Goal: >= 300 seeds/s with jobs=2.

run_all pins itself to one core for the simulations; the sweep gets every core back while it
runs, or its second process would share the first one's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

from simnet.faults import FaultSchedule, LinkFaults  # noqa: E402
from simnet.sim.run import RunConfig  # noqa: E402
from simnet.sim.workload import Workload  # noqa: E402
from simnet.testing.sweep import SeedResult, sweep  # noqa: E402

GOAL = 300.0  # seeds/s with jobs=2
JOBS = 2
SCENARIO = RunConfig(
    workload=Workload(app="http", clients=20, requests=10),
    faults=FaultSchedule(links=(LinkFaults(loss=0.02),)),
)


@contextmanager
def every_core() -> Iterator[None]:
    """The whole machine for the duration (the fork pool inherits the affinity mask)."""
    if not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def timed(seeds: range, jobs: int) -> tuple[float, list[SeedResult]]:
    started = time.perf_counter()
    results = sweep(SCENARIO, seeds, jobs=jobs)
    return time.perf_counter() - started, results


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    seeds = range(10 if quick else 200)
    rounds = rounds or (1 if quick else 3)
    rates: dict[int, list[float]] = {JOBS: [], 1: []}
    reference: list[tuple[int, bool, int]] | None = None
    with every_core():
        for i in range(rounds):
            for jobs in ((JOBS, 1) if i % 2 == 0 else (1, JOBS)):
                seconds, results = timed(seeds, jobs)
                failed = [r.seed for r in results if not r.ok]
                if failed:
                    raise RuntimeError(f"seeds {failed[:5]} failed: the benchmark's scenario must pass")
                fingerprint = [(r.seed, r.ok, r.syscalls) for r in results]
                if reference is None:
                    reference = fingerprint
                elif fingerprint != reference:
                    raise RuntimeError(f"jobs={jobs} gave other results than the first sweep (round {i + 1})")
                rates[jobs].append(len(seeds) / seconds)
    figure, peer = C.spread(rates[JOBS]), C.spread(rates[1])
    how = f"{len(seeds)} seeds, {rounds} round(s) per side, alternating"
    return {
        "rows": [
            C.row(
                id="S",
                measure=f"small-seed sweep: {SCENARIO.workload.clients} HTTP clients x "
                f"{SCENARIO.workload.requests} requests, 2 % loss, seeds/s with jobs={JOBS}",
                figure=figure,
                unit="seeds/s",
                peer="the same sweep with jobs=1",
                peer_figure=peer,
                ratio=C.ratios(rates[JOBS], rates[1]),
                goal=f">= {GOAL:.0f} seeds/s",
                met=figure["median"] >= GOAL,
                note=f"{how}; simnet.testing.sweep.sweep in-process",
            )
        ],
        "details": [
            f"S (bench/s_sweep.py): {how}; every seed passed and both sides made the same syscalls per seed. "
            f"{1000 / peer['median']:.1f} ms per seed on one process.",
        ],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 3; 1 with --quick)")
    args = parser.parse_args()
    figures = run(args.quick, args.rounds)
    for line in [line for r in figures["rows"] for line in C.row_lines(r)] + figures["details"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
