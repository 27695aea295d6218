"""`simnet sweep --dask` and `--aio`: the same seeds give the same JSON lines on forked processes,
on a LocalCluster and on a scheduler started apart (on 127.0.0.1); an unreachable scheduler is a
one-line error; an asyncio scenario's failing seeds come back with the command that reproduces them."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simnet.testing.sweep import AioScenario, ProgressBar, SeedResult, one_line

pytest.importorskip("distributed", reason="the dask extra is not installed: pip install 'simnet[dask]'")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HTTP = ["--app", "http", "--clients", "3", "--requests", "3", "--pipeline", "2", "--resetters", "0.2",
        "--sndbuf", "4096"]  # fmt: skip
RACE = "tests.sweep.aio_race:lost_update"


def simnet(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def json_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dask_local_cluster_gives_the_json_lines_of_jobs(tmp_path: Path) -> None:
    forked, dask = tmp_path / "jobs.jsonl", tmp_path / "dask.jsonl"
    one = simnet("sweep", "--seeds", "0-199", "--jobs", "2", "--json", str(forked), *HTTP)
    two = simnet("sweep", "--seeds", "0-199", "--dask", "--jobs", "2", "--json", str(dask), *HTTP)
    assert one.returncode == 0 and two.returncode == 0, one.stderr[-2000:] + two.stderr[-2000:]
    assert "(Dask LocalCluster, 2 workers)" in two.stdout and "200 ok, 0 failing" in two.stdout
    lines = json_lines(forked)
    assert [line["seed"] for line in lines] == list(range(200))
    assert all(line["ok"] and len(str(line["digest"])) == 64 for line in lines)
    assert len({line["digest"] for line in lines}) == 200  # the digest tells seeds apart
    assert forked.read_text() == dask.read_text()


def test_a_failing_sim_seed_carries_its_reproduce_command_in_json(tmp_path: Path) -> None:
    out = tmp_path / "seeds.jsonl"
    result = simnet(
        "sweep", "--seeds", "0-3", "--dask", "--jobs", "1", "--json", str(out), "--app", "http", "--clients", "2",
        "--requests", "6", "--response-size", "50000", "--sndbuf", "4096",
        "--machine", "tests.sweep.broken:IgnoresPartialWrites",
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = json_lines(out)
    assert [line["ok"] for line in lines] == [False] * 4
    assert all(str(line["reproduce"]).startswith(f"simnet run --seed {line['seed']} ") for line in lines)
    assert "reproduce: simnet run --seed 0" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def scheduler() -> Iterator[str]:
    """A scheduler and one worker process, as docs/sweeps.md starts them, on loopback only."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    procs = [
        subprocess.Popen([BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"],
                         cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]  # fmt: skip
    try:
        procs.append(subprocess.Popen(
            [BIN / "dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_an_aio_sweep_on_a_running_scheduler_matches_jobs(tmp_path: Path, scheduler: str) -> None:
    forked, dask = tmp_path / "jobs.jsonl", tmp_path / "dask.jsonl"
    one = simnet("sweep", "--aio", RACE, "--seeds", "0-39", "--jobs", "2", "--json", str(forked))
    two = simnet("sweep", "--aio", RACE, "--seeds", "0-39", "--dask", scheduler, "--json", str(dask))
    assert one.returncode == two.returncode == 1, one.stderr[-2000:] + two.stderr[-2000:]
    assert f"(Dask {scheduler}, 1 worker)" in two.stdout
    assert forked.read_text() == dask.read_text()
    verdicts = [line["ok"] for line in json_lines(dask)]
    assert True in verdicts and False in verdicts  # a race: some seeds lose the update, some do not


def test_an_unreachable_scheduler_is_one_line_and_exit_2_within_seconds() -> None:
    started = time.monotonic()
    result = simnet("sweep", "--seeds", "0-3", "--dask", f"tcp://127.0.0.1:{_free_port()}", *HTTP, timeout=60)
    assert result.returncode == 2
    assert time.monotonic() - started < 20
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in result.stderr
    assert result.stdout == ""  # no sweep ran elsewhere instead


def test_aio_failing_seeds_reproduce_with_the_printed_command() -> None:
    result = simnet("sweep", "--aio", RACE, "--seeds", "0-19", "--jobs", "2")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    failing = [line for line in lines if line.startswith("  seed ")]
    assert failing and "ok, " in lines[0] and " 0 ok" not in lines[0]
    assert all("AssertionError: lost update: counter is 1 after two increments" in line for line in failing)
    command = next(line for line in lines if "reproduce:" in line).split("reproduce: ", 1)[1]
    assert command.startswith(f"simnet sweep --aio {RACE} --seeds ")
    again = simnet(*command.split()[1:])
    assert again.returncode == 1 and "1 seeds" in again.stdout and "0 ok, 1 failing" in again.stdout


def test_aio_scenario_verdicts_and_digests() -> None:
    seeded = AioScenario("tests.sweep.aio_race:seeded", {"loss": 0.1}, check_determinism=True)
    ok, unlucky = seeded.run(2), seeded.run(3)
    assert ok.ok and ok.deterministic is True and ok.digest == seeded.run(2).digest
    assert unlucky.problems == ("ValueError: seed 3 is unlucky",)  # one line: the message's first
    wrong = AioScenario("tests.sweep.aio_race:not_a_coroutine").run(0)
    assert wrong.problems == ("TypeError: tests.sweep.aio_race:not_a_coroutine returned int, not a coroutine",)
    race = AioScenario(RACE)
    assert race.run(0).digest != race.run(0).digest.upper() and race.run(0) == race.run(0)
    assert one_line(KeyError("k")) == "KeyError: 'k'"


def test_aio_takes_only_the_network_options() -> None:
    result = simnet("sweep", "--aio", RACE, "--seeds", "0-1", "--clients", "3")
    assert result.returncode == 2 and "--clients" in result.stderr and "Traceback" not in result.stderr
    result = simnet("sweep", "--aio", RACE, "--seeds", "0-1", "--jitter", "bogus:1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = simnet("sweep", "--aio", "tests.sweep.aio_race:missing", "--seeds", "0-1")
    assert result.returncode == 2 and "missing" in result.stderr


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _feed(bar: ProgressBar) -> None:
    results = [SeedResult(seed=s, problems=("x",) if s == 3 else (), deterministic=None, syscalls=0) for s in range(5)]
    for done, _ in enumerate(results, 1):
        bar(done, len(results), int(done > 3))


def test_the_progress_bar_is_drawn_on_a_terminal_only_and_not_when_quiet() -> None:
    terminal, pipe, quiet = FakeTerminal(), io.StringIO(), FakeTerminal()
    _feed(ProgressBar(terminal))
    _feed(ProgressBar(pipe))
    _feed(ProgressBar(quiet, quiet=True))
    assert "5/5" in terminal.getvalue() and "failing=1" in terminal.getvalue()
    assert pipe.getvalue() == "" and quiet.getvalue() == ""
