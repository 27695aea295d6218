"""RealDriver in-process: run in a thread, shut down with request_shutdown(), record, replay."""

from __future__ import annotations

import http.client
import threading
from pathlib import Path

from realnet import RealDriver, serve
from simnet.drivers.replay import replay_exact
from simnet.server.config import ServerConfig


def test_serve_in_a_thread_and_replay(tmp_path: Path) -> None:
    trace = tmp_path / "thread.jsonl"
    drivers: list[RealDriver] = []
    ports: list[int] = []
    listening = threading.Event()
    outcome = []

    def on_listening(machine) -> None:  # type: ignore[no-untyped-def]
        ports.append(machine.bound_port)
        listening.set()

    def run() -> None:
        outcome.append(
            serve(
                ServerConfig(port=0, edge_triggered=True),
                "http",
                record=trace,
                on_listening=on_listening,
                on_driver=drivers.append,
                handle_signals=False,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert listening.wait(10)
        conn = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)
        for n in (0, 1, 100_000):
            conn.request("GET", f"/bytes/{n}")
            assert len(conn.getresponse().read()) == n
        conn.close()
    finally:
        if drivers:
            drivers[0].request_shutdown()
        thread.join(15)
    assert not thread.is_alive()
    (result,) = outcome
    assert result.clean and result.served
    assert result.machine.stats.requests == 3
    assert result.driver.executor.fds == {}  # everything closed
    report = replay_exact(trace)
    assert report.ok and report.exited, report.format()
    assert report.matched == result.driver.syscalls == result.trace_records - 1
