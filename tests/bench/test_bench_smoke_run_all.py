"""bench/run_all.py: the replay-speed wrapper on its quick path, the kernel_bench guard, and the page
it writes (a table with every row, the machine, the command, the hand-written part kept)."""

from __future__ import annotations

import builtins
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _common as C  # noqa: E402
import run_all  # noqa: E402


def test_p3_wrapper_parses_replay_speed_output() -> None:
    res = run_all.bench_p3(quick=True)
    rows = {r["id"]: r for r in res["rows"]}
    assert rows["P3a"]["figure"]["median"] > 1000  # syscalls/s
    assert "P3b" in rows and rows["P3b"]["figure"]["median"] > 1000


def test_missing_kernel_bench_is_skipped_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_kernel_bench(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "kernel_bench":
            raise ImportError("no module named kernel_bench")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "kernel_bench", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_kernel_bench)
    monkeypatch.setattr(run_all.importlib, "import_module", lambda name: no_kernel_bench(name))
    res = run_all.bench_k(quick=True)
    assert res["rows"] == [] and "not available" in res["details"][0]


def test_a_failing_benchmark_is_reported_and_the_rest_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(quick: bool) -> dict[str, Any]:
        raise RuntimeError("server never listened")

    monkeypatch.setitem(run_all.BENCHES, "P1", ("simulated vs live echo", boom))
    monkeypatch.setitem(run_all.BENCHES, "P2", ("time compression", lambda quick: {"rows": [], "details": ["ok"]}))
    results = run_all.run_all(True, ["P1", "P2"], echo=lambda line: None)
    assert "server never listened" in results["P1"]["error"]
    assert results["P2"]["details"] == ["ok"]


def test_page_has_table_machine_command_and_keeps_hand_written_part(tmp_path: Path) -> None:
    results = {
        "P1": {
            "rows": [
                C.row(id="P1", measure="echo", figure=C.spread([1.0, 2.0, 3.0]), unit="rt/s", peer="live",
                      peer_figure=C.spread([4.0, 4.0, 4.0]), ratio=C.ratios([1, 2, 3], [4, 4, 4]),
                      goal=">= 0.33x", met=True),
            ],
            "details": ["P1 detail line"],
            "seconds_taken": 1.0,
        },
        "P4": {"rows": [C.skipped_row("P4a", "http", "asyncio", ">= 1.0x", "wrk is not installed")],
               "seconds_taken": 0.1},
    }
    info = C.machine_info()
    page = run_all.render(results, info, "make bench", dt.datetime(2026, 1, 2, 3, 4), 65.0, quick=False)
    assert "| P1 | echo | 2.00 rt/s (1.00–3.00) | live | 4.00 rt/s (4.00–4.00) | 0.5x (0.25x–0.75x) |" in page
    assert "skipped: wrk is not installed" in page
    assert "`make bench`" in page and "2026-01-02" in page and "1.1 min" in page
    for key in ("nproc", "cpu", "python", "kernel"):
        assert f"| {key} |" in page
    path = tmp_path / "benchmarks.md"
    path.write_text("old generated part\n" + run_all.MARKER + "\n\n## Profiles\n\nkept by hand\n")
    run_all.write_page(path, page)
    text = path.read_text()
    assert "old generated part" not in text and "P1 detail line" in text
    assert text.endswith(run_all.MARKER + "\n\n## Profiles\n\nkept by hand\n")
