"""`simnet run` and `simnet sweep` with faults, through the real entry point (as tests/cli does):
a schedule file or the shorthand options, a `faults` line in the summary that counts what
happened, one line on stderr and exit 2 for a bad schedule, and determinism under faults."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("--clients", "20", "--requests", "3", "--seed", "1")

SCHEDULE = """\
[[links]]
loss = 0.02

[[partitions]]  # the first client's host is cut off for 0.4 s, then heals
a = "10.0.1.1"
b = "10.0.0.1"
start = 0.2
end = 0.6

[[holds]]
a = "10.0.1.1"
b = "10.0.0.1"
start = 0.8
end = 0.9

[[rsts]]
at = 0.5
host = "10.0.0.1"
nth = 2
"""


def simnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def fault_counts(stdout: str) -> dict[str, int]:
    """The summary's `faults` line, e.g. `faults  lost 10, held 2`, as a dict."""
    (line,) = [line for line in stdout.splitlines() if line.startswith("faults ")]
    return {name: int(n) for name, n in re.findall(r"([a-z_]+) (\d+)", line)}


def test_run_with_a_schedule_file_reports_what_each_fault_did(tmp_path: Path) -> None:
    schedule = tmp_path / "faults.toml"
    schedule.write_text(SCHEDULE)
    result = simnet("run", "--faults", str(schedule), *SMALL)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = fault_counts(result.stdout)
    assert counts["lost"] > 0 and counts["partitioned"] > 0
    assert counts["held"] == counts["released"] > 0
    assert counts["rsts_injected"] == 2  # the server's end of its second connection, and the client's
    assert "result               ok (seed 1)" in result.stdout


def test_run_with_the_shorthand_options_reports_every_kind(tmp_path: Path) -> None:
    result = simnet(
        "run", "--loss", "0.05", "--reorder", "0.05", "--duplicate", "0.05", "--jitter", "uniform:0:1ms",
        "--short-io", "0.2", *SMALL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    counts = fault_counts(result.stdout)
    for name in ("lost", "duplicated", "reordered", "out_of_order", "short_recvs", "short_sends", "spurious_wakeups"):
        assert counts.get(name, 0) > 0, (name, counts)
    assert "result               ok (seed 1)" in result.stdout


def test_a_run_without_faults_has_no_faults_line() -> None:
    result = simnet("run", *SMALL)
    assert result.returncode == 0
    assert not [line for line in result.stdout.splitlines() if line.startswith("faults ")]


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("rate.toml", "[[links]]\nloss = 2\n", "rate.toml: links[0]: loss: a probability between 0 and 1"),
        ("field.toml", "[[holds]]\na = \"10.0.1.1\"\nb = \"10.0.0.1\"\nend = 1\nstop = 2\n",
         "field.toml: holds[0]: unknown field 'stop'"),
        ("syntax.toml", "[[links]]\nloss = \n", "syntax.toml:2: "),
        ("syntax.json", "{\"links\": [}\n", "syntax.json:1: "),
        ("server.toml", "[[crashes]]\nhost = \"10.0.0.1\"\nat = 1\n", "the server's host 10.0.0.1 cannot crash"),
    ],
)  # fmt: skip
def test_a_bad_schedule_is_one_line_on_stderr_and_exit_2(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    result = simnet("run", "--faults", str(path), *SMALL)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("simnet run: ") and message in line, line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--faults", "no/such/file.toml"], "no/such/file.toml: No such file"),
        (["--jitter", "gaussian:1ms"], "--jitter: unknown distribution 'gaussian'"),
        (["--jitter", "uniform:2ms:1ms"], "--jitter: uniform needs low <= high"),
        (["--short-io", "1"], "--short-io: a rate below 1"),
    ],
)
def test_bad_fault_options_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = simnet("run", *args, *SMALL)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert message in line, line


def test_sweep_under_loss_is_deterministic_and_passes() -> None:
    result = simnet("sweep", "--seeds", "0-4", "--loss", "0.05", "--check-determinism", *SMALL[:4])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 seeds in" in result.stdout
    assert "each run twice and compared byte for byte): 5 ok, 0 failing" in result.stdout


def test_sweep_rejects_a_bad_schedule_like_run(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[partitions]]\na = \"10.0.1.1\"\n")
    result = simnet("sweep", "--seeds", "0-1", "--faults", str(path))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("simnet sweep: ") and "bad.toml: partitions[0]: missing 'b'" in line, line
