"""The simulated kernel's own speed, measured against bare simpy.

    python bench/kernel_bench.py                 # 20 MB bulk, 10,000-connection storm, 5 rounds
    python bench/kernel_bench.py --quick         # a smoke run: tiny sizes, 1 round
    python bench/kernel_bench.py --json OUT      # also write the figures as JSON

Two workloads run in simnet, each on two hosts joined by a link with latency, so that every
segment is a simpy event (on a zero-latency path the model delivers inside the syscall, as
Linux does on loopback, and there would be almost no events to count):

  bulk   one connection, default buffers, a blocking sendall of 20 MB in 64 KiB chunks from a
         simulated process and a recv loop in another; 100 us one way, MTU 1500.
  storm  10,000 connections to one listener (backlog 1024), one new client every 20 us; the
         server waits in epoll, accepts and closes each, the client reads EOF and closes;
         50 us one way. The run includes each server-side TIME_WAIT expiring.

Each is reported as segments per wall second and simpy events processed (events scheduled,
less the cancelled timers that Network.run discards unprocessed). Right after each simnet run,
in the same round, a bare simpy loop processes the same number of events: processes chaining
env.timeout()s and handing events to each other. The figure that matters is

    ratio = (simnet wall time / simnet events) / (bare simpy wall time / bare events)

-- how much a simnet event costs over simpy's own floor. Goal: <= 2 for bulk, <= 3 for storm. Every figure is the
median of the rounds with min-max; each ratio is taken round by round.

`run(quick)` returns the figures as a dict for bench/run_all.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import select
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import simpy  # noqa: E402

from simnet.kernel import Network  # noqa: E402

GOALS = {"bulk": 2.0, "storm": 3.0}  # issue #17: a bulk event at most 2x, a storm event 3x
SERVER, CLIENT, PORT = "10.0.0.1", "10.0.0.2", 5001


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def events_scheduled(env: simpy.Environment) -> int:
    """simpy's event id counter, read from its repr ("count(123)") without consuming an id."""
    return int(repr(env._eid)[6:-1])  # type: ignore[attr-defined]


def events_processed(net: Network) -> int:
    return events_scheduled(net.env) - len(net.env._queue) - net.timers_skipped


# -- the simnet workloads -------------------------------------------------------------------------


def bulk(nbytes: int, latency: float = 100e-6, chunk: int = 65536) -> tuple[Network, int]:
    """One connection carrying `nbytes`; returns the network after the run and the bytes read."""
    net = Network(seed=1, latency=latency, mtu=1500)
    L = net.host(SERVER).socket()
    L.bind((SERVER, PORT))
    L.listen(1)
    c = net.host(CLIENT).socket()
    received = [0]

    def server() -> Any:
        s, _ = yield from L.co.accept()
        while True:
            data = yield from s.co.recv(1 << 18)
            if not data:
                break
            received[0] += len(data)
        s.close()

    def client() -> Any:
        yield from c.co.connect((SERVER, PORT))
        block = bytes(chunk)
        sent = 0
        while sent < nbytes:
            n = min(chunk, nbytes - sent)
            yield from c.co.sendall(block if n == chunk else block[:n])
            sent += n
        c.close()

    net.process(server())
    net.process(client())
    net.run()
    return net, received[0]


def storm(connections: int, latency: float = 50e-6, gap: float = 20e-6) -> tuple[Network, int]:
    """`connections` handshakes to one listener, each accepted and closed; returns the network
    and how many clients saw EOF."""
    net = Network(seed=2, latency=latency)
    server_host, client_host = net.host(SERVER), net.host(CLIENT)
    L = server_host.socket()
    L.bind((SERVER, PORT))
    L.listen(1024)
    L.setblocking(False)
    ep = server_host.epoll()
    ep.register(L, select.EPOLLIN)
    done = [0]
    gap_ns = int(gap * 1e9)

    def server() -> Any:
        accepted = 0
        while accepted < connections:
            yield from ep.co.poll(-1)
            while True:
                try:
                    s, _ = L.accept()
                except BlockingIOError:
                    break
                s.close()
                accepted += 1

    def one_client() -> Any:
        c = client_host.socket()
        yield from c.co.connect((SERVER, PORT))
        if (yield from c.co.recv(16)) == b"":
            done[0] += 1
        c.close()

    def spawner() -> Any:
        for _ in range(connections):
            net.process(one_client())
            yield net.env.timeout(gap_ns)

    net.process(server())
    net.process(spawner())
    net.run()
    return net, done[0]


# -- the bare simpy floor -------------------------------------------------------------------------


def bare_simpy(n_events: int, pairs: int = 8) -> tuple[float, int]:
    """Process about `n_events` simpy events with nothing else to do: `pairs` ping-pong pairs,
    each round a timeout on one side, then an event handed to the other (two events per round).
    Returns (wall seconds, events processed)."""
    env = simpy.Environment()
    rounds = max(1, n_events // (2 * pairs))

    def ping(box: list[simpy.Event]) -> Any:
        for _ in range(rounds):
            yield env.timeout(1)
            box[0].succeed()
            box[0] = env.event()

    def pong(box: list[simpy.Event]) -> Any:
        for _ in range(rounds):
            yield box[0]

    for _ in range(pairs):
        box = [env.event()]
        env.process(ping(box))
        env.process(pong(box))
    start = time.perf_counter()
    env.run()
    wall = time.perf_counter() - start
    return wall, events_scheduled(env) - len(env._queue)


# -- measurement ----------------------------------------------------------------------------------


def timed(workload: Callable[[], tuple[Network, int]]) -> tuple[float, Network, int]:
    gc.collect()
    start = time.perf_counter()
    net, result = workload()
    return time.perf_counter() - start, net, result


def measure(name: str, workload: Callable[[], tuple[Network, int]], expect: int, rounds: int) -> dict[str, Any]:
    walls, seg_rates, us_sim, us_bare, ratio = [], [], [], [], []
    segments = events = 0
    for _ in range(rounds):
        wall, net, result = timed(workload)
        if result != expect:
            raise AssertionError(f"{name}: expected {expect}, the run produced {result}")
        segments, events = net.counters["segments"], events_processed(net)
        del net
        gc.collect()
        bare_wall, bare_events = bare_simpy(events)
        walls.append(wall)
        seg_rates.append(segments / wall)
        us_sim.append(wall / events * 1e6)
        us_bare.append(bare_wall / bare_events * 1e6)
        ratio.append(us_sim[-1] / us_bare[-1])
    return {
        "segments": segments,
        "events": events,
        "wall_s": spread(walls),
        "segments_per_s": spread(seg_rates),
        "us_per_event": spread(us_sim),
        "bare_us_per_event": spread(us_bare),
        "ratio": spread(ratio),
    }


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "platform": platform.platform(),
    }


def run(quick: bool) -> dict[str, Any]:
    """All figures of one invocation. quick: tiny sizes and one round (a smoke test)."""
    rounds = 1 if quick else 5
    nbytes = 200_000 if quick else 20_000_000
    connections = 20 if quick else 10_000
    return {
        "quick": quick,
        "rounds": rounds,
        "goal_ratio": GOALS,
        "machine": machine(),
        "bulk": {"bytes": nbytes, **measure("bulk", lambda: bulk(nbytes), nbytes, rounds)},
        "storm": {"connections": connections, **measure("storm", lambda: storm(connections), connections, rounds)},
    }


def _fmt(s: dict[str, float], spec: str) -> str:
    return f"{s['median']:{spec}} ({s['min']:{spec}}-{s['max']:{spec}})"


def report(figures: dict[str, Any]) -> str:
    m = figures["machine"]
    lines = [
        f"simnet kernel vs bare simpy -- {figures['rounds']} round(s), median (min-max); "
        f"nproc {m['nproc']}, Python {m['python']}, simpy {m['simpy']}",
    ]
    for name, what in (("bulk", f"{figures['bulk']['bytes']:,} bytes"),
                       ("storm", f"{figures['storm']['connections']:,} connections")):
        f = figures[name]
        lines += [
            f"{name}: {what}, {f['segments']:,} segments, {f['events']:,} simpy events",
            f"  wall s             {_fmt(f['wall_s'], '.3f')}",
            f"  segments / wall s  {_fmt(f['segments_per_s'], ',.0f')}",
            f"  us / event         {_fmt(f['us_per_event'], '.2f')}   bare simpy {_fmt(f['bare_us_per_event'], '.2f')}",
            f"  ratio              {_fmt(f['ratio'], '.2f')}   goal <= {figures['goal_ratio'][name]:g}"
            + ("" if f["ratio"]["median"] <= figures["goal_ratio"][name] else "   MISSED"),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (smoke run)")
    parser.add_argument("--json", metavar="OUT", help="write the figures to this file as JSON")
    args = parser.parse_args(argv)
    figures = run(args.quick)
    print(report(figures))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
