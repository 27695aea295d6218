"""`simnet sweep`: one scenario over many seeds, across processes.

Each seed is an independent, deterministic run of `simulate(config with that seed)`, so seeds
shard across worker processes freely and the report is the same whatever `--jobs` is: results
are collected in seed order. `check_determinism` runs every seed twice, each time recording the
server's syscall trace, and compares the two traces byte for byte -- a difference means some
state leaked in from outside the seed (a set's order, `id()`, the wall clock).

A scenario is either a `simnet run` configuration (`SimScenario`) or an asyncio program run by
simnet.aio (`AioScenario`, `simnet sweep --aio module:function`); both answer `run(seed)` with a
`SeedResult`, so the same sweep runs them in this process, across forked processes (`--jobs`)
or on a Dask cluster (simnet/testing/sweep_dask.py, `--dask`), with the same results.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import multiprocessing
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Protocol

import attrs

from simnet.sim.run import RunConfig, load_object, simulate


def parse_seeds(text: str) -> list[int]:
    """`0-9999`, `7`, `1,5,9-12` -> the seeds, in order; ValueError on anything else."""
    seeds: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"bad seed range {part.strip()!r} (try 0-9999 or 1,5,9-12)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"bad seed range {part.strip()!r}: {last} < {first}")
        seeds.extend(range(first, last + 1))
    return seeds


@attrs.frozen(kw_only=True)
class SeedResult:
    seed: int
    problems: tuple[str, ...]
    deterministic: bool | None  # None: not checked
    syscalls: int
    # sha256 of the seed's trace: the server's syscall trace (SimScenario with digest=True or
    # check_determinism), the segment log of an asyncio run (AioScenario); None: not recorded.
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.deterministic is not False


class Scenario(Protocol):
    """One seed in, one verdict out; picklable, so that it can travel to a worker."""

    def run(self, seed: int) -> SeedResult: ...


def _trace_digest(config: RunConfig) -> tuple[str, int, tuple[str, ...]]:
    buffer = io.BytesIO()
    summary = simulate(config, trace=buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest(), summary.syscalls, tuple(summary.problems())


@attrs.frozen
class SimScenario:
    """`simnet run` with `config`, the seed replaced. `digest`: record the server's syscall trace
    and hash it (what `--json` writes); `check_determinism`: run twice and compare the hashes."""

    config: RunConfig
    check_determinism: bool = False
    digest: bool = False

    def run(self, seed: int) -> SeedResult:
        seeded = attrs.evolve(self.config, seed=seed)
        if not self.check_determinism and not self.digest:
            summary = simulate(seeded)
            return SeedResult(
                seed=seed, problems=tuple(summary.problems()), deterministic=None, syscalls=summary.syscalls
            )
        first, syscalls, problems = _trace_digest(seeded)
        deterministic = None
        if self.check_determinism:
            second, _, _ = _trace_digest(seeded)
            deterministic = first == second
        return SeedResult(seed=seed, problems=problems, deterministic=deterministic, syscalls=syscalls, digest=first)


@attrs.frozen
class AioScenario:
    """An asyncio program under simnet.aio: `target` names (MODULE:FUNCTION) an async function,
    or one returning a coroutine, called with no arguments -- or with `seed=` if it declares a
    `seed` parameter -- and run by `simnet.aio.run(coro, seed=seed, **options)`. The seed fails
    when the coroutine raises (a Deadlock included); its digest is the sha256 of the run's segment
    log, which pins down every segment's time, flags, sequence numbers and length."""

    target: str
    options: dict[str, Any] = attrs.field(factory=dict)  # simnet.aio.run's keywords: loss, latency, ...
    check_determinism: bool = False

    def run(self, seed: int) -> SeedResult:
        function = load_object(self.target)
        first, problems = self._once(function, seed)
        deterministic = None
        if self.check_determinism:
            second, _ = self._once(function, seed)
            deterministic = first == second
        return SeedResult(seed=seed, problems=problems, deterministic=deterministic, syscalls=0, digest=first)

    def _once(self, function: Callable[..., Any], seed: int) -> tuple[str, tuple[str, ...]]:
        import simnet.aio as sa

        networks: list[Any] = []

        async def captured() -> Any:
            # The wrapper only notes the Network: the log is read after run() returns, so that it
            # holds the segments of the settling too (the FINs in flight when main() returned).
            networks.append(sa.network())
            coro = function(seed=seed) if _takes_seed(function) else function()
            if not inspect.isawaitable(coro):
                raise TypeError(f"{self.target} returned {type(coro).__name__}, not a coroutine")
            return await coro

        problems: tuple[str, ...] = ()
        try:
            sa.run(captured(), seed=seed, log_segments=True, **self.options)
        except Exception as exc:  # the program's failure is this seed's verdict, not the sweep's
            problems = (one_line(exc),)
        log = networks[0].format_segment_log() if networks else ""
        return hashlib.sha256(log.encode()).hexdigest(), problems


def _takes_seed(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or a C callable: no signature to read
        return False
    seed = parameters.get("seed")
    return seed is not None and seed.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def one_line(exc: BaseException) -> str:
    """`ValueError: the first line of its message` (notes and traceback left out)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_seed(scenario: Scenario, seed: int) -> SeedResult:
    return scenario.run(seed)


def run_batch(scenario: Scenario, seeds: Sequence[int]) -> tuple[list[SeedResult], float]:
    """A worker's unit of work on Dask: several seeds, and the wall time they took there (which
    sizes the next batches, simnet/testing/sweep_dask.py)."""
    started = time.perf_counter()
    results = [scenario.run(seed) for seed in seeds]
    return results, time.perf_counter() - started


def sweep(
    scenario: Scenario | RunConfig,
    seeds: Sequence[int],
    *,
    jobs: int = 1,
    check_determinism: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
    runner: Callable[[Scenario, Sequence[int]], Iterable[SeedResult]] | None = None,
) -> list[SeedResult]:
    """Run every seed; results in seed order. `progress(done, total, failures)` after each.

    A RunConfig is run as SimScenario(config, check_determinism). `runner(scenario, seeds)`, if
    given, runs the seeds instead of `jobs` forked processes and yields their results in any
    order: `functools.partial(sweep_dask.run_on_dask, client)` runs them on a Dask cluster."""
    if isinstance(scenario, RunConfig):
        scenario = SimScenario(scenario, check_determinism=check_determinism)
    total = len(seeds)
    results: list[SeedResult] = []
    failures = 0

    def collect(stream: Iterator[SeedResult]) -> None:
        nonlocal failures
        for result in stream:
            results.append(result)
            failures += not result.ok
            if progress is not None:
                progress(len(results), total, failures)

    if runner is not None:
        collect(iter(runner(scenario, seeds)))
        order = {seed: i for i, seed in reversed(list(enumerate(seeds)))}
        results.sort(key=lambda r: order[r.seed])  # batches finish in any order; report in seed order
    elif jobs <= 1 or total <= 1:
        collect(run_seed(scenario, seed) for seed in seeds)
    else:
        # fork: workers inherit the imported modules (and a test's machine variants) for free.
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs) as pool:
            chunksize = max(1, total // (jobs * 16))
            collect(pool.imap(functools.partial(run_seed, scenario), seeds, chunksize=chunksize))
    return results


class ProgressBar:
    """tqdm's bar on stderr -- `37%|###7      | 370/1000 [00:04<00:07, 88.1 seed/s, failing=2]` --
    drawn only on a terminal (tqdm's disable=None) and never with `quiet`: a CI log or a pipe
    gets the summary line alone. Called as `progress(done, total, failures)` by `sweep`."""

    def __init__(self, stream: IO[str] = sys.stderr, *, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self._bar: Any = None
        self._failures = 0

    def __call__(self, done: int, total: int, failures: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, file=self.stream, unit="seed", dynamic_ncols=True, disable=True if self.quiet else None
            )
        self._bar.update(done - self._bar.n)
        if failures != self._failures:
            self._failures = failures
            self._bar.set_postfix(failing=failures, refresh=False)
        if done == total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
