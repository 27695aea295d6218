"""`simnet demo`, `simnet run` and the run → replay → show round trip, through the real entry point."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from simnet.cli import duration, main, size


def simnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_demo_narrates_each_mechanic_from_the_model() -> None:
    result = simnet("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for needle in ("EINPROGRESS", "[S  ]", "[S. ]", "partial write", "EAGAIN", "OUT)", "[F. ]", "b''", "CLOSE-WAIT"):
        assert needle in out, needle


def test_run_prints_a_summary_writes_a_trace_that_replays_and_shows(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl"
    result = simnet(
        "run", "--clients", "20", "--requests", "4", "--pipeline", "2", "--seed", "3", "--rcvbuf", "4096",
        "--sndbuf", "4096", "--resetters", "0.2", "--trace", str(trace),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for label in ("connections", "requests", "responses", "bytes", "EAGAIN", "partial writes", "resets",
                  "backlog drops", "simulated time", "wall time", "events per second", "seed"):
        assert label in result.stdout, label
    assert "result               ok (seed 3)" in result.stdout
    replay = simnet("replay", str(trace))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "syscalls matched" in replay.stdout
    show = simnet("show", str(trace))
    assert show.returncode == 0 and "connection #1" in show.stdout


def test_the_same_seed_prints_the_same_summary_but_for_wall_time() -> None:
    def stable(out: str) -> list[str]:
        return [line for line in out.splitlines() if not line.startswith(("wall time", "events per second"))]

    first, second = simnet("run", "--clients", "15", "--seed", "11"), simnet("run", "--clients", "15", "--seed", "11")
    assert first.returncode == second.returncode == 0
    assert stable(first.stdout) == stable(second.stdout)
    other = simnet("run", "--clients", "15", "--seed", "12")
    assert stable(other.stdout) != stable(first.stdout)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--latency", "fast"], "not a duration"),
        (["run", "--rcvbuf", "-3"], "not a size"),
        (["run", "--slow-readers", "2"], "between 0 and 1"),
        (["run", "--clients", "-1"], "simnet run:"),
        (["run", "--slow-readers", "0.6", "--resetters", "0.6"], "must not exceed 1"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = simnet(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_units() -> None:
    assert duration("1ms") == pytest.approx(0.001)
    assert duration("250us") == pytest.approx(0.00025)
    assert duration("2") == 2.0
    assert size("64k") == 65536 and size("4096") == 4096
    assert size("64KiB") == size("64kib") == 65536 and size("1MiB") == 1 << 20  # as realnet serve reads them
    with pytest.raises(argparse.ArgumentTypeError):
        size("4096iB")  # "iB" only after a unit


def test_a_trace_path_that_cannot_be_written_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--clients", "1", "--trace", str(tmp_path / "missing" / "t.jsonl")])
    assert code == 2
    assert "missing" in capsys.readouterr().err
