"""Seeds explore schedules, not only faults; the same seed is the same run, byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap

import simnet.aio as sa


async def racing_clients() -> list[str]:
    """Two clients on hosts the same distance away write at the same instant; the server's
    handlers append to one shared list -- a race on shared state."""
    arrivals: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = (await reader.readline()).decode().strip()
        arrivals.append(name)
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        await server.serve_forever()

    async def client(name: str) -> None:
        reader, writer = await asyncio.open_connection("server", 80)
        writer.write(name.encode() + b"\n")
        await reader.read()
        writer.close()

    sa.spawn(serve(), host="server")
    await asyncio.sleep(0)
    await asyncio.gather(sa.spawn(client("a"), host="a"), sa.spawn(client("b"), host="b"))
    return arrivals


async def racing_timers() -> list[int]:
    fired: list[int] = []

    async def sleeper(i: int) -> None:
        await asyncio.sleep(1)
        fired.append(i)

    await asyncio.gather(*(sleeper(i) for i in range(4)))
    return fired


def test_a_race_between_connections_shows_up_in_some_seeds_only() -> None:
    orders = {seed: tuple(sa.run(racing_clients(), seed=seed)) for seed in range(16)}
    assert set(orders.values()) == {("a", "b"), ("b", "a")}
    for seed in (3, 7):  # and each seed is its own, reproducible interleaving
        assert tuple(sa.run(racing_clients(), seed=seed)) == orders[seed]


def test_schedule_fixed_turns_the_exploration_off() -> None:
    orders = {tuple(sa.run(racing_clients(), seed=seed, schedule="fixed")) for seed in range(8)}
    assert len(orders) == 1


def test_timers_due_at_the_same_instant_fire_in_a_seeded_order() -> None:
    orders = {tuple(sa.run(racing_timers(), seed=seed)) for seed in range(12)}
    assert len(orders) > 1
    # Fixed: asyncio's own order for ties (its timer heap's, whatever the seed).
    assert len({tuple(sa.run(racing_timers(), seed=seed, schedule="fixed")) for seed in range(4)}) == 1


def test_call_soon_stays_fifo_whatever_the_seed() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        out: list[int] = []
        for i in range(20):
            loop.call_soon(out.append, i)
        future = loop.create_future()
        for i in range(20, 30):
            future.add_done_callback(lambda _f, i=i: out.append(i))
        future.set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return out

    for seed in range(5):
        assert sa.run(main(), seed=seed) == list(range(30))


_DIGEST_PROGRAM = textwrap.dedent(
    """
    import asyncio, hashlib, sys
    import simnet.aio as sa
    sys.path.insert(0, {tests!r})
    from aio.test_schedule import lossy_exchange
    log, answers = sa.run(lossy_exchange(), seed=11, loss=0.05, reorder=0.05, log_segments=True)
    print(hashlib.sha256(log.encode() + repr(answers).encode()).hexdigest())
    """
)


async def lossy_exchange() -> tuple[str, list[bytes]]:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper() * 50)

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        await server.serve_forever()

    async def client(i: int) -> bytes:
        reader, writer = await asyncio.open_connection("server", 80)
        writer.write(b"hello %d\n" % i)
        data = await reader.readexactly(50 * 8)
        writer.close()
        return data

    sa.spawn(serve(), host="server")
    await asyncio.sleep(0)
    answers = await asyncio.gather(*(sa.spawn(client(i), host=f"c{i}") for i in range(5)))
    return sa.network().format_segment_log(), list(answers)


def test_same_seed_same_segment_log_whatever_pythonhashseed() -> None:
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    log, answers = sa.run(lossy_exchange(), seed=11, loss=0.05, reorder=0.05, log_segments=True)
    assert "lost" in log  # the faults did something
    here = hashlib.sha256(log.encode() + repr(answers).encode()).hexdigest()
    program = _DIGEST_PROGRAM.format(tests=tests)
    digests = set()
    for hash_seed in ("0", "1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", program],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        digests.add(out.stdout.strip())
    assert digests == {here}


async def nearly_simultaneous_clients() -> list[str]:
    """Client b writes 0.3 us after client a, from another host at the same distance: on a
    real network either may arrive first."""
    arrivals: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrivals.append((await reader.readline()).decode().strip())
        writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handler, "0.0.0.0", 80)
        await server.serve_forever()

    async def client(name: str, delay: float) -> None:
        reader, writer = await asyncio.open_connection("server", 80)
        await asyncio.sleep(1 - asyncio.get_running_loop().time() + delay)  # both connected by 1 s
        writer.write(name.encode() + b"\n")
        await reader.read()
        writer.close()

    sa.spawn(serve(), host="server")
    await asyncio.sleep(0)
    await asyncio.gather(sa.spawn(client("a", 0), host="a"), sa.spawn(client("b", 0.3e-6), host="b"))
    return arrivals


def test_delivery_jitter_lets_nearly_simultaneous_segments_swap() -> None:
    explored = {tuple(sa.run(nearly_simultaneous_clients(), seed=seed)) for seed in range(16)}
    assert explored == {("a", "b"), ("b", "a")}
    fixed = {tuple(sa.run(nearly_simultaneous_clients(), seed=seed, schedule="fixed")) for seed in range(4)}
    assert fixed == {("a", "b")}  # without exploration, the earlier write always wins
