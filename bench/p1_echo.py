"""P1: simulated 64-byte echo round trips per wall second against the same workload live.

    python bench/p1_echo.py            # 50 connections x 1,000 round trips, 5 rounds
    python bench/p1_echo.py --quick    # a smoke run: 50 connections x 4 round trips, 1 round

Simulated: `simulate()` with an echo Workload -- 50 clients on one simulated host, each sending
64 bytes and reading exactly 64 back, 1,000 times, over a zero-latency link, against the real
ServerMachine on the simulated kernel; one process, one core, timed from building the network
to the server's exit.

Live: `realnet serve --app echo` on 127.0.0.1 (one core) and a Python load generator on the other
core (bench/_common.py echo_load: 50 non-blocking sockets and one select.epoll loop doing the
same round trips; connecting is not timed).

Each round runs both, each in a fresh pinned process; the ratio is taken per round. Goal: the
simulation does at least 0.33x the live round trips per wall second (aim: 1x).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GOAL = 0.33
CONNS = 50
SIZE = 64


def sim_once(count: int, conns: int = CONNS) -> dict[str, Any]:
    """One simulated run, in this process: round trips per wall second."""
    from simnet.sim.run import RunConfig, simulate
    from simnet.sim.workload import Workload

    config = RunConfig(
        seed=1,
        latency=0.0,
        workload=Workload(
            app="echo", clients=conns, requests=count, request_size=SIZE, arrival_window=0.0, think_time=0.0
        ),
    )
    start = time.perf_counter()
    cpu_start = time.process_time()
    summary = simulate(config)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    if not summary.ok:
        raise RuntimeError(f"the simulated echo run failed: {summary.problems()}")
    rts = summary.clients["responses"]
    return {"round_trips": rts, "wall_s": wall, "rate": rts / wall, "events": summary.events, "cpu_s": cpu}


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    count = 4 if quick else 1000
    rounds = rounds or (1 if quick else 5)
    limit = 30.0
    sim_rates, live_rates, events = [], [], 0
    # CPU microseconds per round trip: the simulation's process; the live server and client
    sim_cpu, live_server_cpu, live_client_cpu = [], [], []
    for _ in range(rounds):
        sim = C.run_worker(
            [C.PYTHON, str(Path(__file__).resolve()), "--worker-sim", "--count", str(count)],
            cpu=C.SERVER_CPU,
            timeout=120,
        )
        sim_rates.append(sim["rate"])
        sim_cpu.append(sim["cpu_s"] / sim["round_trips"] * 1e6)
        events = sim["events"]
        with C.server(C.realnet_argv("echo")) as srv:
            before = srv.cpu_seconds()
            live = C.run_worker(
                [C.PYTHON, str(C.BENCH / "_common.py"), "echo-load", "--port", str(srv.port), "--conns", str(CONNS),
                 "--count", str(count), "--seconds", str(limit)],
                cpu=C.CLIENT_CPU,
                timeout=limit + 60,
            )
            server_cpu = srv.cpu_seconds() - before  # includes accepting the 50 connections
        live_server_cpu.append(server_cpu / max(live["round_trips"], 1) * 1e6)
        live_client_cpu.append(live["cpu_s"] / max(live["round_trips"], 1) * 1e6)
        if live["errors"]:
            raise RuntimeError(f"live echo: {live['errors']} connections ended early")
        live_rates.append(live["rate"])
    ratio = C.ratios(sim_rates, live_rates)
    # The same ratio from CPU time, which a core lent to another worker does not disturb: with 50
    # round trips in flight the live server and client run in parallel, so the live rate is bounded
    # by the busier of the two; the simulation's by its one process.
    by_cpu = C.ratios([max(a, b) for a, b in zip(live_server_cpu, live_client_cpu)], sim_cpu)
    details = [
        f"P1: {rounds} rounds, {CONNS} x {count} round trips per side; {events:,} simpy events per simulated run. "
        f"CPU per round trip: simulated {C.fmt_spread(C.spread(sim_cpu), 'us')} (one process); live "
        f"server {C.fmt_spread(C.spread(live_server_cpu), 'us')}, client "
        f"{C.fmt_spread(C.spread(live_client_cpu), 'us')} (two processes on two cores; the kernel's loopback "
        f"work is partly outside both). Ratio by CPU, max(server, client) / simulated: "
        f"{C.fmt_spread(by_cpu, ratio=True)}.",
    ]
    return {
        "details": details,
        "rounds": rounds,
        "ratio_by_cpu": by_cpu,
        "round_trips": CONNS * count,
        "sim_events": events,
        "rows": [
            C.row(
                id="P1",
                measure=f"simulated {SIZE}-byte echo round trips per wall second, {CONNS} connections",
                figure=C.spread(sim_rates),
                unit="round trips/s",
                peer=f"the same workload live: realnet echo on loopback + a Python epoll load generator",
                peer_figure=C.spread(live_rates),
                ratio=ratio,
                goal=f">= {GOAL}x live (aim 1x)",
                met=ratio["median"] >= GOAL,
                note=f"{CONNS} x {count} round trips per side per round, {rounds} rounds; "
                f"by CPU {C.fmt_ratio(by_cpu['median'])}",
            )
        ],
    }


def report(figures: dict[str, Any]) -> list[str]:
    return [line for r in figures["rows"] for line in C.row_lines(r)] + figures["details"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds (default 5; 1 with --quick)")
    parser.add_argument("--worker-sim", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=1000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_sim:
        print(json.dumps(sim_once(args.count)))
        return 0
    for line in report(run(args.quick, args.rounds)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
