"""P5: realnet with recording (`--record`) against realnet without, under the same load.

    python bench/p5_record.py            # 6 rounds of 2 s of wrk per side
    python bench/p5_record.py --quick    # a smoke run: 1 round of 1 s

The load is wrk (1 thread, 50 keep-alive connections, `GET /`) on the other core, against
`realnet serve --app http` with and without `--record` to a trace file in a temporary
directory (the trace is deleted afterwards; its size and record count are reported). Without
wrk, the live echo load generator of P1 (bench/_common.py echo_load) against `--app echo`
takes its place, and the report says so. The two sides alternate round by round; the ratio is
taken per round. Goal: recording keeps at least 0.95x of the throughput.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GOAL = 0.95
CONNS = 50


def _load(app: str, srv: C.Server, seconds: float, warm: float) -> tuple[float, float]:
    """(throughput, server CPU microseconds per request or round trip)."""
    if app == "http":
        result = C.wrk_server(srv, seconds, warm=warm, conns=CONNS)
        return float(result["rps"]), float(result["cpu_us_per_request"])
    before = srv.cpu_seconds()
    live = C.run_worker(
        [C.PYTHON, str(C.BENCH / "_common.py"), "echo-load", "--port", str(srv.port), "--conns", str(CONNS),
         "--count", "1000000", "--seconds", str(seconds)],
        cpu=C.CLIENT_CPU,
        timeout=seconds + 60,
    )
    used = srv.cpu_seconds() - before
    if live["errors"]:
        raise RuntimeError(f"live echo: {live['errors']} connections ended early")
    return float(live["rate"]), used / max(live["round_trips"], 1) * 1e6


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    app = "http" if C.WRK is not None else "echo"
    # wrk counts whole seconds; the echo load generator can run shorter in a smoke run.
    # Many short alternating rounds rather than a few long ones: on a shared machine the load of
    # others drifts, and a ratio taken within a short round sees less of the drift.
    seconds, warm = ((1.0 if app == "http" else 0.3), 0.0) if quick else (2.0, 1.0)
    rounds = rounds or (1 if quick else 6)
    load = "wrk GET / keep-alive, 50 connections" if app == "http" else "the P1 echo load generator (wrk absent)"
    unit = "req/s" if app == "http" else "round trips/s"
    plain: list[float] = []
    recorded: list[float] = []
    cpu_plain: list[float] = []
    cpu_recorded: list[float] = []
    trace_bytes = trace_records = 0
    with tempfile.TemporaryDirectory(prefix="simnet-bench-") as tmp:
        for i in range(rounds):
            trace = Path(tmp) / f"round{i}.jsonl"
            # Alternate which side goes first, so a drift in the machine's load favours neither.
            order = [False, True] if i % 2 == 0 else [True, False]
            for record in order:
                extra = ["--record", str(trace)] if record else []
                with C.server(C.realnet_argv(app, *extra)) as srv:
                    rate, cpu = _load(app, srv, seconds, warm)
                (recorded if record else plain).append(rate)
                (cpu_recorded if record else cpu_plain).append(cpu)
            trace_bytes = trace.stat().st_size
            trace_records = sum(1 for _ in trace.open("rb"))
            trace.unlink()
    ratio = C.ratios(recorded, plain)
    by_cpu = C.ratios(cpu_plain, cpu_recorded)
    how = f"{rounds} rounds of {seconds:.0f} s per side, alternating"
    details = [
        f"P5: {load}; {how}. Server CPU per request: "
        f"{C.fmt_spread(C.spread(cpu_recorded), 'us')} recording, {C.fmt_spread(C.spread(cpu_plain), 'us')} not; "
        f"ratio by CPU {C.fmt_spread(by_cpu, ratio=True)}. Last trace: {trace_records:,} lines, "
        f"{trace_bytes / 1e6:.1f} MB ({trace_bytes / max(trace_records, 1):.0f} bytes a line).",
    ]
    return {
        "load": load,
        "trace_bytes": trace_bytes,
        "trace_records": trace_records,
        "details": details,
        "rows": [
            C.row(
                id="P5",
                measure=f"realnet with --record ({load})",
                figure=C.spread(recorded),
                unit=unit,
                peer="realnet without recording",
                peer_figure=C.spread(plain),
                ratio=ratio,
                goal=f">= {GOAL:.2f}x",
                met=ratio["median"] >= GOAL,
                note=f"{how}; by server CPU per request {C.fmt_ratio(by_cpu['median'])}",
            )
        ],
    }


def report(figures: dict[str, Any]) -> list[str]:
    return [line for r in figures["rows"] for line in C.row_lines(r)] + figures["details"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds (default 6; 1 with --quick)")
    args = parser.parse_args()
    for line in report(run(args.quick, args.rounds)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
