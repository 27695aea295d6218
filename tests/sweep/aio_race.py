"""Asyncio scenarios for `simnet sweep --aio` (tests/sweep/test_sweep_aio.py).

`lost_update` is a classic check-then-act race: two clients on two hosts each read a counter
from a server, add one and write it back, over two round trips. Whether the second read comes
before the first write depends on the order the simulated network delivers their segments,
which the seed picks (simnet.aio's "explore" schedule, and the jitter the sweep adds), so some
seeds lose an update and fail.
"""

from __future__ import annotations

import asyncio

import simnet.aio as sa

PORT = 7000


async def _serve(state: dict[str, int]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            command, _, value = line.decode().strip().partition(" ")
            if command == "GET":
                writer.write(f"{state['counter']}\n".encode())
            else:  # SET
                state["counter"] = int(value)
                writer.write(b"OK\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", PORT)
    async with server:
        await server.serve_forever()


async def _increment(address: str) -> None:
    reader, writer = await asyncio.open_connection(address, PORT)
    writer.write(b"GET\n")
    value = int(await reader.readline())
    writer.write(f"SET {value + 1}\n".encode())
    await reader.readline()
    writer.close()
    await writer.wait_closed()


async def lost_update() -> None:
    state = {"counter": 0}
    sa.spawn(_serve(state), host="server")
    await asyncio.sleep(0.01)
    address = sa.address("server")
    alice = sa.spawn(_increment(address), host="alice")
    # Bob starts a round trip (2 ms at 1 ms latency) after Alice: his GET reaches the server in
    # the same virtual instant as her SET, and the seed decides which the server reads first.
    await asyncio.sleep(0.002)
    bob = sa.spawn(_increment(address), host="bob")
    await asyncio.gather(alice, bob)
    if state["counter"] != 2:
        raise AssertionError(f"lost update: counter is {state['counter']} after two increments")


async def seeded(seed: int) -> int:
    """Declares `seed`, so the sweep passes it."""
    await asyncio.sleep(0.001)
    if seed == 3:
        raise ValueError(f"seed {seed} is unlucky\nsecond line not shown")
    return seed


def not_a_coroutine() -> int:
    return 1
