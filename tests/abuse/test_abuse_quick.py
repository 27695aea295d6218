"""bench/abuse.py --quick in `make test`: every abuse case, small and short, against a live realnet.

One run (a few seconds) against one recording server; each case is then its own test, so that a
failure names the case. The run's verdicts -- the server still serving after every case, its
fds back to the baseline, bounded peak RSS, exit 0 on SIGTERM, the recording replaying exactly --
are tests of their own too. The full-size run is `python bench/abuse.py` (docs/reliability.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_abuse() -> Any:
    spec = importlib.util.spec_from_file_location("abuse", ROOT / "bench" / "abuse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


abuse = _load_abuse()


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    trace = tmp_path_factory.mktemp("abuse") / "abuse.jsonl"
    f = abuse.run(quick=True, record=trace)
    print("\n".join(abuse.report(f)))  # shown with -s, and on failure
    return f


@pytest.mark.parametrize("case", list(abuse.CASES))
def test_abuse_case_passes_and_the_server_still_serves_after_it(figures: dict[str, Any], case: str) -> None:
    result = figures["cases"][case]
    assert result["ok"], result
    assert result["server_alive"] and result["still_serving_ms"] is not None, result


def test_slowloris_connections_are_dropped_at_the_header_timeout_and_ordinary_requests_go_on(
    figures: dict[str, Any],
) -> None:
    s = figures["cases"]["slowloris"]
    assert s["dropped_by_server"] >= abuse.QUICK.slowloris_conns  # each at least once in 2.5 s
    assert 0.9 * 1000 <= s["dropped_after"]["p50_ms"] <= 1.5 * 1000  # --header-timeout 1
    ordinary = figures["canary"]["slowloris"]
    assert ordinary["failures"] == 0 and ordinary["n"] >= 10, ordinary


def test_the_connection_limit_stops_accepting_and_the_rest_wait_then_are_served(figures: dict[str, Any]) -> None:
    o = figures["cases"]["over_limit"]
    assert o["served_while_full"] == 0 and o["server_fds_while_full"] <= o["limit"], o
    assert o["served_after"] == o["extra_clients"], o


def test_unread_responses_cost_the_server_about_its_output_cap_each(figures: dict[str, Any]) -> None:
    n = figures["cases"]["never_read"]
    assert n["rss_growth_per_client_kb"] < 4 * 256, n  # output_cap is 256 KiB; 10 MB were asked for


def test_no_ordinary_request_failed_during_the_run(figures: dict[str, Any]) -> None:
    assert figures["canary_failures"] == 0, figures["canary"]


def test_after_the_run_fds_are_back_to_the_baseline_and_memory_is_bounded(figures: dict[str, Any]) -> None:
    assert figures["fds_after"] == figures["baseline_fds"], figures
    assert figures["peak_rss_mb"] < figures["baseline_rss_mb"] + 100, figures
    assert figures["still_serving_ms"] is not None


def test_the_server_exits_0_on_sigterm_and_its_recording_replays_exactly(figures: dict[str, Any]) -> None:
    assert figures["exit_status"] == 0 and not figures["server_stderr"], figures
    trace = figures["trace"]
    assert trace["replay_ok"], trace
    assert trace["requests"] > 0 and trace["replay_matched"] == trace["records"] - 1  # all but Exit


def test_the_whole_run_is_ok(figures: dict[str, Any]) -> None:
    assert figures["ok"], figures["problems"]


def test_a_held_body_costs_the_server_about_the_body_limit_each(figures: dict[str, Any]) -> None:
    b = figures["cases"]["big_body"]
    assert b["rss_growth_per_client_kb"] < 3 * 1024, b  # max_body_bytes is 1 MiB
