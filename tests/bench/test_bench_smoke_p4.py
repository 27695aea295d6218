"""bench/p4_http.py's quick path (realnet vs asyncio and asyncio + h11 under wrk); skipped only
when wrk is not installed. Figures are checked for sanity, not speed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common  # noqa: E402
import p4_http  # noqa: E402


def test_asyncio_peers_serve_the_same_response_as_realnet() -> None:
    """Like is compared with like: byte-identical responses to `GET /` from all three servers."""
    import socket

    def get(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            data = b""
            while not data.endswith(b"Hello from simnet!\n"):
                chunk = s.recv(4096)
                assert chunk, data
                data += chunk
            return data

    kinds = ["asyncio"] + (["h11"] if p4_http.have_h11() else [])
    with _common.server(_common.realnet_argv("http")) as srv:
        expected = get(srv.port)
    for kind in kinds:
        with _common.server(p4_http.peer_argv(kind)) as srv:
            assert get(srv.port) == expected, kind


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_p4_quick_path_runs_wrk_against_each_server() -> None:
    figures = p4_http.run(quick=True)
    rows = {r["id"]: r for r in figures["rows"]}
    assert rows["P4a"]["figure"]["median"] > 100  # requests/s, realnet
    assert rows["P4a"]["peer_figure"]["median"] > 100  # asyncio with the same app
    if p4_http.have_h11():
        assert rows["P4b"]["peer_figure"]["median"] > 100
    for kind, values in figures["cpu_us_per_request"].items():
        assert all(0 < v < 100_000 for v in values), kind
    assert any("P4a" in line for line in p4_http.report(figures))


def test_p4_says_clearly_when_wrk_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "WRK", None)
    figures = p4_http.run(quick=True)
    assert [r["met"] for r in figures["rows"]] == [None, None]
    assert "wrk is not installed" in figures["skipped"]
    assert any("SKIPPED" in line for line in p4_http.report(figures))
