"""simnet.aio side by side: the same asyncio programs simulated and on real loopback, and seeds
per second against simloop.

    python bench/aio_bench.py                 # A1/A2 (throughput) and, with a 3.12+ venv, A3
    python bench/aio_bench.py --quick         # tiny sizes, one round (the smoke test)
    python bench/aio_bench.py --simloop-python .venv-3.12/bin/python   # where simloop runs

A1  echo: N round trips of a 64-byte message over one connection, asyncio streams, per wall
    second: simnet.aio on one host's loopback (like for like), simnet.aio across two hosts
    with a 1,500-byte MTU and 1 ms latency (virtual), and stock asyncio on real 127.0.0.1.
A2  HTTP: N keep-alive GETs from an asyncio-streams client to an asyncio-streams HTTP/1.1 server
    (hand-written, the same code in each case), per wall second, the same three ways.
A3  seeds per second of a small scenario (a server and three clients, five echo round trips
    each, over links with latency) under simnet.aio and under simloop (`simloop.explore`), both
    with schedule exploration on, both in the same Python 3.12 process (simloop needs 3.12).

Each ratio is simulated / real (A1, A2: goal >= 1.0) or simnet.aio / simloop (A3: goal >= 1.5),
medians of alternating rounds in one process. Real sockets are on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGE = b"x" * 63 + b"\n"
RESPONSE_BODY = b"hello, world\n"


# -- the programs (plain asyncio: nothing here knows whether it is simulated) -------------------


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line)
    writer.close()


async def echo_client(host: str, port: int, rounds: int) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    for _ in range(rounds):
        writer.write(MESSAGE)
        await reader.readexactly(len(MESSAGE))
    writer.close()
    return rounds


async def http_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n\r\n%s" % (
        len(RESPONSE_BODY),
        RESPONSE_BODY,
    )
    while True:
        try:
            await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            break  # the client closed its keep-alive connection
        writer.write(response)
        await writer.drain()
    writer.close()


async def http_client(host: str, port: int, requests: int) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    for _ in range(requests):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
    writer.close()
    return requests


async def serve_and_run(
    handler: Callable[..., Coroutine[Any, Any, None]],
    client: Callable[[str, int, int], Coroutine[Any, Any, int]],
    n: int,
    *,
    server_host: str | None,
) -> int:
    """One server, one client; `server_host` None: both in this task's host (loopback)."""
    if server_host is None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        done = await client("127.0.0.1", port, n)
        server.close()
        return done
    import simnet.aio as sa

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 9000)
        await server.serve_forever()

    sa.spawn(serve(), host=server_host)
    await asyncio.sleep(0)
    return await client(server_host, 9000, n)


def time_real(program: Callable[[], Coroutine[Any, Any, int]]) -> float:
    started = time.perf_counter()
    asyncio.run(program())
    return time.perf_counter() - started


def time_sim(program: Callable[[], Coroutine[Any, Any, int]], **options: Any) -> float:
    import simnet.aio as sa

    started = time.perf_counter()
    sa.run(program(), **options)
    return time.perf_counter() - started


def throughput(name: str, handler: Any, client: Any, n: int, rounds: int) -> dict[str, Any]:
    cases: dict[str, Callable[[], float]] = {
        "real": lambda: time_real(lambda: serve_and_run(handler, client, n, server_host=None)),
        "sim_loopback": lambda: time_sim(lambda: serve_and_run(handler, client, n, server_host=None)),
        "sim_two_hosts": lambda: time_sim(
            lambda: serve_and_run(handler, client, n, server_host="server"), latency=0.001, mtu=1500
        ),
    }
    times: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(rounds):
        for case, run in cases.items():  # alternate, so drift hits every case alike
            times[case].append(run())
    rates = {case: n / statistics.median(values) for case, values in times.items()}
    spans = {case: (n / max(values), n / min(values)) for case, values in times.items()}
    return {
        "measure": name,
        "n": n,
        "rates": rates,
        "spans": spans,
        "ratio_loopback": rates["sim_loopback"] / rates["real"],
        "ratio_two_hosts": rates["sim_two_hosts"] / rates["real"],
    }


# -- A3: seeds per second against simloop ----------------------------------------------------------


async def scenario(spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]) -> None:
    """A server and three clients, five echo round trips each; it ends when every handler has
    seen its client's EOF (so that neither simulator's teardown has a handler to cancel)."""
    clients = 3
    finished = asyncio.Event()
    handled = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal handled
        await echo_handler(reader, writer)
        handled += 1
        if handled == clients:
            finished.set()

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 8080)
        await finished.wait()
        server.close()

    server = spawn(serve(), "server")
    await asyncio.sleep(0)
    await asyncio.gather(*(spawn(echo_client("server", 8080, 5), f"c{i}") for i in range(clients)))
    await server


async def scenario_simnet() -> None:
    import simnet.aio as sa

    await scenario(lambda coro, host: sa.spawn(coro, host=host))


async def scenario_simloop() -> None:
    loop: Any = asyncio.get_running_loop()
    loop.net.set_defaults(latency=(0.001, 0.001))
    await scenario(lambda coro, host: loop.net.host(host).create_task(coro))


def seeds_per_second(seeds: int, rounds: int) -> dict[str, Any]:
    import simloop

    import simnet.aio as sa

    def run_simnet() -> float:
        started = time.perf_counter()
        for seed in range(seeds):
            sa.run(scenario_simnet(), seed=seed, latency=0.001)
        return time.perf_counter() - started

    def run_simloop() -> float:
        started = time.perf_counter()
        report = simloop.explore(scenario_simloop, range(seeds))
        assert report is None, report.render()
        return time.perf_counter() - started

    times: dict[str, list[float]] = {"simnet.aio": [], "simloop": []}
    for _ in range(rounds):
        times["simnet.aio"].append(run_simnet())
        times["simloop"].append(run_simloop())
    rates = {case: seeds / statistics.median(values) for case, values in times.items()}
    return {
        "measure": "A3",
        "seeds": seeds,
        "rates": rates,
        "ratio": rates["simnet.aio"] / rates["simloop"],
        "python": sys.version.split()[0],
        "simloop": simloop.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only-a3", action="store_true", help="(internal) run A3 here and print JSON")
    parser.add_argument("--simloop-python", default=None, help="a Python 3.12+ with simloop and simnet installed")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    if args.only_a3:
        print(json.dumps(seeds_per_second(5 if args.quick else 200, rounds)))
        return
    n = 200 if args.quick else 5_000
    results = [
        throughput("A1 echo round trips/s", echo_handler, echo_client, n, rounds),
        throughput("A2 HTTP requests/s", http_handler, http_client, n, rounds),
    ]
    for r in results:
        rates = r["rates"]
        print(
            f"{r['measure']}: real {rates['real']:,.0f}, simnet.aio loopback {rates['sim_loopback']:,.0f} "
            f"({r['ratio_loopback']:.2f}x), two hosts {rates['sim_two_hosts']:,.0f} ({r['ratio_two_hosts']:.2f}x)"
        )
    python = args.simloop_python or _find_simloop_python()
    if python is None:
        print("A3 seeds/s vs simloop: SKIPPED (no Python 3.12+ with simloop: make bench-aio sets one up)")
        return
    out = subprocess.run(
        [python, __file__, "--only-a3", *(["--quick"] if args.quick else []), "--rounds", str(rounds)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    a3 = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"A3 seeds/s ({a3['seeds']} seeds, Python {a3['python']}): simnet.aio {a3['rates']['simnet.aio']:,.1f}, "
        f"simloop {a3['simloop']} {a3['rates']['simloop']:,.1f} ({a3['ratio']:.2f}x)"
    )


def _find_simloop_python() -> str | None:
    for candidate in (ROOT / ".venv-bench-aio" / "bin" / "python",):
        if candidate.exists():
            probe = subprocess.run([str(candidate), "-c", "import simloop, simnet"], capture_output=True)
            if probe.returncode == 0:
                return str(candidate)
    return os.environ.get("SIMLOOP_PYTHON")


if __name__ == "__main__":
    main()
