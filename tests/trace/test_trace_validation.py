"""The reader is strict: a malformed trace gives one line, `path:line: what is wrong`, exit 2.

Each malformed trace here is a sound one with one thing broken at a known line, so every test
also checks that the line number points at the break.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trace_fakes import record_fake_run

from simnet.server import syscalls as sc
from simnet.server.syscalls import Result
from simnet.trace import TraceError, TraceHeader, read_trace
from simnet.trace.codec import header_line, record_line
from simnet.cli.trace import add_replay_parser, add_show_parser

HERE = Path(__file__).parent


def sound_lines(seed: int = 1, syscalls: int = 60) -> list[str]:
    buffer = io.BytesIO()
    record_fake_run(buffer, seed=seed, syscalls=syscalls)
    return buffer.getvalue().decode().splitlines(keepends=True)


SOUND = sound_lines()


def run_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="simnet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_replay_parser(sub)
    add_show_parser(sub)
    args = parser.parse_args(argv)
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_bad_input(path: Path, line: int, capsys: pytest.CaptureFixture[str], problem: str = "") -> str:
    """Both commands refuse the file with exit 2 and the same single `path:line:` line."""
    with pytest.raises(TraceError) as caught:
        header, records = read_trace(path)
        for _ in records:
            pass
    assert caught.value.line == line, str(caught.value)
    assert problem in caught.value.problem
    for argv in (["show", str(path)], ["replay", str(path), "--machine", "trace_fakes:make_echo_machine"]):
        code, out, err = run_command(argv, capsys)
        assert code == 2, (argv, out, err)
        assert re.fullmatch(rf"{re.escape(str(path))}:{line}: [^\n]+\n", err), err
        assert "Traceback" not in err
        assert out == ""
    return caught.value.problem


def write(tmp_path: Path, lines: list[str] | str, name: str = "t.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(lines if isinstance(lines, str) else "".join(lines))
    return path


def edit(lines: list[str], index: int, change: Callable[[dict[str, Any]], None]) -> list[str]:
    obj = json.loads(lines[index])
    change(obj)
    return lines[:index] + [json.dumps(obj) + "\n"] + lines[index + 1 :]


def test_a_sound_trace_reads_and_both_commands_accept_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, SOUND)
    header, records = read_trace(path)
    assert [r.seq for r in records] == list(range(1, len(SOUND)))
    assert run_command(["show", str(path)], capsys)[0] == 0
    assert run_command(["replay", str(path), "--machine", "trace_fakes:make_echo_machine"], capsys)[0] == 0


# --- one test per kind of damage, named for what the user is told ------------------------------


def test_an_empty_file_has_no_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_bad_input(write(tmp_path, ""), 1, capsys, "empty file")


def test_some_other_json_lines_file_is_not_a_simnet_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_bad_input(write(tmp_path, ['{"hello": 1}\n']), 1, capsys, "not a simnet trace")


@pytest.mark.parametrize("version", [0, 2, "1", 1.0, None, True])
def test_an_unknown_version_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], version: object
) -> None:
    lines = edit(SOUND, 0, lambda h: h.update(version=version))
    assert_bad_input(write(tmp_path, lines), 1, capsys, "unsupported trace version")


@pytest.mark.parametrize("field", ["backend", "app", "app_config", "server_config", "seed", "clock_origin"])
def test_a_header_missing_a_field_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    lines = edit(SOUND, 0, lambda h: h.pop(field))
    assert_bad_input(write(tmp_path, lines), 1, capsys, f"missing field {field!r}")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"backend": "linux"}, "'backend' must be one of"),
        ({"seed": "7"}, "'seed' must be an integer or null"),
        ({"clock_origin": 1.5}, "'clock_origin' must be an integer"),
        ({"app_config": []}, "'app_config' must be an object"),
        ({"colour": "blue"}, "unknown field 'colour'"),
    ],
)
def test_a_header_with_a_wrong_field_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], problem: str
) -> None:
    assert_bad_input(write(tmp_path, edit(SOUND, 0, lambda h: h.update(change))), 1, capsys, problem)


def test_a_cut_off_last_line_is_reported_as_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = SOUND[:10] + [SOUND[10][:25]]
    assert_bad_input(write(tmp_path, lines), 11, capsys, "truncated last line")


def test_a_complete_last_record_without_its_newline_is_still_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The writer ends each record in the same write as its newline: no newline, no guarantee.
    lines = SOUND[:10] + [SOUND[10].rstrip("\n")]
    assert_bad_input(write(tmp_path, lines), 11, capsys, "truncated last line")


def test_bad_json_is_reported_with_its_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = SOUND[:5] + ['{"seq": 5, "t": 1,, "call": "Close"}\n'] + SOUND[6:]
    problem = assert_bad_input(write(tmp_path, lines), 6, capsys, "bad JSON")
    assert "column 19" in problem


def test_an_empty_line_is_not_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_bad_input(write(tmp_path, SOUND[:5] + ["\n"] + SOUND[5:]), 6, capsys, "empty line")


@pytest.mark.parametrize("field", ["seq", "t", "call", "args"])
def test_a_record_missing_a_field_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str
) -> None:
    assert_bad_input(
        write(tmp_path, edit(SOUND, 4, lambda r: r.pop(field))), 5, capsys, f"missing field {field!r}"
    )


def test_a_record_with_neither_ret_nor_err_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = edit(SOUND, 4, lambda r: (r.pop("ret", None), r.pop("err", None)))
    assert_bad_input(write(tmp_path, lines), 5, capsys, "missing field 'ret'")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.update(t="5"), "'t' must be an integer"),
        (lambda r: r.update(t=5.0), "'t' must be an integer"),
        (lambda r: r.update(seq=True), "sequence number"),
        (lambda r: r.update(call="Frobnicate"), "unknown call 'Frobnicate'"),
        (lambda r: r.update(call=["Close"]), "'call' must be a string"),
        (lambda r: r.update(args=[]), "'args' must be an object"),
        (lambda r: r["args"].update(fd="3"), "argument 'fd' must be an integer"),
        (lambda r: r["args"].update(fd=False), "argument 'fd' must be an integer"),
        (lambda r: r["args"].update(extra=1), "unknown argument 'extra'"),
        (lambda r: r["args"].pop("fd"), "missing argument 'fd'"),
        (lambda r: r.update(err="again"), "'err' must be an errno name"),
        (lambda r: r.update(err=None), "'err' must be an errno name"),
        (lambda r: r.update(ret=1.5), "is not a trace value"),
        (lambda r: r.update(shutdown="yes"), "'shutdown' must be true or false"),
        (lambda r: r.update(colour="blue"), "unknown field 'colour'"),
    ],
)
def test_a_record_with_a_wrong_type_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable[[dict[str, Any]], None], problem: str
) -> None:
    index = next(i for i, line in enumerate(SOUND) if '"call":"Close"' in line)
    assert_bad_input(write(tmp_path, edit(SOUND, index, change)), index + 1, capsys, problem)


@pytest.mark.parametrize(
    "payload",
    [
        {"b64": "not base64!"},
        {"b64": "QUJD="},
        {"ascii": "caf\u00e9"},
        {"hex": "00"},
        "GET /",
        {"ascii": 5},
        {},
    ],
)
def test_a_bad_payload_encoding_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: object
) -> None:
    index = next(i for i, line in enumerate(SOUND) if '"call":"Send"' in line)
    lines = edit(SOUND, index, lambda r: r["args"].update(data=payload))
    assert_bad_input(write(tmp_path, lines), index + 1, capsys, "payload")


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_sequence_numbers_must_be_consecutive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], delta: int
) -> None:
    lines = edit(SOUND, 9, lambda r: r.update(seq=r["seq"] + delta))
    assert_bad_input(write(tmp_path, lines), 10, capsys, "where 9 was expected")


def test_a_duplicated_line_breaks_the_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_bad_input(
        write(tmp_path, SOUND[:8] + [SOUND[7]] + SOUND[8:]), 9, capsys, "sequence number 7 where 8"
    )


def test_nothing_may_follow_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert json.loads(SOUND[-1])["call"] == "Exit"
    extra = json.dumps({"seq": len(SOUND), "t": 1, "call": "Close", "args": {"fd": 3}, "ret": None}) + "\n"
    assert_bad_input(write(tmp_path, SOUND + [extra]), len(SOUND) + 1, capsys, "after Exit")


def test_the_exit_record_carries_no_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = edit(SOUND, len(SOUND) - 1, lambda r: r.update(ret=None))
    assert_bad_input(write(tmp_path, lines), len(SOUND), capsys, "Exit record has no result")


# --- hypothesis: random damage at a random place -------------------------------------------------


def _damage(data: st.DataObject) -> tuple[list[str] | str, int]:
    """A sound trace with one random thing broken; returns it and the line that must be named."""
    lines = sound_lines(seed=data.draw(st.integers(0, 5)), syscalls=30)
    index = data.draw(st.integers(0, len(lines) - 1), label="line index")
    kind = data.draw(
        st.sampled_from(["truncate", "bad json", "version", "drop field", "wrong type", "payload", "seq"])
    )
    if kind == "truncate":
        # At least one character of the line, never its newline: a cut at a line boundary
        # leaves a shorter trace that is sound (see test_trace_kill.py).
        cut = data.draw(st.integers(1, len(lines[index]) - 1), label="cut")
        return "".join(lines[:index]) + lines[index][:cut], index + 1
    if kind == "bad json":
        text = lines[index].rstrip("\n")
        broken = data.draw(
            st.sampled_from([text[:-1], text + "}", text.replace(":", " ", 1), "{" + text, text + ",", "nul"])
        )
        return lines[:index] + [broken + "\n"] + lines[index + 1 :], index + 1
    if kind == "version" or index == 0:
        version = data.draw(st.integers().filter(lambda v: v != 1) | st.text() | st.none())
        return edit(lines, 0, lambda h: h.update(version=version)), 1
    obj = json.loads(lines[index])
    if kind == "drop field":
        key = data.draw(
            st.sampled_from(
                sorted(
                    k for k in obj if k in ("seq", "t", "call", "args") or (k == "ret" and "err" not in obj)
                )
            )
        )
        return edit(lines, index, lambda r: r.pop(key)), index + 1
    if kind == "wrong type":
        key = data.draw(
            st.sampled_from(sorted(k for k in obj if k in ("seq", "t", "args", "shutdown", "err")))
        )
        bad = data.draw(
            st.sampled_from(["x", 1.5, [1], {"a": 1}, True] if key != "shutdown" else ["x", 1, None])
        )
        return edit(lines, index, lambda r: r.update({key: bad})), index + 1
    if kind == "payload":
        sends = [i for i, line in enumerate(lines) if '"call":"Send"' in line]
        if not sends:
            return edit(lines, index, lambda r: r.update(seq=-1)), index + 1
        index = data.draw(st.sampled_from(sends))
        bad = data.draw(st.sampled_from([{"b64": "***"}, {"ascii": "\u00ff"}, {"raw": "x"}, 7, ["a"]]))
        return edit(lines, index, lambda r: r["args"].update(data=bad)), index + 1
    delta = data.draw(st.sampled_from([-2, -1, 1, 2]))
    return edit(lines, index, lambda r: r.update(seq=r["seq"] + delta)), index + 1


@given(st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_damage_gives_one_clear_line_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    damaged, line = _damage(data)
    assert_bad_input(write(tmp_path, damaged), line, capsys)


# --- the same through the `simnet` command, as a user runs it -----------------------------------

# The console script's body, run with -c so that the working directory (and trace_fakes in it) is
# on sys.path for --machine.
SIMNET_COMMAND = [sys.executable, "-c", "import sys; from simnet.cli import main; sys.exit(main())"]


def test_the_simnet_command_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, SOUND[:3] + ['{"seq": 3, "t": 1\n'])
    for command in ("show", "replay"):
        proc = subprocess.run(
            [*SIMNET_COMMAND, command, str(path)]
            + (["--machine", "trace_fakes:make_echo_machine"] if command == "replay" else []),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=HERE,
        )
        assert proc.returncode == 2
        assert proc.stderr == f"{path}:4: bad JSON: " + proc.stderr.split(": bad JSON: ", 1)[1]
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_missing_files_and_bad_factories_are_bad_input_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    for argv in (["show", str(missing)], ["replay", str(missing)]):
        code, _, err = run_command(argv, capsys)
        assert (code, err) == (2, f"{missing}: cannot read: No such file or directory\n")
    path = write(tmp_path, SOUND)
    for spec, problem in [
        ("nocolon", "expected MODULE:FACTORY"),
        ("no_such_module:f", "cannot import"),
        ("trace_fakes:nothing", "no callable"),
    ]:
        code, _, err = run_command(["replay", str(path), "--machine", spec], capsys)
        assert code == 2 and problem in err and err.count("\n") == 1


def test_a_header_the_factory_cannot_take_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, edit(SOUND, 0, lambda h: h["app_config"].update(colour="blue")))
    code, _, err = run_command(["replay", str(path), "--machine", "trace_fakes:make_echo_machine"], capsys)
    assert code == 2 and err.startswith(f"{path}:1: cannot build the machine from this header: TypeError")


# --- streaming -------------------------------------------------------------------------------


class GeneratedTrace:
    """A file object whose lines are made on demand: it has no `read`, so a reader that tried
    to take the whole file at once would fail, and nothing but the current line exists."""

    name = "generated.jsonl"

    def __init__(self, records: int) -> None:
        header = TraceHeader.create(backend="simnet", app="echo", server_config={})
        self._lines = self._make(header, records)

    @staticmethod
    def _make(header: TraceHeader, records: int) -> Iterator[bytes]:
        yield header_line(header)
        payload = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 8
        for seq in range(1, records + 1):
            if seq % 2:
                yield record_line(seq, sc.Recv(fd=5, size=4096), Result(value=payload, now=seq * 1000))
            else:
                yield record_line(
                    seq, sc.Send(fd=5, data=payload), Result(value=len(payload), now=seq * 1000)
                )

    def readline(self) -> bytes:
        return next(self._lines, b"")

    def __iter__(self) -> Iterator[bytes]:
        return self._lines


def test_reading_a_long_trace_takes_constant_memory() -> None:
    records = 50_000  # about 30 MB of trace text
    tracemalloc.start()
    try:
        header, stream = read_trace(GeneratedTrace(records))  # type: ignore[arg-type]
        count = 0
        for _ in stream:
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == records
    assert peak < 2_000_000, f"peak {peak} bytes while reading: the reader is keeping records"
