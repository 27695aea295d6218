"""`realnet serve` argument handling: every mistake is one line on stderr and exit status 2."""

from __future__ import annotations

import socket

import pytest

from realnet.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "a command is required"),
        (["serve"], "required: --app"),
        (["serve", "--app", "ftp"], "invalid choice: 'ftp'"),
        (["serve", "--app", "http", "--port", "65536"], "port must be 0..65535"),
        (["serve", "--app", "http", "--port", "eighty"], "expected a port number"),
        (["serve", "--app", "http", "--host", "example.com"], "expected an IPv4 address"),
        (["serve", "--app", "http", "--idle-timeout", "-1"], "--idle-timeout"),
        (["serve", "--app", "http", "--output-cap", "0"], "--output-cap"),
        (["serve", "--app", "http", "--backlog", "-1"], "'backlog' must be >= 0"),
        (["serve", "--app", "echo", "--max-body-bytes", "10"], "--max-body-bytes: only for --app http"),
        (["serve", "--app", "http", "--no-such-flag"], "unrecognized arguments"),
    ],
)
def test_bad_arguments(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err


def test_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--app", "http", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"realnet: cannot listen on 127.0.0.1:{port}: bind: EADDRINUSE (Address already in use)\n"


def test_address_not_local(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--app", "echo", "--port", "0", "--host", "192.0.2.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("realnet: cannot listen on 192.0.2.1:0: bind: EADDRNOTAVAIL"), err


def test_record_into_unwritable_place(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["serve", "--app", "http", "--port", "0", "--record", str(blocker / "t.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("realnet: cannot write ") and err.count("\n") == 1, err


def test_a_machine_failure_is_one_line_and_the_trace_keeps_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    import realnet.server
    from simnet.drivers.replay import replay_exact
    from simnet.server.machine import ServerMachine

    class Failing(ServerMachine):
        def step(self, result):  # type: ignore[no-untyped-def]
            if self.stats.syscalls >= 5:
                raise RuntimeError("boom")
            return super().step(result)

    monkeypatch.setattr(realnet.server, "ServerMachine", Failing)
    trace = tmp_path / "t.jsonl"
    assert main(["serve", "--app", "http", "--port", "0", "--record", str(trace)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("realnet: internal error: RuntimeError: boom; the run so far is in "), err
    assert err.count("\n") == 1
    report = replay_exact(trace)  # the real machine does not fail there: it replays what was recorded
    assert report.ok and not report.exited and report.matched == 5, report.format()
