"""`simnet sweep`: one scenario over many seeds, across processes.

Each seed is an independent, deterministic run of `simulate(config with that seed)`, so seeds
shard across worker processes freely and the report is the same whatever `--jobs` is: results
are collected in seed order. `check_determinism` runs every seed twice, each time recording the
server's syscall trace, and compares the two traces byte for byte -- a difference means some
state leaked in from outside the seed (a set's order, `id()`, the wall clock).
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO

import attrs

from simnet.run import RunConfig, simulate


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

    @property
    def ok(self) -> bool:
        return not self.problems and self.deterministic is not False


def _trace_digest(config: RunConfig) -> tuple[str, int, tuple[str, ...]]:
    buffer = io.BytesIO()
    summary = simulate(config, trace=buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest(), summary.syscalls, tuple(summary.problems())


def run_seed(job: tuple[RunConfig, int, bool]) -> SeedResult:
    config, seed, check_determinism = job
    seeded = attrs.evolve(config, seed=seed)
    if not check_determinism:
        summary = simulate(seeded)
        return SeedResult(seed=seed, problems=tuple(summary.problems()), deterministic=None, syscalls=summary.syscalls)
    first, syscalls, problems = _trace_digest(seeded)
    second, _, _ = _trace_digest(seeded)
    return SeedResult(seed=seed, problems=problems, deterministic=first == second, syscalls=syscalls)


def sweep(
    config: RunConfig,
    seeds: Sequence[int],
    *,
    jobs: int = 1,
    check_determinism: bool = False,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[SeedResult]:
    """Run every seed; results in seed order. `progress(done, total, failures)` after each."""
    work = [(config, seed, check_determinism) for seed in seeds]
    results: list[SeedResult] = []
    failures = 0

    def collect(stream: Iterator[SeedResult]) -> None:
        nonlocal failures
        for result in stream:
            results.append(result)
            failures += not result.ok
            if progress is not None:
                progress(len(results), len(work), failures)

    if jobs <= 1 or len(work) <= 1:
        collect(map(run_seed, work))
    else:
        # fork: workers inherit the imported modules (and a test's machine variants) for free.
        context = multiprocessing.get_context("fork")
        with context.Pool(jobs) as pool:
            collect(pool.imap(run_seed, work, chunksize=max(1, len(work) // (jobs * 16))))
    return results


class ProgressBar:
    """`[#######.....] 700/1000 seeds, 2 failing` on stderr: redrawn in place on a terminal,
    every tenth of the way otherwise (so CI logs stay short)."""

    def __init__(self, stream: IO[str] = sys.stderr, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self._last_tenth = -1

    def __call__(self, done: int, total: int, failures: int) -> None:
        filled = self.width * done // total
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} seeds, {failures} failing"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
            self.stream.flush()
            return
        tenth = 10 * done // total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()
