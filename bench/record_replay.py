"""Recording overhead and exact replay speed of a user's program (issue 15).

    .venv/bin/python bench/record_replay.py [--rounds 3] [--seconds 3]

R1: the aiohttp app of tests/record/programs under wrk on 127.0.0.1, plain `python app.py`
    against `simnet record --trace T -- python app.py`, alternating, median of the rounds:
    requests/s recorded / requests/s plain (goal >= 0.90); and the same by the server's CPU time
    per request (/proc/PID/schedstat: steadier than wall time when others share the cores).
R2: `simnet replay T -- python app.py` of the largest of those traces, in syscalls/s of steady
    replay: (records of the big trace - records of an idle one) / (their replay times' difference),
    so the interpreter's start and aiohttp's import are not counted (goal >= 100k/s).
Every load is bounded (wrk -d), every process has a timeout.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "record" / "programs" / "aiohttp_app.py"
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="0")


def _start(cmd: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=APP.parent, env=ENV)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening"):
        proc.kill()
        raise SystemExit(f"{cmd}: did not start ({line!r})")
    return proc, int(line.split()[1])


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def _cpu_ns(proc: subprocess.Popen[str]) -> int:
    """Nanoseconds the process has run on a CPU (`simnet record` execs, so the pid is the app's)."""
    return int(Path(f"/proc/{proc.pid}/schedstat").read_text().split()[0])


def _wrk(proc: subprocess.Popen[str], port: int, seconds: float) -> tuple[float, float]:
    """(requests/s, server CPU us per request) of one wrk run."""
    cpu = _cpu_ns(proc)
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds:g}s", f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    cpu = _cpu_ns(proc) - cpu
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if rate is None or total is None:
        raise SystemExit(f"wrk said: {out}")
    return float(rate.group(1)), cpu / 1e3 / max(int(total.group(1)), 1)


def _records(trace: Path) -> int:
    with open(trace, "rb") as file:
        return sum(1 for _ in file) - 1


def _replay_seconds(trace: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [PY, "-m", "simnet.cli", "replay", str(trace), "--", "python", str(APP), "0"],
        capture_output=True, text=True, cwd=APP.parent, env=ENV, timeout=600,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or "syscalls matched" not in proc.stdout:
        raise SystemExit(f"replay of {trace} failed: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="simnet-record-bench-"))
    plain, recorded = [], []
    plain_cpu, recorded_cpu = [], []
    traces = []
    for i in range(args.rounds):
        proc, port = _start([PY, str(APP), "0"])
        try:
            rate, cpu = _wrk(proc, port, args.seconds)
            plain.append(rate)
            plain_cpu.append(cpu)
        finally:
            _stop(proc)
        trace = work / f"r{i}.jsonl"
        proc, port = _start([PY, "-m", "simnet.cli", "record", "--trace", str(trace), "--", "python", str(APP), "0"])
        try:
            rate, cpu = _wrk(proc, port, args.seconds)
            recorded.append(rate)
            recorded_cpu.append(cpu)
        finally:
            _stop(proc)
        traces.append(trace)
        print(f"round {i + 1}: plain {plain[-1]:,.0f} req/s ({plain_cpu[-1]:.1f} us CPU/request), "
              f"recorded {recorded[-1]:,.0f} req/s ({recorded_cpu[-1]:.1f} us)", flush=True)  # fmt: skip
    ratio = statistics.median(recorded) / statistics.median(plain)
    print(f"R1 recording overhead: {statistics.median(recorded):,.0f} / {statistics.median(plain):,.0f} req/s "
          f"= {ratio:.2f}x (goal >= 0.90)")  # fmt: skip
    cpu_plain, cpu_recorded = statistics.median(plain_cpu), statistics.median(recorded_cpu)
    print(f"R1 by server CPU per request: {cpu_plain:.1f} us plain / {cpu_recorded:.1f} us recorded "
          f"= {cpu_plain / cpu_recorded:.2f}x")  # fmt: skip

    idle = work / "idle.jsonl"
    proc, _ = _start([PY, "-m", "simnet.cli", "record", "--trace", str(idle), "--", "python", str(APP), "0"])
    _stop(proc)
    big = max(traces, key=_records)
    t_big = min(_replay_seconds(big) for _ in range(2))
    t_idle = min(_replay_seconds(idle) for _ in range(2))
    n_big, n_idle = _records(big), _records(idle)
    rate = (n_big - n_idle) / max(t_big - t_idle, 1e-9)
    print(f"R2 exact replay: {n_big:,} records in {t_big:.2f} s, idle trace {n_idle} records in {t_idle:.2f} s: "
          f"{rate:,.0f} syscalls/s of steady replay (goal >= 100k/s)")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
