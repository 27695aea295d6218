"""docs/aio.md's worked example: the shop service under loss and a partition.

pytest examples/aio_shop --simnet-seeds 0-99
"""

import asyncio

import aiohttp
import pytest
from shop import serve

import simnet.aio as sa

PARTITION = {"partitions": [{"a": "shop", "b": "main", "start": 1.0, "end": 4.0}]}


@pytest.mark.simnet(loss=0.02, faults=PARTITION)
async def test_client_rides_out_a_partition() -> None:
    sa.spawn(serve(), host="shop")
    await asyncio.sleep(0.01)
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        prices = []
        for _attempt in range(10):
            try:
                async with session.get("http://shop:8080/price/tea") as response:
                    prices.append((await response.json())["price"])
            except TimeoutError:
                pass  # the partition: retry
            await asyncio.sleep(0.5)
    assert prices and all(p == 42 for p in prices)
    assert sa.network().counters["partitioned"] > 0
