"""`simnet replay --sim T -- python app.py`: the committed program traces' clients re-run against
their programs on simnet.aio -- as recorded, under loss and latency, against a program changed
after recording -- and bad input as one line with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from simnet.aio.resim import extract_program_clients
from simnet.sim.resim import HALF_CLOSE

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "record" / "programs"
TRACES = REPO / "traces" / "aio"
STREAMS = (TRACES / "streams_curl.jsonl", PROGRAMS / "streams_app.py", "18801")
AIOHTTP = (TRACES / "aiohttp_curl.jsonl", PROGRAMS / "aiohttp_app.py", "18802")
WRK = (TRACES / "streams_wrk.jsonl", PROGRAMS / "streams_app.py", "18803")

needs_311 = pytest.mark.skipif(
    sys.version_info[:2] != (3, 11), reason="recorded on 3.11: asyncio's calls differ by version"
)


def resim(trace: Path, program: Path, port: str, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    if program.name.startswith("aiohttp"):
        pytest.importorskip("aiohttp")
    if not trace.exists():
        pytest.skip(f"{trace.name} is not committed (traces/aio/record.sh records it where wrk is installed)")
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", "replay", "--sim", str(trace), *options, "--", "python", str(program),
         port],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO), **env),
    )  # fmt: skip


def test_a_program_traces_clients_are_its_accepted_connections() -> None:
    recorded = extract_program_clients(str(STREAMS[0]))
    # curl, curl with two requests on one connection, http.client: each half-closes when done.
    assert [len(c.response) for c in recorded.clients] == [84, 168, 84]
    assert [c.ending for c in recorded.clients] == [HALF_CLOSE] * 3
    assert [c.chunks[0].data.split(b"\r\n")[0] for c in recorded.clients] == [b"GET / HTTP/1.1"] * 3
    (listener,) = recorded.listeners
    assert (listener.host, listener.port) == ("127.0.0.1", 18801)
    assert recorded.conn_listener == (0, 0, 0)


@needs_311
@pytest.mark.parametrize(("trace", "program", "port"), [STREAMS, AIOHTTP, WRK], ids=["streams", "aiohttp", "wrk"])
def test_a_committed_program_trace_resimulates_equal_as_recorded(trace: Path, program: Path, port: str) -> None:
    proc = resim(trace, program, port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = next(line for line in proc.stdout.splitlines() if line.startswith("total: "))
    assert " 0 differ;" in total and "(seed 0, latency 0ms)" in total, total
    assert "program: stopped by SIGINT once its clients were done; it exited (status 0)" in proc.stdout


@needs_311
@pytest.mark.parametrize(
    ("case", "options"),
    [
        # TCP repairs the loss: the program answers the same bytes, later.
        (STREAMS, ("--loss", "0.1", "--latency", "5ms", "--seed", "1")),
        (WRK, ("--loss", "0.02", "--latency", "1ms", "--seed", "2")),
        # aiohttp's responses carry the Date: a lost SYN (1 s to retransmit) would move it to
        # the next second, which the report rightly calls a difference. Latency moves it by ms.
        (AIOHTTP, ("--latency", "2ms", "--seed", "1")),
    ],
    ids=["streams-loss", "wrk-loss", "aiohttp-latency"],
)
def test_a_committed_program_trace_resimulates_equal_under_perturbation(
    case: tuple[Path, Path, str], options: tuple[str, ...]
) -> None:
    proc = resim(*case, *options)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " 0 differ;" in proc.stdout


@needs_311
def test_a_program_changed_after_recording_differs_with_exit_1() -> None:
    proc = resim(*STREAMS, SIMNET_TEST_BODY="goodbye\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    first = next(line for line in lines if line.startswith("#1 "))
    # "Content-Length: 19" became "Content-Length: 8": byte 33 is where the streams part.
    assert "DIFFERS: first difference at byte 33" in first, first
    assert any(line.startswith("total: 3 connections: 0 equal, 0 reset (prefix matches), 3 differ") for line in lines)


@needs_311
def test_seeds_rerun_the_program_once_per_seed() -> None:
    proc = resim(*STREAMS, "--seeds", "0-2", "--latency", "1ms", "--loss", "0.05")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("seed ")] == [
        f"seed {s}: total: 3 connections: 3 equal, 0 reset (prefix matches), 0 differ; 336 response bytes "
        f"recorded, 336 simulated (seed {s}, latency 1ms, loss 0.05)"
        for s in range(3)
    ]
    assert proc.stdout.splitlines()[-1] == "seeds: 3 run, 3 equal, 0 differ"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--loss", "2"], "simnet replay: --loss '2': expected a fraction between 0 and 1"),
        (["--latency", "3 parsecs"], "simnet replay: --latency '3 parsecs' is not a duration"),
        (["--jitter", "bogus"], "simnet replay: --jitter: unknown distribution 'bogus'"),
        (["--seeds", "x"], "simnet replay: --seeds 'x': expected seeds such as 0-9"),
        (["--seeds", "0-1", "--seed", "3"], "simnet replay: --seeds runs one seed after another"),
        (["--machine", "a:b"], "simnet replay: --machine replays the server machine, not a program"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(words: list[str], message: str) -> None:
    proc = resim(*STREAMS, *words)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(message), proc.stderr


def test_a_trace_of_another_program_or_a_missing_program_is_bad_input(tmp_path: Path) -> None:
    other = resim(STREAMS[0], PROGRAMS / "aiohttp_app.py", "18801")
    assert other.returncode == 2 and other.stderr.count("\n") == 1
    assert "recorded from program 'streams_app.py', not 'aiohttp_app.py'" in other.stderr
    missing = resim(STREAMS[0], tmp_path / "nope.py", "18801")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such program" in missing.stderr


def test_a_program_that_exits_before_listening_is_bad_input(tmp_path: Path) -> None:
    early = tmp_path / "streams_app.py"  # the recorded program's name, but it does nothing
    early.write_text("print('bye')\n")
    proc = resim(STREAMS[0], early, "18801")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1 and "the program exited (status 0) without listening" in proc.stderr


def test_a_truncated_trace_is_bad_input(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    text = STREAMS[0].read_text()
    cut.write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + '\n{"seq": 99, "t"')
    proc = resim(cut, *STREAMS[1:])
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith(f"{cut}:")


def test_program_only_options_are_refused_for_a_machine_trace(capsys: pytest.CaptureFixture[str]) -> None:
    from simnet.cli import main

    machine_trace = str(REPO / "traces" / "wrk.jsonl")
    assert main(["replay", "--sim", machine_trace, "--loss", "0.1"]) == 2
    assert capsys.readouterr().err == (
        "simnet replay: --loss applies only to a program's re-simulation (simnet replay --sim TRACE -- python app.py)\n"
    )
    assert main(["replay", str(STREAMS[0]), "--seeds", "0-3", "--", "python", str(STREAMS[1])]) == 2
    assert capsys.readouterr().err == "simnet replay: --seeds applies only to a re-simulation: add --sim\n"
