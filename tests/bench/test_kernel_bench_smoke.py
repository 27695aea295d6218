"""bench/kernel_bench.py's quick path, so the benchmark never rots (speed itself is not checked)."""

from __future__ import annotations

import importlib.util
import math
import time
from pathlib import Path
from typing import Any


def load() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "kernel_bench.py"
    spec = importlib.util.spec_from_file_location("kernel_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kernel_bench_quick_run_reports_sane_figures() -> None:
    bench = load()
    start = time.perf_counter()
    figures = bench.run(quick=True)
    assert time.perf_counter() - start < 10  # about 0.1 s alone; generous on a loaded machine
    assert figures["quick"] is True and figures["rounds"] == 1
    assert figures["goal_ratio"] == {"bulk": 2.0, "storm": 3.0}
    assert figures["machine"]["nproc"] >= 1 and figures["machine"]["python"].count(".") == 2
    bulk, storm = figures["bulk"], figures["storm"]
    # Every byte and every connection made it (run() raises otherwise), in a few hundred events.
    assert bulk["segments"] >= bulk["bytes"] // 1448  # MSS on the 1500-byte link
    assert storm["segments"] >= 7 * storm["connections"]  # 3 to open, 4 to close
    for f in (bulk, storm):
        assert 100 <= f["events"] <= 5000
        for key in ("wall_s", "segments_per_s", "us_per_event", "bare_us_per_event", "ratio"):
            s = f[key]
            assert s["n"] == 1 and 0 < s["min"] <= s["median"] <= s["max"] and math.isfinite(s["max"]), key
        # The figures agree with each other.
        assert math.isclose(f["us_per_event"]["median"] * f["events"] / 1e6, f["wall_s"]["median"], rel_tol=1e-9)
        assert math.isclose(
            f["ratio"]["median"], f["us_per_event"]["median"] / f["bare_us_per_event"]["median"], rel_tol=1e-9
        )
    text = bench.report(figures)
    assert "bulk: 200,000 bytes" in text and "storm: 20 connections" in text and "ratio" in text


def test_bare_simpy_loop_processes_about_the_events_asked_for() -> None:
    bench = load()
    wall, events = bench.bare_simpy(1000)
    assert 950 <= events <= 1050 and wall > 0
