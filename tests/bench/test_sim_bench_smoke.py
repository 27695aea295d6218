"""bench/sim_bench.py's quick path, so the benchmark never rots (its figures are not checked for speed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_sim_bench_quick_path_runs_and_reports_sane_figures() -> None:
    path = Path(__file__).resolve().parents[2] / "bench" / "sim_bench.py"
    spec = importlib.util.spec_from_file_location("sim_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    figures = module.run(quick=True)
    assert figures["requests"] == 100  # 20 clients x 5 requests, every one answered
    assert figures["simulated_s"] > 0 and figures["events"] > 0
    assert figures["compression"]["min"] > 0
    lines = module.report(figures)
    assert "time compression" in lines[1]
