"""`make bench`: every side-by-side benchmark in one run, written to docs/benchmarks.md.

    python bench/run_all.py                  # the full run (under 10 minutes); writes docs/benchmarks.md
    python bench/run_all.py --quick          # the smoke path: tiny sizes, one round; prints only
    python bench/run_all.py --only P1,P4     # a subset (P1 P2 P3 P4 P5 P6 K S)
    python bench/run_all.py --output FILE    # write the page somewhere else (also with --quick)

The measures (the issue's table):
  P1  simulated 64-byte echo round trips per wall second vs the same workload live (bench/p1_echo.py)
  P2  time compression of 1,000 keep-alive HTTP clients over 100 simulated s (bench/sim_bench.py)
  P3  exact replay speed of a large trace (bench/replay_speed.py, run as a script)
  P4  realnet HTTP under wrk vs asyncio with the same app, and vs asyncio + h11 (bench/p4_http.py)
  P5  realnet recording vs not (bench/p5_record.py)
  P6  memory per idle simulated connection; cost per event at 10,000 vs 100 connections (bench/p6_memory.py)
  K   the simulated kernel vs bare simpy (bench/kernel_bench.py, when present)
  S   a sweep of small seeds under loss, seeds/s on 2 processes (bench/s_sweep.py)

Each claim is a ratio of two figures measured side by side in this run, on this machine; each
figure is the median of the rounds, with min-max. The page keeps everything below the marker
line `<!-- hand-written below -->` (profiles, findings, before/after) across runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import re
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import _common as C  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
MARKER = "<!-- hand-written below: bench/run_all.py keeps everything after this line -->"
ALL = ("P1", "P2", "P3", "P4", "P5", "P6", "K", "S")


# -- wrappers for the benchmarks that others own ---------------------------------------------------


def bench_p2(quick: bool) -> dict[str, Any]:
    import sim_bench

    f = sim_bench.run(quick)
    c = f["compression"]
    c.setdefault("n", f["runs"])
    r, e = f["requests_per_wall_s"], f["events_per_wall_s"]
    return {
        "rows": [
            C.row(
                id="P2",
                measure=f"time compression: {f['clients']:,} keep-alive HTTP clients, 10 ms RTT, ~1 request/s "
                f"each (Poisson), {f['simulated_s']:.0f} simulated s",
                figure=c,
                unit="x real time",
                peer="real time",
                ratio=c,
                goal=f">= {f['goal']:.0f}x",
                met=c["median"] >= f["goal"],
                note=f"{f['runs']} runs",
            )
        ],
        "details": [
            f"P2 (bench/sim_bench.py): {f['requests']:,} requests, {f['events']:,} simpy events per run; "
            f"{C.fmt_spread({**r, 'n': f['runs']}, 'requests/wall s')}, "
            f"{C.fmt_spread({**e, 'n': f['runs']}, 'events/wall s')}.",
        ],
    }


_REPLAY_LINE = re.compile(r"replay speed:\s*([\d,]+)\s*syscalls/s")
_REPLAY_REAL = re.compile(r"ServerMachine.*?\n.*?\n\s*replay_exact\s+([\d,]+) syscalls/s", re.S)


def bench_p3(quick: bool) -> dict[str, Any]:
    argv = [C.PYTHON, str(BENCH / "replay_speed.py")] + (["--quick"] if quick else [])
    import subprocess

    done = subprocess.run(C.pinned(C.SERVER_CPU, argv), capture_output=True, text=True, timeout=400, cwd=str(ROOT))
    if done.returncode != 0:
        raise RuntimeError(f"replay_speed.py exited {done.returncode}: {done.stderr.strip()[-600:]}")
    out = done.stdout
    lines = out.strip().splitlines()
    m = _REPLAY_LINE.search(lines[-1] if lines else "")
    if m is None:
        raise RuntimeError(f"replay_speed.py: no 'replay speed: N syscalls/s' last line in {out[-300:]!r}")
    headline = float(m.group(1).replace(",", ""))
    goal = 300_000
    size = "20,000" if quick else "500,000"
    rows = [
        C.row(
            id="P3a",
            measure=f"exact replay speed, {size}-syscall trace of the stand-in echo machine "
            "(replay_speed.py's headline)",
            figure=C.spread([headline]),
            unit="syscalls/s",
            peer="",
            goal=f">= {goal:,} syscalls/s",
            met=headline >= goal,
            note="best of 3 (the script's own choice on a shared machine)" if not quick else "1 run",
        )
    ]
    real = _REPLAY_REAL.search(out)
    if real is not None:
        rate = float(real.group(1).replace(",", ""))
        rows.append(
            C.row(
                id="P3b",
                measure=f"exact replay speed, {size}-syscall trace of the real ServerMachine (echo app)",
                figure=C.spread([rate]),
                unit="syscalls/s",
                peer="",
                goal=f">= {goal:,} syscalls/s",
                met=rate >= goal,
                note="the machine a realnet trace replays with; same script, same run",
            )
        )
    keep = [ln.rstrip() for ln in lines if ln.strip() and not ln.startswith("(")]
    return {"rows": rows, "details": ["P3 (bench/replay_speed.py output):"] + ["    " + ln for ln in keep]}


def bench_k(quick: bool) -> dict[str, Any]:
    try:
        kernel_bench = importlib.import_module("kernel_bench")
    except ImportError as exc:
        return {"rows": [], "details": [f"K: bench/kernel_bench.py is not available ({exc}); skipped."]}
    f = kernel_bench.run(quick)
    goals = f["goal_ratio"]
    rows, details = [], []
    for name, what in (("bulk", "bytes"), ("storm", "connections")):
        part = f.get(name)
        if not part:
            continue
        ratio = dict(part["ratio"])
        us, bare = dict(part["us_per_event"]), dict(part["bare_us_per_event"])
        for s in (ratio, us, bare):
            s.setdefault("n", f.get("rounds", 1))
        rows.append(
            C.row(
                id=f"K-{name}",
                measure=f"simnet kernel, {name} ({part[what]:,} {what}): wall time per simpy event",
                figure=us,
                unit="us/event",
                peer="bare simpy processing as many events",
                peer_figure=bare,
                ratio=ratio,
                goal=f"<= {goals[name]:g}x",
                met=ratio["median"] <= goals[name],
                note=f"{part['segments']:,} segments, {part['events']:,} events; bench/kernel_bench.py",
            )
        )
    report = kernel_bench.report(f)
    details.append("K (bench/kernel_bench.py):")
    details += ["    " + ln for ln in (report.splitlines() if isinstance(report, str) else report)]
    return {"rows": rows, "details": details}


def _module_bench(name: str) -> Callable[[bool], dict[str, Any]]:
    def runner(quick: bool) -> dict[str, Any]:
        module = importlib.import_module(name)
        if name == "p4_http":
            return module.run(quick, install_h11=not quick)  # type: ignore[no-any-return]
        return module.run(quick)  # type: ignore[no-any-return]

    return runner


BENCHES: dict[str, tuple[str, Callable[[bool], dict[str, Any]]]] = {
    "P1": ("simulated vs live echo", _module_bench("p1_echo")),
    "P2": ("time compression", bench_p2),
    "P3": ("replay speed", bench_p3),
    "P4": ("realnet vs asyncio under wrk", _module_bench("p4_http")),
    "P5": ("recording overhead", _module_bench("p5_record")),
    "P6": ("memory and scaling", _module_bench("p6_memory")),
    "K": ("kernel vs bare simpy", bench_k),
    "S": ("small-seed sweep", _module_bench("s_sweep")),
}


# -- the page --------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| | measure | figure: median (min–max) | peer | peer figure | ratio | goal | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["figure"] is None:
            out.append(f"| {r['id']} | {_cell(r['measure'])} | — | {_cell(r['peer'])} | — | — | {r['goal']} | "
                       f"skipped: {_cell(r['note'])} |")
            continue
        fig = C.fmt_spread(r["figure"], r["unit"])
        peer_fig = C.fmt_spread(r["peer_figure"], r["peer_unit"]) if r["peer_figure"] else "—"
        ratio = C.fmt_spread(r["ratio"], ratio=True) if r["ratio"] else "—"
        met = {True: "**yes**", False: "**no**", None: "—"}[r["met"]]
        measure = r["measure"] + (f" ({r['note']})" if r["note"] else "")
        out.append(f"| {r['id']} | {_cell(measure)} | {fig} | {_cell(r['peer']) or '—'} | {peer_fig} | "
                   f"{ratio} | {_cell(r['goal'])} | {met} |")
    return out


def render(results: dict[str, dict[str, Any]], info: dict[str, str], command: str, started: dt.datetime,
           seconds: float, quick: bool) -> str:
    rows = [r for res in results.values() for r in res.get("rows", [])]
    met = sum(1 for r in rows if r["met"] is True)
    missed = [r["id"] for r in rows if r["met"] is False]
    skipped = [r["id"] for r in rows if r["met"] is None]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`bench/run_all.py`); do not edit above the marker line at the end —",
        "the next run rewrites it. Every claim here is a ratio of two figures measured side by side in",
        "one run on one machine: the two sides alternate round by round, each ratio is taken within a",
        "round, and a figure is the median of the rounds with the min–max in brackets.",
        "",
        f"- command: `{command}`" + (" (quick smoke run: sizes too small for the figures to mean anything)"
                                      if quick else ""),
        f"- date: {started.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        f"- took: {seconds / 60:.1f} min",
        f"- goals: {met} met" + (f", missed: {', '.join(missed)}" if missed else "")
        + (f", skipped: {', '.join(skipped)}" if skipped else ""),
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_cell(v)} |" for k, v in info.items()]
    lines += ["", "## Results", ""] + table(rows)
    failures = {k: v["error"] for k, v in results.items() if "error" in v}
    if failures:
        lines += ["", "Benchmarks that failed in this run:", ""]
        lines += [f"- {k}: `{_cell(v)}`" for k, v in failures.items()]
    lines += ["", "## Details of this run", ""]
    for key, res in results.items():
        seconds_taken = res.get("seconds_taken")
        detail = res.get("details", [])
        if not detail and seconds_taken is None:
            continue
        lines.append(f"**{key}** ({BENCHES[key][0]}, {seconds_taken:.0f} s):" if seconds_taken is not None
                     else f"**{key}**:")
        lines.append("")
        lines.append("```")
        lines += detail or ["(no details)"]
        lines.append("```")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def write_page(path: Path, generated: str) -> None:
    """Write the generated part, keeping the hand-written part after MARKER."""
    kept = ""
    if path.exists():
        old = path.read_text()
        if MARKER in old:
            kept = old.split(MARKER, 1)[1]
    if not kept.strip():
        kept = "\n\n## Profiles and findings\n\n(none yet)\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(generated + "\n" + MARKER + kept)
    os.replace(tmp, path)


# -- main ------------------------------------------------------------------------------------------


def run_all(quick: bool, only: list[str], echo: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for key in only:
        title, fn = BENCHES[key]
        echo(f"== {key}: {title}" + (" (quick)" if quick else ""))
        start = time.perf_counter()
        try:
            res = fn(quick)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            res = {"rows": [], "error": f"{type(exc).__name__}: {exc}",
                   "details": traceback.format_exc().rstrip().splitlines()[-6:]}
            echo(f"   FAILED: {res['error']}")
        res["seconds_taken"] = time.perf_counter() - start
        for r in res.get("rows", []):
            for line in C.row_lines(r):
                echo("   " + line)
        for line in res.get("details", []):
            echo("   " + line)
        echo(f"   ({res['seconds_taken']:.1f} s)")
        results[key] = res
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smoke path: tiny sizes, one round, no page")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--output", help="where to write the page (default docs/benchmarks.md; none with --quick)")
    args = parser.parse_args(argv)
    only = list(ALL)
    if args.only:
        only = [k.strip().upper() for k in args.only.split(",") if k.strip()]
        bad = [k for k in only if k not in BENCHES]
        if bad:
            parser.error(f"unknown benchmark {bad[0]!r} (known: {', '.join(ALL)})")
    output = Path(args.output) if args.output else (None if args.quick else DOC)
    command = "make bench" if argv is None and not sys.argv[1:] else shlex.join(
        ["python", "bench/run_all.py", *(sys.argv[1:] if argv is None else argv)])
    started = dt.datetime.now().astimezone()
    if C.SERVER_CPU is not None and C.SERVER_CPU != C.CLIENT_CPU and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {C.SERVER_CPU})  # simulations run here; load generators get the other core
    info = C.machine_info()
    print(f"bench: {command}; {info['cpu']}, {info['nproc']} cpus, {info['python']}, {info['kernel']}")
    print(f"bench: {info['pinning']}")
    t0 = time.perf_counter()
    results = run_all(args.quick, only)
    seconds = time.perf_counter() - t0
    page = render(results, info, command, started, seconds, args.quick)
    print()
    print("\n".join(table([r for res in results.values() for r in res.get("rows", [])])))
    print(f"\nbench: {seconds / 60:.1f} min")
    if output is not None:
        write_page(output, page)
        print(f"bench: wrote {output}")
    return 1 if any("error" in res for res in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
