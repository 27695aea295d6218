"""Re-simulation: a recorded run's clients, re-run in simnet, get the recorded response streams.

The apps are deterministic functions of their input streams, so whatever the perturbation --
buffer sizes, latency, seed, send timing -- every connection that was not reset must get exactly
the recorded response bytes; a reset connection may be cut at another byte, but one stream must
be a prefix of the other.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simnet.drivers.replay import replay_exact
from simnet.sim.resim import (
    CLOSE,
    CLOSE_ON_EOF,
    DIFFERS,
    EQUAL,
    HALF_CLOSE,
    RESET,
    RESET_PREFIX,
    SERVER_CLOSE,
    extract_clients,
    resimulate,
)
from simnet.sim.run import RunConfig
from simnet.sim.workload import Workload
from simnet.trace import read_trace
from simnet.cli import main
from simnet.units import parse_duration_ns as parse_duration

from ._recording import Script, get, post_echo, record_scripted, record_workload, rewrite_records

ROOT = Path(__file__).resolve().parents[2]


def http_scripts() -> list[Script]:
    return [
        # keep-alive and pipelining, a response far larger than the buffers, then Connection: close
        Script([("send", get("/") + get("/bytes/200000") + post_echo(b"x" * 3000)), ("read", 203000),
                ("wait", 0.01), ("send", get("/bytes/50000", close=True)), ("read_all",), ("close",)]),
        # half-close while a large response is still to come
        Script([("send", get("/bytes/100000")), ("shut_wr",), ("read_all",), ("close",)], start=0.002),
        # reset mid-response
        Script([("send", get("/bytes/500000")), ("read", 10000), ("reset",)], start=0.004),
        # request and FIN together: the server reads the EOF, then its response is refused (RST)
        Script([("send", get("/bytes/100000")), ("close",)], start=0.006),
        # a request trickled in three pieces, then idle until the keep-alive timeout closes it
        Script([("send", b"GET /bytes/70000 HT"), ("wait", 0.02), ("send", b"TP/1.1\r\nHost: x\r\n"),
                ("wait", 0.01), ("send", b"\r\n"), ("read_all",), ("close",)], start=0.001),
    ]  # fmt: skip


ENDINGS = [CLOSE_ON_EOF, SERVER_CLOSE, HALF_CLOSE, RESET, CLOSE]  # in order of accept


@pytest.fixture(scope="module")
def http_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resim") / "http.jsonl"
    return record_scripted(path, http_scripts(), rcvbuf=8192, sndbuf=8192)


@pytest.fixture(scope="module")
def echo_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resim") / "echo.jsonl"
    blob = bytes(range(256)) * 400  # not ASCII: the trace holds it as base64
    scripts = [
        Script([("send", b"hello "), ("wait", 0.003), ("send", b"world"), ("read", 11), ("send", blob),
                ("shut_wr",), ("read_all",), ("close",)]),
        Script([("send", blob * 3), ("read", 5000), ("reset",)], start=0.001),
        Script([("send", b"ping"), ("read", 4), ("wait", 0.05), ("send", b"pong"), ("read", 4), ("close",)],
               start=0.002),
    ]  # fmt: skip
    return record_scripted(path, scripts, app="echo", rcvbuf=4096, sndbuf=8192)


def assert_streams_equal(report: Any) -> None:
    for conn in report.connections:
        if conn.ending in (RESET, CLOSE):
            assert conn.status in (EQUAL, RESET_PREFIX), conn.format()
        else:
            assert conn.status == EQUAL, conn.format()
            assert conn.received_bytes == conn.recorded_bytes
    assert report.ok and report.finished, report.format()


def test_the_recorded_http_clients_end_the_way_they_did(http_trace: Path) -> None:
    header, recs = read_trace(http_trace)
    assert [c.ending for c in extract_clients(recs, origin=header.clock_origin)] == ENDINGS


def test_an_http_trace_resimulates_to_the_recorded_streams(http_trace: Path) -> None:
    report = resimulate(http_trace)
    assert [c.ending for c in report.connections] == ENDINGS
    assert_streams_equal(report)
    assert [c.status for c in report.connections if c.ending not in (RESET, CLOSE)] == [EQUAL] * 3
    assert report.connections[0].recorded_bytes > 250_000


PERTURBATIONS = [
    {"rcvbuf": 4096, "sndbuf": 4096},
    {"latency": "3ms"},
    {"latency": 0.0002, "seed": 7, "rcvbuf": 4096, "sndbuf": 65536},
    {"rcvbuf": 1 << 20, "sndbuf": 1 << 20},
    {"timing": "asap", "latency": "1ms"},
    {"pace_reads": False, "seed": 3},
]


@pytest.mark.parametrize("perturb", PERTURBATIONS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_perturbed_resimulations_still_give_the_recorded_streams(
    http_trace: Path, perturb: dict[str, Any]
) -> None:
    report = resimulate(http_trace, **perturb)
    assert_streams_equal(report)


@pytest.mark.parametrize(
    "perturb", [{}, {"rcvbuf": 4096, "sndbuf": 4096, "latency": "2ms"}, {"timing": "asap"}]
)
def test_an_echo_trace_resimulates_to_the_recorded_streams(echo_trace: Path, perturb: dict[str, Any]) -> None:
    report = resimulate(echo_trace, **perturb)
    # The third client's FIN was still in flight when the recorded server shut down: the server
    # closed it, at shutdown, so its re-simulation ends when it has read its response.
    assert [c.ending for c in report.connections] == [HALF_CLOSE, RESET, SERVER_CLOSE]
    assert_streams_equal(report)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_workloads_resimulate_to_the_recorded_streams(tmp_path: Path, seed: int) -> None:
    workload = Workload(
        clients=12, requests=4, pipeline=2, response_size=30000, think_time=0.01,
        slow_readers=0.2, early_closers=0.1, resetters=0.1,
    )  # fmt: skip
    config = RunConfig(seed=seed, workload=workload, rcvbuf=8192, sndbuf=8192)
    path = record_workload(tmp_path / "w.jsonl", config)
    for perturb in ({}, {"rcvbuf": 4096, "sndbuf": 4096, "latency": "2ms", "seed": seed}):
        assert_streams_equal(resimulate(path, **perturb))


def test_the_simulated_trace_replays_exactly_and_resimulates_again(http_trace: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.jsonl"
    report = resimulate(http_trace, trace_out=out, latency="1ms", rcvbuf=4096)
    assert report.ok
    replayed = replay_exact(out)
    assert replayed.ok and replayed.exited, replayed.format()
    header, _ = read_trace(out)
    assert (header.backend, header.seed, header.app) == ("simnet", 0, "http")
    assert header.server_config["rcvbuf"] == 4096
    # Its clients are the same clients: re-simulating the simulation gives its streams again.
    assert_streams_equal(resimulate(out))


def test_the_same_seed_gives_a_byte_identical_trace(http_trace: Path, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    args = ["replay", "--sim", str(http_trace), "--seed", "5", "--latency", "700us", "--sndbuf", "4096"]
    assert main([*args, "--trace", str(a)]) == 0
    assert main([*args, "--trace", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    # ... whatever the hash seed of the process.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from simnet.cli import main; sys.exit(main())", *args, "--trace", str(c)],
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert c.read_bytes() == a.read_bytes()


def test_the_command_prints_a_line_per_connection_and_a_total(
    http_trace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--sim", str(http_trace), "--rcvbuf", "4096", "--latency", "1ms"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ")[0] for line in out[:5]] == ["#1", "#2", "#3", "#4", "#5"]
    assert out[0].endswith("bytes, equal") and "(close-on-eof)" in out[0]
    assert "reset (prefix matches)" in out[3]
    assert out[5].startswith("total: 5 connections: 3 equal, 2 reset (prefix matches), 0 differ;")
    assert "latency 1ms, rcvbuf 4096" in out[5]


def test_the_resimulation_writes_a_pcap_of_its_segments(
    http_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.kernel.test_pcap import check_packet, packets

    out = tmp_path / "resim.pcap"
    assert main(["replay", "--sim", "--latency", "1ms", "--pcap", str(out), str(http_trace)]) == 0
    fields = [check_packet(packet) for _, packet in packets(out.read_bytes())]  # checksums verify
    assert fields and sum(1 for f in fields if f["flags"] & 0x02 and not f["flags"] & 0x10) == 5  # a SYN each
    assert any(b"HTTP/1.1 200" in bytes(f["data"]) for f in fields)
    capsys.readouterr()
    assert main(["replay", "--sim", "--pcap", str(tmp_path / "no" / "x.pcap"), str(http_trace)]) == 2
    assert capsys.readouterr().err.startswith(f"simnet replay: --pcap {tmp_path / 'no' / 'x.pcap'}: No such file")
    assert main(["replay", "--pcap", str(out), str(http_trace)]) == 2  # only a re-simulation has segments
    assert "--pcap applies only to a re-simulation" in capsys.readouterr().err


def corrupt_send(obj: dict[str, Any], fd: int, nth: int, state: dict[str, int]) -> dict[str, Any]:
    """Flip one byte in the `nth` Send on `fd` that moved bytes."""
    if obj.get("call") == "Send" and obj["args"]["fd"] == fd and obj.get("ret"):
        state["seen"] = state.get("seen", 0) + 1
        if state["seen"] == nth:
            payload = obj["args"]["data"]
            if "ascii" in payload:
                text = payload["ascii"]
                payload["ascii"] = text[:5] + ("X" if text[5] != "X" else "Y") + text[6:]
            else:
                raw = bytearray(base64.b64decode(payload["b64"]))
                raw[5] ^= 0xFF
                payload["b64"] = base64.b64encode(bytes(raw)).decode()
    return obj


def test_a_corrupted_response_fails_naming_its_connection(
    http_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header, recs = read_trace(http_trace)
    third = extract_clients(recs, origin=header.clock_origin)[2]  # the half-closing client
    bad = tmp_path / "bad.jsonl"
    state: dict[str, int] = {}
    rewrite_records(http_trace, bad, lambda obj: corrupt_send(obj, third.fd, 3, state))
    assert state["seen"] >= 3
    assert main(["replay", "--sim", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    failed = [line for line in lines if "DIFFERS" in line]
    host, port = third.peer
    assert len(failed) == 1 and failed[0].startswith(f"#3 {host}:{port} (half-close): DIFFERS")
    assert "first difference at byte" in failed[0]
    assert "1 differ" in lines[-1]
    report = resimulate(bad)
    assert [c.status for c in report.connections][2] == DIFFERS and not report.ok


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text[: len(text) // 2], "truncated last line"),
        (lambda text: text.replace('"call":"Recv"', '"call":"Rcv"', 1), "unknown call 'Rcv'"),
        (lambda text: text.replace('"app":"http"', '"app":"gopher"', 1), "unknown app 'gopher'"),
        (lambda text: "", "empty file"),
    ],
    ids=["truncated", "unknown-call", "unknown-app", "empty"],
)
def test_a_malformed_trace_is_one_line_and_exit_2(
    http_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Any, message: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(damage(http_trace.read_text()))
    out = tmp_path / "out.jsonl"
    assert main(["replay", "--sim", str(bad), "--trace", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}:") and message in lines[0], captured.err
    assert not out.exists()  # nothing is simulated (or written) from a bad trace


def test_an_inconsistent_trace_is_bad_input(
    http_trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"

    def move_recv(obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("call") == "Recv" and obj.get("ret") and "fd" in obj["args"]:
            obj["args"]["fd"] = 99
        return obj

    rewrite_records(http_trace, bad, move_recv)
    assert main(["replay", "--sim", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Recv on fd 99, which no Accept returned" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--latency", "3 parsecs"], "simnet replay: --latency '3 parsecs' is not a duration"),
        (["--rcvbuf", "0"], "simnet replay: --rcvbuf '0': expected a positive number of bytes"),
        (["--sndbuf", "lots"], "simnet replay: --sndbuf 'lots': expected a positive number of bytes"),
        (["--seed", "x"], "simnet replay: --seed 'x': expected an integer"),
        (["--trace", "/nonexistent/dir/out.jsonl"], "/nonexistent/dir/out.jsonl: cannot write:"),
        (["--machine", "x:y"], "simnet replay: --machine cannot be combined with --sim"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    http_trace: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["replay", "--sim", str(http_trace), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err


def test_perturbation_options_need_sim(http_trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(http_trace), "--latency", "1ms"]) == 2
    assert capsys.readouterr().err == "simnet replay: --latency applies only to a re-simulation: add --sim\n"


def test_a_missing_trace_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--sim", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err.startswith(f"{tmp_path / 'nope.jsonl'}: cannot read:")


@pytest.mark.parametrize(
    "text, ns",
    [("1ms", 1_000_000), ("250us", 250_000), ("250µs", 250_000), ("0.5s", 500_000_000), ("2", 2_000_000_000),
     ("1.5ms", 1_500_000), ("7ns", 7), (".25s", 250_000_000), ("0", 0)],
)  # fmt: skip
def test_durations(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "ms", "1 parsec", "-1ms", "1e3ms", "1.2.3s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
