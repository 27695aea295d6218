"""`simnet sweep --dask`: the seeds of a sweep on a Dask cluster, in batches.

`dask_client(None, workers)` starts a `distributed.LocalCluster` on this machine (one process of
one thread per worker: a simulation is pure Python, so threads would only share one GIL);
`dask_client("tcp://host:8786")` joins a running scheduler (docs/sweeps.md says how to start one
on several machines). Either way `run_on_dask` hands the workers `sweep.run_batch(scenario,
seeds)` tasks and yields the SeedResults as batches finish; `sweep.sweep` puts them back in seed
order, so a sweep's report and `--json` lines are those of `--jobs N` for the same seeds.

How big a batch is. Dask costs about a millisecond of scheduler and network time per task
(1.8 ms measured on this 2-core machine, bench/sweep_dask.py), while a seed costs anywhere from
1 ms (three echo clients) to a second (`simnet run`'s 200 HTTP clients). So the batch size is
set by time, not by count: each batch is sized to take about TARGET_BATCH_SECONDS on a worker,
from the per-seed time the latest finished batch measured there (the first batches, before any
measurement, hold one seed each). A quarter of a second puts the per-task overhead under 1 %.
Two caps keep the end of the sweep short: a batch never holds more than 1/(IN_FLIGHT * workers)
of the seeds still to hand out (guided self-scheduling: batches shrink as the sweep nears its
end, so the workers finish together instead of one finishing a big batch alone), and each
worker has IN_FLIGHT batches assigned at a time, so that it starts its next batch without waiting
for a round trip to the scheduler. Only these few batches are ever submitted ahead, so the
scheduler holds O(workers) tasks, not one per seed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from simnet.testing.sweep import Scenario, SeedResult, run_batch

# A worker's batch takes about this long: Dask's ~1-2 ms per task is then under 1 % of it.
TARGET_BATCH_SECONDS = 0.25
# Batches assigned per worker at a time: one running, one waiting on the worker.
IN_FLIGHT = 2
# How long to try a scheduler's address before saying it is unreachable (Dask retries a refused
# connection until then), and how long to wait for a scheduler without workers to get one.
CONNECT_TIMEOUT = 3.0
WORKERS_TIMEOUT = 10.0


class DaskUnavailable(Exception):
    """The cluster cannot be had: not installed, the scheduler unreachable, no workers. One line."""


def local_workers(jobs: int | None) -> int:
    return jobs if jobs is not None else (os.cpu_count() or 1)


@contextmanager
def dask_client(address: str | None, workers: int) -> Iterator[Any]:
    """A distributed.Client on a new LocalCluster of `workers` processes (address None), or on
    the scheduler at `address`. DaskUnavailable, with a one-line reason, when neither can be had:
    there is no falling back to local processes behind the user's back."""
    try:
        import distributed
    except ImportError:
        raise DaskUnavailable("--dask needs dask.distributed: pip install 'simnet[dask]'") from None
    if address is None:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False},  # no web server: no port 8787 to collide over
            silence_logs=logging.CRITICAL,  # a closing cluster logs heartbeat errors: noise here
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:  # refused, timed out, a malformed address
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DaskUnavailable(f"cannot reach the Dask scheduler at {address}: {reason}") from None
    try:
        if not client.nthreads():
            try:
                client.wait_for_workers(1, timeout=WORKERS_TIMEOUT)
            except TimeoutError:
                raise DaskUnavailable(
                    f"the Dask scheduler at {address} has no workers (waited {WORKERS_TIMEOUT:.0f} s)"
                ) from None
        yield client
    finally:
        client.close()


def cluster_workers(client: Any) -> int:
    """Worker threads the cluster offers: each runs one batch at a time."""
    return max(1, int(sum(client.nthreads().values())))


def run_on_dask(client: Any, scenario: Scenario, seeds: Sequence[int]) -> Iterator[SeedResult]:
    """Every seed's result, batch by batch as batches finish (not in seed order)."""
    from distributed import as_completed

    workers = cluster_workers(client)
    next_seed = 0
    per_seed: float | None = None  # seconds per seed, measured by the latest finished batch

    def batch_size() -> int:
        remaining = len(seeds) - next_seed
        guided = math.ceil(remaining / (IN_FLIGHT * workers))
        timed = 1 if per_seed is None else int(TARGET_BATCH_SECONDS / max(per_seed, 1e-6))
        return max(1, min(timed, guided))

    def submit() -> Any:
        nonlocal next_seed
        size = batch_size()
        batch = list(seeds[next_seed : next_seed + size])
        next_seed += size
        # pure=False: two batches of the same seeds (a sweep run twice) are two tasks, not one cached.
        return client.submit(run_batch, scenario, batch, pure=False)

    pending = as_completed([submit() for _ in range(min(IN_FLIGHT * workers, len(seeds)))])
    for future in pending:
        results, seconds = future.result()
        future.release()
        if results:
            per_seed = seconds / len(results)
        if next_seed < len(seeds):
            pending.add(submit())
        yield from results
