"""P6: memory per idle simulated connection, and the cost per simpy event at 10,000 vs 100 connections.

    python bench/p6_memory.py            # 10,000 idle connections; 10,000 vs 100 busy, 3 rounds
    python bench/p6_memory.py --quick    # a smoke run: 200 idle; 200 vs 20 busy, 1 round

Memory. N connections are opened from one simulated client host to the simulated server host
in batches (so that no SYN meets a full backlog), established, and left idle for 3 virtual
seconds (the handshake's retransmission timers have expired; the server's 10 s header timeout
has not). Measured with tracemalloc: the bytes still allocated once the connections exist,
minus the bytes before, divided by N. Two setups, each in a fresh process:
  full    the server is the real ServerMachine with the http app under the SimDriver: per
          connection, both kernel sockets (client and server side), the epoll registration,
          the machine's Connection record and the app's protocol object;
  kernel  the server is a bare listening socket that accepts: both kernel sockets only.
The server side alone is full minus half of kernel (the two kernel sockets of an idle pair are
alike). Also reported: the process's RSS growth per connection for the full setup, measured in a
run without tracemalloc (RSS moves in pages and arenas, so it is a cross-check only).
Goal: <= 4 KiB per idle connection, judged on `full` (both ends and the server machine).

Cost per event. The same per-connection workload -- an echo client that connects, then sends
64 bytes and reads them back 3 times with an exponential think time of 1 s -- with 10,000
clients at once (all arrive within 1 s, so they are all open together) and with 100. The
100-client run is repeated until it has seen about as many events as the large one. Wall time per
simpy event in each; goal: the large run costs at most 1.3x per event.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GOAL_BYTES = 4096
GOAL_SCALING = 1.3
SERVER_IP = "10.0.0.1"
PORT = 80
BATCH = 256


def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def idle_connections(n: int, setup: str, measure: str) -> dict[str, Any]:
    """Open n idle connections; the bytes they hold (tracemalloc) or the RSS they added."""
    import tracemalloc

    from simnet.drivers.simulated import SimDriver
    from simnet.kernel import Network
    from simnet.server.apps import make_app
    from simnet.server.config import ServerConfig
    from simnet.server.machine import ServerMachine

    net = Network(seed=1, latency=0.0005)
    server = net.host(SERVER_IP)
    client = net.host("10.0.1.1")
    machine = listener = None
    accepted: list[Any] = []
    if setup == "full":
        config = ServerConfig(host=SERVER_IP, port=PORT, max_connections=n + 16, backlog=1024)
        machine = ServerMachine(config, make_app("http"))
        server.process(SimDriver(server, machine).run())
    else:
        listener = server.socket()
        listener.bind((SERVER_IP, PORT))
        listener.listen(1024)
        listener.setblocking(False)
    net.run(until=0.01)
    # Warm every code path once (first calls build caches), then measure from a clean slate.
    warm = client.socket()
    warm.setblocking(False)
    warm.connect_ex((SERVER_IP, PORT))
    net.run(until=0.02)
    if listener is not None:
        accepted.append(listener.accept()[0])
    gc.collect()
    if measure == "tracemalloc":
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    else:
        base = _rss_bytes()
    socks = []
    t = 0.02
    for start in range(0, n, BATCH):
        for _ in range(min(BATCH, n - start)):
            s = client.socket()
            s.setblocking(False)
            s.connect_ex((SERVER_IP, PORT))
            socks.append(s)
        t += 0.005
        net.run(until=t)
        if listener is not None:
            while True:
                try:
                    accepted.append(listener.accept()[0])
                except BlockingIOError:
                    break
    net.run(until=3.0)  # idle: SYN/SYN-ACK retransmission timers due and gone, no header timeout yet
    gc.collect()
    if measure == "tracemalloc":
        used = tracemalloc.get_traced_memory()[0] - base
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        by_part: dict[str, int] = {}
        for stat in snapshot.statistics("filename"):
            name = stat.traceback[0].filename.replace("\\", "/")
            part = (
                "simnet/kernel" if "/simnet/kernel/" in name
                else "simnet/server" if "/simnet/server/" in name
                else "simnet/driver" if name.endswith("simnet/drivers/simulated.py")
                else "simpy" if "/simpy/" in name
                else "other"
            )
            by_part[part] = by_part.get(part, 0) + stat.size
    else:
        used = _rss_bytes() - base
        by_part = {}
    open_server = (machine.stats.accepted - machine.stats.closed) if machine is not None else len(accepted)
    return {
        "n": n,
        "setup": setup,
        "measure": measure,
        "bytes": used,
        "per_connection": used / n,
        "by_part_per_connection": {k: v / n for k, v in sorted(by_part.items())},
        "server_open": open_server,
    }


def busy_run(clients: int, requests: int) -> dict[str, Any]:
    """One simulated echo run: wall seconds and simpy events."""
    from simnet.sim.run import RunConfig, simulate
    from simnet.sim.workload import Workload

    config = RunConfig(
        seed=3,
        latency=0.005,
        max_connections=clients + 16,
        backlog=1024,
        workload=Workload(app="echo", clients=clients, requests=requests, request_size=64,
                          think_time=1.0, arrival_window=1.0),
    )
    gc.collect()
    start = time.perf_counter()
    summary = simulate(config)
    wall = time.perf_counter() - start
    if not summary.ok:
        raise RuntimeError(f"the {clients}-client run failed: {summary.problems()}")
    return {"wall_s": wall, "events": summary.events, "peak_open": summary.server.get("accepted", 0)}


def event_cost(clients: int, requests: int, min_events: int) -> dict[str, Any]:
    """Wall seconds per event over enough runs of `clients` to see `min_events` events."""
    wall = 0.0
    events = runs = 0
    while events < min_events or runs == 0:
        r = busy_run(clients, requests)
        wall += r["wall_s"]
        events += r["events"]
        runs += 1
    return {"clients": clients, "runs": runs, "events": events, "wall_s": wall, "ns_per_event": wall / events * 1e9}


def _worker(argv: list[str], timeout: float = 600) -> dict[str, Any]:
    return C.run_worker([C.PYTHON, str(Path(__file__).resolve()), *argv], cpu=C.SERVER_CPU, timeout=timeout)


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    n = 200 if quick else 10_000
    small, large = (20, 200) if quick else (100, 10_000)
    requests = 2 if quick else 3
    rounds = rounds or (1 if quick else 3)

    full = _worker(["--worker-idle", str(n), "--setup", "full", "--measure", "tracemalloc"])
    kernel = _worker(["--worker-idle", str(n), "--setup", "kernel", "--measure", "tracemalloc"])
    rss = _worker(["--worker-idle", str(n), "--setup", "full", "--measure", "rss"])
    if full["server_open"] != n + 1 or kernel["server_open"] != n + 1:  # + the warm-up connection
        raise RuntimeError(f"not every connection was established: {full['server_open']}, {kernel['server_open']} of {n}")
    per = full["per_connection"]
    server_side = per - kernel["per_connection"] / 2

    small_ns, large_ns, ratio_list = [], [], []
    large_events = 0
    for _ in range(rounds):
        big = _worker(["--worker-events", str(large), "--requests", str(requests), "--min-events", "0"])
        little = _worker(["--worker-events", str(small), "--requests", str(requests),
                          "--min-events", str(big["events"])])
        large_events = big["events"]
        large_ns.append(big["ns_per_event"])
        small_ns.append(little["ns_per_event"])
        ratio_list.append(big["ns_per_event"] / little["ns_per_event"])
    scaling = C.spread(ratio_list)
    parts = ", ".join(f"{k} {v:,.0f} B" for k, v in full["by_part_per_connection"].items())
    details = [
        f"P6 memory, {n:,} idle connections (tracemalloc, bytes per connection): full {per:,.0f} B "
        f"(by allocating code: {parts}); kernel sockets of both ends alone {kernel['per_connection']:,.0f} B; "
        f"server side alone (full minus one kernel socket) ~{server_side:,.0f} B; RSS growth, full setup, "
        f"no tracemalloc: {rss['per_connection']:,.0f} B.",
        f"P6 cost per event: echo clients, {requests} x 64-byte round trips each, think time 1 s, arrivals "
        f"within 1 s; {large:,} clients ({large_events:,} events) vs {small} clients repeated to as many "
        f"events; {rounds} rounds: {C.fmt_spread(C.spread(large_ns), 'ns/event')} vs "
        f"{C.fmt_spread(C.spread(small_ns), 'ns/event')}.",
    ]
    return {
        "idle": {"full": full, "kernel": kernel, "rss": rss, "server_side_per_connection": server_side},
        "details": details,
        "rows": [
            C.row(
                id="P6a",
                measure=f"memory per idle simulated connection ({n:,} connections; both kernel sockets "
                "+ server machine + http app)",
                figure=C.spread([per]),
                unit="B",
                peer="",
                goal=f"<= {GOAL_BYTES // 1024} KiB",
                met=per <= GOAL_BYTES,
                note=f"server side alone ~{server_side:,.0f} B; kernel pair alone {kernel['per_connection']:,.0f} B",
            ),
            C.row(
                id="P6b",
                measure=f"wall time per simpy event at {large:,} connections",
                figure=C.spread(large_ns),
                unit="ns/event",
                peer=f"the same per-connection workload at {small} connections",
                peer_figure=C.spread(small_ns),
                ratio=scaling,
                goal=f"<= {GOAL_SCALING}x",
                met=scaling["median"] <= GOAL_SCALING,
                note=f"{rounds} rounds",
            ),
        ],
    }


def report(figures: dict[str, Any]) -> list[str]:
    return [line for r in figures["rows"] for line in C.row_lines(r)] + figures["details"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds of the event-cost comparison (default 3; 1 with --quick)")
    parser.add_argument("--worker-idle", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--setup", choices=["full", "kernel"], default="full", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["tracemalloc", "rss"], default="tracemalloc", help=argparse.SUPPRESS)
    parser.add_argument("--worker-events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument("--min-events", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_idle:
        print(json.dumps(idle_connections(args.worker_idle, args.setup, args.measure)))
        return 0
    if args.worker_events:
        print(json.dumps(event_cost(args.worker_events, args.requests, args.min_events)))
        return 0
    for line in report(run(args.quick, args.rounds)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
