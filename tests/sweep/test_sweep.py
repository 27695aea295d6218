"""`simnet sweep`: seeds across processes, failures with reproduce commands, determinism checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simnet.sim.run import RunConfig
from simnet.testing.sweep import parse_seeds, sweep
from simnet.sim.workload import Workload

ROOT = Path(__file__).resolve().parents[2]


def simnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


def test_seed_ranges() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("1,5,9-11") == [1, 5, 9, 10, 11]
    for bad in ("", "a-b", "5-1", "1,,2"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_results_do_not_depend_on_the_number_of_jobs() -> None:
    config = RunConfig(workload=Workload(app="echo", clients=4, requests=3, resetters=0.25), rcvbuf=4096)
    one = sweep(config, range(12), jobs=1)
    two = sweep(config, range(12), jobs=2)
    assert one == two
    assert [r.seed for r in one] == list(range(12))


def test_check_determinism_over_a_few_hundred_seeds_in_ci() -> None:
    result = simnet(
        "sweep", "--seeds", "0-299", "--jobs", "2", "--check-determinism", "--app", "http", "--clients", "3",
        "--requests", "3", "--pipeline", "2", "--resetters", "0.2", "--sndbuf", "4096",
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "300 seeds" in result.stdout and "300 ok, 0 failing" in result.stdout
    assert "compared byte for byte" in result.stdout
    assert result.stderr == ""  # the progress bar is for terminals only (tests/sweep/test_sweep_dask.py)


def test_failing_seeds_are_listed_with_their_reproduce_command() -> None:
    result = simnet(
        "sweep", "--seeds", "0-2", "--app", "http", "--clients", "2", "--requests", "6", "--response-size", "50000",
        "--sndbuf", "4096",
        "--machine", "tests.sweep.broken:IgnoresPartialWrites",
    )
    assert result.returncode == 1
    assert "0 ok, 3 failing" in result.stdout
    assert "reproduce: simnet run --seed 0" in result.stdout
    reproduce_lines = [line for line in result.stdout.splitlines() if "reproduce:" in line]
    assert len(reproduce_lines) == 3 and all(line.count("--seed") == 1 for line in reproduce_lines)
    assert "--machine tests.sweep.broken:IgnoresPartialWrites" in result.stdout


def test_bad_sweep_input_is_one_line() -> None:
    result = simnet("sweep", "--seeds", "9-1")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "9-1" in result.stderr
