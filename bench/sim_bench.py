"""Time compression of a whole simulated run: simulated seconds per wall second.

    python bench/sim_bench.py            # 1,000 keep-alive HTTP clients, 100 simulated seconds, 3 runs
    python bench/sim_bench.py --quick    # a smoke run: 20 clients, 5 requests each, 1 run

The workload of the server issue's benchmark: 1,000 HTTP keep-alive clients on links of 10 ms
round trip (5 ms one way), each sending about one request per second (exponential think time
of 1 s, so Poisson arrivals per client) for 100 requests -- about 100 simulated seconds. The
peer is real time itself: a run that takes W wall seconds to simulate S seconds compresses time
S/W-fold; the goal is 25x (aiming at 50x). Also reported: simulated requests per wall second and
simpy events
per wall second. Each figure is the median of the runs, with min-max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simnet.sim.run import RunConfig, simulate  # noqa: E402
from simnet.sim.workload import Workload  # noqa: E402

GOAL = 25.0  # issue #17: at least 25x, aiming at 50x


def workload(quick: bool) -> RunConfig:
    clients, requests = (20, 5) if quick else (1000, 100)
    return RunConfig(
        seed=1,
        latency=0.005,
        workload=Workload(
            app="http", clients=clients, requests=requests, think_time=1.0, arrival_window=1.0, response_size=1024
        ),
    )


def run(quick: bool = False, repeat: int | None = None) -> dict[str, Any]:
    """Run the benchmark; the figures as a dict (for bench/run_all.py)."""
    repeat = repeat or (1 if quick else 3)
    config = workload(quick)
    compressions, rps, eps = [], [], []
    summary = None
    for _ in range(repeat):
        start = time.perf_counter()
        summary = simulate(config)
        wall = time.perf_counter() - start
        if not summary.ok:
            raise RuntimeError(f"the benchmark run failed: {summary.problems()}")
        compressions.append(summary.sim_time_ns / 1e9 / wall)
        rps.append(summary.clients["responses"] / wall)
        eps.append(summary.events / wall)
    assert summary is not None
    return {
        "clients": config.workload.clients,
        "requests": summary.clients["responses"],
        "simulated_s": summary.sim_time_ns / 1e9,
        "events": summary.events,
        "compression": _spread(compressions),
        "requests_per_wall_s": _spread(rps),
        "events_per_wall_s": _spread(eps),
        "goal": GOAL,
        "runs": repeat,
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def report(figures: dict[str, Any]) -> list[str]:
    c, r, e = figures["compression"], figures["requests_per_wall_s"], figures["events_per_wall_s"]
    verdict = "meets" if c["median"] >= figures["goal"] else "MISSES"
    return [
        f"{figures['clients']} keep-alive HTTP clients, 10 ms RTT, ~1 request/s each: "
        f"{figures['requests']:,} requests in {figures['simulated_s']:.1f} simulated s ({figures['events']:,} simpy events)",
        f"  time compression   {c['median']:.1f}x real time (min {c['min']:.1f}, max {c['max']:.1f}; "
        f"{verdict} the goal of {figures['goal']:.0f}x)",
        f"  requests / wall s  {r['median']:,.0f} (min {r['min']:,.0f}, max {r['max']:,.0f})",
        f"  events / wall s    {e['median']:,.0f} (min {e['min']:,.0f}, max {e['max']:,.0f})",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 clients, one run")
    parser.add_argument("--repeat", type=int, help="runs (default 3; 1 with --quick)")
    args = parser.parse_args()
    for line in report(run(args.quick, args.repeat)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
