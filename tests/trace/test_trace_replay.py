"""Exact replay: a recorded run replays through a fresh machine; the first difference is named."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trace_fakes import EchoMachine, make_buggy_machine, make_echo_machine, record_fake_run

from simnet.cli import main
from simnet.drivers.loop import run_direct
from simnet.drivers.replay import ReplayReport, replay_exact
from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import TraceHeader, read_trace
from simnet.trace.codec import replay_result


def recorded(tmp_path: Path, seed: int = 4, syscalls: int = 400) -> Path:
    path = tmp_path / f"run-{seed}.jsonl"
    record_fake_run(path, seed=seed, syscalls=syscalls)
    return path


@given(seed=st.integers(0, 2**32), syscalls=st.integers(1, 300))
@settings(max_examples=25, deadline=None)
def test_a_recorded_run_replays_exactly(seed: int, syscalls: int) -> None:
    buffer = io.BytesIO()
    count = record_fake_run(buffer, seed=seed, syscalls=syscalls)
    buffer.seek(0)
    report = replay_exact(buffer, make_echo_machine)
    assert report.ok and report.exited
    assert report.matched == count


def test_the_report_says_how_many_syscalls_matched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded(tmp_path)
    syscalls = sum(1 for _ in read_trace(path)[1]) - 1  # less the Exit record
    assert main(["replay", str(path), "--machine", "trace_fakes:make_echo_machine"]) == 0
    assert capsys.readouterr().out == f"{path}: {syscalls} syscalls matched; the machine exited as recorded\n"


def first_send_after(path: Path, sends: int) -> int:
    seen = 0
    for record in read_trace(path)[1]:
        if isinstance(record.request, sc.Send):
            seen += 1
            if seen > sends:
                return record.seq
    raise AssertionError("not enough sends in the trace")


def test_a_machine_that_sends_differently_diverges_at_that_send(tmp_path: Path) -> None:
    path = recorded(tmp_path)
    seq = first_send_after(path, 3)  # make_buggy_machine drops a byte from every send after the 3rd
    report = replay_exact(path, make_buggy_machine)
    d = report.divergence
    assert d is not None and not report.ok
    assert d.seq == seq and d.line == seq + 1
    assert isinstance(d.expected, sc.Send) and isinstance(d.actual, sc.Send)
    assert d.actual.data == d.expected.data[:-1]
    assert [r.seq for r in d.before] == list(range(seq - 5, seq))
    assert report.matched == seq - 1


def test_the_divergence_is_printed_with_the_records_before_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded(tmp_path)
    seq = first_send_after(path, 3)
    assert main(["replay", str(path), "--machine", "trace_fakes:make_buggy_machine", "--context", "3"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:{seq + 1}: divergence at seq {seq}: the machine asked for something else"
    assert out[1].startswith("  expected: Send(") and out[2].startswith("  actual:   Send(")
    assert out[3] == "  differs in: data"
    assert [line.split()[1] for line in out[5:]] == [str(s) for s in range(seq - 3, seq)]


class _Raising(EchoMachine):
    def __init__(self, after: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.after = after

    def step(self, result: Result) -> Any:
        self.after -= 1
        if self.after == 0:
            raise RuntimeError("state CLOSING: Recv on a closed connection")
        return super().step(result)


def test_a_machine_that_raises_is_reported_at_the_record_it_could_not_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = recorded(tmp_path)
    report = replay_exact(path, lambda h: _Raising(10, **h.server_config, **h.app_config))
    d = report.divergence
    assert d is not None and d.seq == 11 and d.actual is None
    assert d.raised == "RuntimeError: state CLOSING: Recv on a closed connection"
    assert d.traceback is not None and "Traceback" in d.traceback
    assert "the machine raised RuntimeError" in report.format().splitlines()[0]


def test_a_machine_that_exits_early_diverges(tmp_path: Path) -> None:
    path = recorded(tmp_path)

    class Quitter(EchoMachine):
        def step(self, result: Result) -> Any:
            return sc.Exit()

    report = replay_exact(path, lambda h: Quitter(**h.server_config, **h.app_config))
    assert report.divergence is not None and report.divergence.seq == 2
    assert report.divergence.actual == sc.Exit()


def test_a_trace_cut_at_a_line_boundary_replays_as_far_as_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = recorded(tmp_path).read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(full[:101]))  # header and 100 records, no Exit
    report = replay_exact(cut, make_echo_machine)
    assert report.ok and not report.exited and report.matched == 100
    assert main(["replay", str(cut), "--machine", "trace_fakes:make_echo_machine"]) == 0
    assert "cut short" in capsys.readouterr().out


def test_a_different_recorded_result_makes_the_machine_diverge(tmp_path: Path) -> None:
    # Replay checks requests, and the requests follow from the results: change a Recv's payload
    # and the echo that follows no longer matches the recorded Send.
    path = recorded(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"call":"Recv"' in line and '"ascii"' in line)
    obj = json.loads(lines[index])
    obj["ret"] = {"ascii": "X" + obj["ret"]["ascii"][1:]}
    lines[index] = json.dumps(obj) + "\n"
    path.write_text("".join(lines))
    report = replay_exact(path, make_echo_machine)
    assert report.divergence is not None
    assert isinstance(report.divergence.expected, sc.Send) and report.divergence.seq > index


def test_the_default_factory_replays_the_real_server_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = pytest.importorskip("simnet.server.machine")
    apps = pytest.importorskip("simnet.server.apps")
    from trace_fakes import FakeKernel

    from simnet.trace import Recorder, TraceWriter

    config = machine.ServerConfig(recv_size=512, port=8080)
    header = TraceHeader.create(backend="simnet", app="echo", server_config=config, seed=9)
    path = tmp_path / "real.jsonl"
    with TraceWriter(path, header) as writer:
        count = run_direct(Recorder(machine.ServerMachine(config, apps.make_app("echo")), writer), FakeKernel(9, 1500))
    report = replay_exact(path)
    assert report.ok and report.exited and report.matched == count
    assert main(["replay", str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: {count} syscalls matched")


def test_the_default_factory_refuses_an_unknown_app_as_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("simnet.server.machine")
    path = tmp_path / "t.jsonl"
    header = TraceHeader.create(backend="realnet", app="gopher", server_config={})
    path.write_text(json.dumps(header.to_json()) + "\n")
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:1: header: unknown app 'gopher'") and err.count("\n") == 1


def test_report_format_is_one_line_when_all_matched() -> None:
    header = TraceHeader.create(backend="simnet", app="echo", server_config={})
    report = ReplayReport(path="t.jsonl", header=header, matched=3, exited=True)
    assert report.format() == "t.jsonl: 3 syscalls matched; the machine exited as recorded"


# -- the quick path: a line's request compared as bytes, only its Result built -----------------------

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted((ROOT / "traces").glob("*.jsonl"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_the_quick_path_gives_the_careful_paths_result_or_stands_aside(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)[1:]
    quick = 0
    for seq, (line, record) in enumerate(zip(lines, read_trace(path)[1], strict=True), start=1):
        result = replay_result(line, seq, record.request)
        if result is not None:
            assert result == record.result and type(result.value) is type(record.result.value)  # type: ignore[union-attr]
            quick += 1
        elif type(record.request) is not sc.Exit:
            raise AssertionError(f"{path.name}:{seq + 1}: a record took the careful path: {line!r}")
    assert quick == len(lines) - 1  # all but Exit


def test_the_quick_path_stands_aside_for_any_other_request() -> None:
    line = b'{"seq":7,"t":5,"call":"Recv","args":{"fd":5,"size":4096},"ret":{"ascii":"hi"}}\n'
    assert replay_result(line, 7, sc.Recv(fd=5, size=4096)) == Result(value=b"hi", now=5)
    for other in (sc.Recv(fd=5, size=4095), sc.Recv(fd=6, size=4096), sc.Close(fd=5), sc.Exit()):
        assert replay_result(line, 7, other) is None
    assert replay_result(line, 8, sc.Recv(fd=5, size=4096)) is None  # not the seq expected


def test_args_written_another_way_are_compared_as_values(tmp_path: Path) -> None:
    # Keys in another order and spaces: not the bytes the writer makes, the same values. The
    # quick path stands aside and the careful one finds the match.
    path = recorded(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    rewritten = [lines[0]]
    for line in lines[1:]:
        obj = json.loads(line)
        obj["args"] = dict(reversed(obj["args"].items()))
        rewritten.append(json.dumps(obj) + "\n")
    other = tmp_path / "rewritten.jsonl"
    other.write_text("".join(rewritten))
    records = list(read_trace(other)[1])
    assert records[2] == list(read_trace(path)[1])[2]
    assert replay_result(rewritten[3].encode(), 3, records[2].request) is None
    report, original = replay_exact(other, make_echo_machine), replay_exact(path, make_echo_machine)
    assert report.ok and report.exited and report.matched == original.matched
