"""What the side-by-side benchmarks share: CPU pinning, servers as subprocesses, wrk, the live
echo load generator, figures as median and min-max, and one row format for docs/benchmarks.md.

Rules every benchmark here follows:
  - a claim is a ratio of two figures measured in the same run on the same machine, round by
    round, alternating the two sides, so that a slow patch of a shared machine hits both;
  - the server runs on one core and the load generator on the other (taskset), where there are two;
  - every load loop is bounded in count and in time, talks only to 127.0.0.1, and every
    subprocess is killed in a `finally`.

    python bench/_common.py echo-load --port P --conns 50 --count 400 --seconds 10
        # the live echo load generator on its own (prints one JSON object)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
HOST = "127.0.0.1"

# The CPUs this process may use, read once at import (bench/run_all.py pins itself afterwards).
CPUS: list[int] = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
SERVER_CPU: int | None = CPUS[0] if CPUS else None
CLIENT_CPU: int | None = CPUS[1] if len(CPUS) > 1 else SERVER_CPU
TASKSET = shutil.which("taskset")
WRK = shutil.which("wrk")


# -- figures --------------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min-max of several runs."""
    if not values:
        raise ValueError("no values")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratios(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """The spread of a[i] / b[i]: each ratio from one round, both sides measured back to back."""
    return spread([x / y for x, y in zip(a, b, strict=True)])


def fmt(value: float, unit: str = "") -> str:
    """A figure in a readable form: 12,345 / 1.23 / 0.123."""
    if value >= 1000:
        text = f"{value:,.0f}"
    elif value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def fmt_ratio(value: float) -> str:
    """Three significant digits, so that 0.897 does not print as a goal-meeting 0.90."""
    return f"{value:.3g}x"


def fmt_spread(s: dict[str, float], unit: str = "", ratio: bool = False) -> str:
    """"median (min–max)" -- just the median for a single run."""
    one = fmt_ratio if ratio else fmt
    if s.get("n", 2) == 1:
        return one(s["median"]) if ratio else fmt(s["median"], unit)
    median = one(s["median"]) if ratio else fmt(s["median"], unit)
    return f"{median} ({one(s['min'])}–{one(s['max'])})"


def row(
    *,
    id: str,
    measure: str,
    figure: dict[str, float] | None,
    unit: str,
    peer: str,
    peer_figure: dict[str, float] | None = None,
    peer_unit: str = "",
    ratio: dict[str, float] | None = None,
    goal: str,
    met: bool | None,
    note: str = "",
) -> dict[str, Any]:
    """One line of the results table. `met` is None where the measure could not be taken."""
    return {
        "id": id,
        "measure": measure,
        "figure": figure,
        "unit": unit,
        "peer": peer,
        "peer_figure": peer_figure,
        "peer_unit": peer_unit or unit,
        "ratio": ratio,
        "goal": goal,
        "met": met,
        "note": note,
    }


def skipped_row(id: str, measure: str, peer: str, goal: str, why: str) -> dict[str, Any]:
    return row(id=id, measure=measure, figure=None, unit="", peer=peer, goal=goal, met=None, note=why)


def row_lines(r: dict[str, Any]) -> list[str]:
    """A row as plain text for a benchmark's report()."""
    if r["figure"] is None:
        return [f"{r['id']} {r['measure']}: SKIPPED ({r['note']})"]
    verdict = {True: "meets", False: "MISSES", None: "n/a"}[r["met"]]
    lines = [f"{r['id']} {r['measure']}: {fmt_spread(r['figure'], r['unit'])}"]
    if r["peer_figure"] is not None:
        lines.append(f"    peer: {r['peer']}: {fmt_spread(r['peer_figure'], r['peer_unit'])}")
    elif r["peer"]:
        lines.append(f"    peer: {r['peer']}")
    if r["ratio"] is not None:
        lines.append(f"    ratio {fmt_spread(r['ratio'], ratio=True)}; goal {r['goal']}: {verdict}")
    else:
        lines.append(f"    goal {r['goal']}: {verdict}")
    if r["note"]:
        lines.append(f"    ({r['note']})")
    return lines


# -- processes ------------------------------------------------------------------------------------


def pinned(cpu: int | None, argv: Sequence[str]) -> list[str]:
    """argv under `taskset -c CPU`, when there is a CPU to pin to and taskset exists."""
    if cpu is None or TASKSET is None:
        return list(argv)
    return [TASKSET, "-c", str(cpu), *argv]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def kill(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM, wait a little, then SIGKILL: the process is gone when this returns."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace)
        except ProcessLookupError:
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


_PORT_LINE = re.compile(rb"https?://[0-9.]+:(\d+)|port (\d+)")


class Server:
    """A running server subprocess: its port, and the CPU time it has used so far."""

    def __init__(self, proc: subprocess.Popen[Any], port: int) -> None:
        self.proc = proc
        self.port = port

    def cpu_seconds(self) -> float:
        """CPU time the server process has run so far: /proc/PID/schedstat (ns), else utime+stime
        from /proc/PID/stat (taskset execs, so the pid is the server's). On a shared machine this
        is steadier than wall time: a core lent to someone else does not count."""
        try:
            return int(Path(f"/proc/{self.proc.pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(argv: Sequence[str], *, cpu: int | None = SERVER_CPU, startup: float = 15.0) -> Iterator[Server]:
    """Start a server subprocess that prints a line naming its port (`http://HOST:PORT` or
    `port N`) once it listens; yield it; always stop it."""
    proc = subprocess.Popen(
        pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=str(ROOT)
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + startup
        port = None
        poller = select.poll()
        poller.register(proc.stdout, select.POLLIN)
        while port is None:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise RuntimeError(f"{' '.join(argv)}: no 'listening' line within {startup:.0f} s")
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"{' '.join(argv)} exited ({proc.wait()}): {err.strip()[-500:]}")
            m = _PORT_LINE.search(line)
            if m:
                port = int(m.group(1) or m.group(2))
        yield Server(proc, port)
    finally:
        kill(proc)


def realnet_argv(app: str, *extra: str) -> list[str]:
    return [PYTHON, "-m", "realnet", "serve", "--app", app, "--host", HOST, "--port", "0", *extra]


def run_worker(argv: Sequence[str], *, cpu: int | None, timeout: float) -> dict[str, Any]:
    """Run a subprocess that prints one JSON object as its last line; return the object."""
    proc = subprocess.Popen(
        pinned(cpu, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), cwd=str(ROOT)
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(argv)}: still running after {timeout:.0f} s") from None
    finally:
        kill(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.decode(errors='replace').strip()[-800:]}")
    lines = out.decode().strip().splitlines()
    if not lines:
        raise RuntimeError(f"{' '.join(argv)} printed nothing")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- wrk ------------------------------------------------------------------------------------------


def wrk(port: int, seconds: float, *, conns: int = 50, threads: int = 1, path: str = "/") -> dict[str, Any]:
    """One wrk run (keep-alive GETs) against 127.0.0.1:port, pinned to the client core."""
    if WRK is None:
        raise RuntimeError("wrk is not installed")
    secs = max(1, round(seconds))
    argv = [WRK, f"-t{threads}", f"-c{conns}", f"-d{secs}s", f"http://{HOST}:{port}{path}"]
    done = subprocess.run(pinned(CLIENT_CPU, argv), capture_output=True, text=True, timeout=secs + 30)
    out = done.stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if done.returncode != 0 or m is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {out.strip()} {done.stderr.strip()}")
    total = re.search(r"(\d+) requests in", out)
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return {"rps": float(m.group(1)), "requests": int(total.group(1)) if total else 0, "errors": errors}


def wrk_server(srv: Server, seconds: float, *, warm: float = 0.0, conns: int = 50) -> dict[str, Any]:
    """wrk against a running server (after `warm` unmeasured seconds), plus the server's CPU time
    per request -- the steadier figure on a shared machine."""
    if warm:
        wrk(srv.port, warm, conns=conns)
    before = srv.cpu_seconds()
    result = wrk(srv.port, seconds, conns=conns)
    used = srv.cpu_seconds() - before
    if result["errors"]:
        raise RuntimeError(f"wrk saw {result['errors']} errors (non-2xx or socket errors)")
    result["server_cpu_s"] = used
    result["cpu_us_per_request"] = used / max(result["requests"], 1) * 1e6
    return result


# -- the live echo load generator ---------------------------------------------------------------


def echo_load(port: int, conns: int, count: int, seconds: float, size: int = 64) -> dict[str, Any]:
    """`conns` connections to 127.0.0.1:port, each doing up to `count` round trips of `size`
    bytes (send, then read exactly `size` back), all driven by one epoll loop; stops after
    `seconds` whatever is left. Connecting is not timed."""
    payload = bytes(i % 251 for i in range(size))
    socks: dict[int, socket.socket] = {}
    ep = select.epoll()
    try:
        for _ in range(conns):
            s = socket.create_connection((HOST, port), timeout=5)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks[s.fileno()] = s
        left = {fd: count for fd in socks}
        pending = {fd: 0 for fd in socks}  # bytes of the current reply read so far
        round_trips = 0
        errors = 0
        start = time.perf_counter()
        cpu_start = time.process_time()
        deadline = start + seconds
        for fd, s in socks.items():
            s.send(payload)
            ep.register(fd, select.EPOLLIN)
        active = len(socks)
        while active and time.perf_counter() < deadline:
            for fd, _events in ep.poll(0.5):
                s = socks[fd]
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    errors += 1
                    ep.unregister(fd)
                    active -= 1
                    continue
                got = pending[fd] + len(data)
                while got >= size and left[fd] > 0:
                    got -= size
                    round_trips += 1
                    left[fd] -= 1
                    if left[fd]:
                        s.send(payload)
                    else:
                        ep.unregister(fd)
                        active -= 1
                pending[fd] = got
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
    finally:
        ep.close()
        for s in socks.values():
            s.close()
    return {"round_trips": round_trips, "wall_s": wall, "rate": round_trips / wall, "errors": errors,
            "cpu_s": cpu, "complete": round_trips == conns * count}


# -- the machine ----------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    import platform

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        simpy_version = __import__("importlib.metadata").metadata.version("simpy")
    except Exception:  # noqa: BLE001
        simpy_version = "?"
    wrk_version = "not installed"
    if WRK is not None:
        try:
            probe = subprocess.run([WRK, "-v"], capture_output=True, text=True, timeout=5)
            wrk_version = (probe.stdout + probe.stderr).strip().splitlines()[0].split(" Copyright")[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            wrk_version = "installed"
    return {
        "nproc": str(os.cpu_count()),
        "usable cpus": ",".join(map(str, CPUS)) or "?",
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": f"{platform.system()} {platform.release()}",
        "simpy": simpy_version,
        "wrk": wrk_version,
        "pinning": (
            f"server/simulation on cpu {SERVER_CPU}, load generator on cpu {CLIENT_CPU} (taskset)"
            if TASKSET and SERVER_CPU != CLIENT_CPU
            else "none (one cpu or no taskset)"
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="bench helpers")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("echo-load", help="the live echo load generator; prints JSON")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(echo_load(args.port, args.conns, args.count, args.seconds, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
