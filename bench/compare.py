"""Side-by-side A/B of this checkout against an earlier commit, on the same machine in one command.

    python bench/compare.py 67f36f2                      # every measure, 4 alternations
    python bench/compare.py HEAD~3 --rounds 6 --only p1,http-replay

A shared machine's speed drifts by 2x between days, so a change is judged against its base run
alternately in the same command, each in a fresh process: base, this checkout, base, ... The
base is checked out with `git worktree` into a temporary folder (removed afterwards) and runs
with this checkout's interpreter and packages. Both sides run compiled (the base is built in
place with mypyc, ~1 min) when this checkout is and the base has the build; else both run the
Python sources -- never one of each, which every run checks. Each figure is CPU time (time.process_time), the
best of 3 inside a process for the replays; the table gives the medians and their ratio.

Measures:
  p1            P1's simulated side: CPU per 64-byte echo round trip, 50 connections x 600 (us)
  echo-replay   exact replay of a 60,000-syscall echo trace of the real ServerMachine against
                the stand-in kernel (P3b's trace; syscalls/s)
  http-replay   exact replay of a simnet HTTP trace, 50 clients x 200 keep-alive requests,
                recorded by the base (syscalls/s). A checkout whose machine asks for other
                syscalls than the base's cannot replay it: the measure then stops with the
                divergence, as it should -- that is a change of behaviour, not of speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each snippet runs in a fresh process with the checkout under test as its working directory
# and first on sys.path; its last line of output is the figure.
MEASURES: dict[str, tuple[str, bool, str]] = {
    "p1": (
        "us CPU per round trip",
        False,
        """
import sys; sys.path[:0] = ["bench", "."]
import p1_echo
count = int(sys.argv[1])
p1_echo.sim_once(count // 6 + 1)
r = p1_echo.sim_once(count)
print(r["cpu_s"] / r["round_trips"] * 1e6)
""",
    ),
    "echo-replay": (
        "syscalls/s",
        True,
        """
import sys, tempfile, time
from pathlib import Path
sys.path[:0] = ["bench", "."]
import replay_speed
from simnet.drivers.replay import replay_exact
path = replay_speed.real_machine_trace(Path(tempfile.mkdtemp()), int(sys.argv[1]))
best = min(_time(lambda: replay_exact(path)) for _ in range(3))
print(replay_exact(path).matched / best)
""",
    ),
    "http-replay": (
        "syscalls/s",
        True,
        """
import sys
sys.path[:0] = ["."]
from simnet.drivers.replay import replay_exact
path = sys.argv[1]
report = replay_exact(path)
assert report.ok, report.format()
best = min(_time(lambda: replay_exact(path)) for _ in range(3))
print(report.matched / best)
""",
    ),
}

_PRELUDE = """
import os, time
import simnet.server.machine
_want = os.environ["COMPARE_COMPILED"]
if simnet.server.machine.__file__.endswith(".py") != (_want == "0"):
    raise SystemExit("compare: this side did not run " + ("compiled" if _want == "1" else "pure Python"))
def _time(run):
    start = time.process_time()
    run()
    return time.process_time() - start
"""


def _run(snippet: str, cwd: Path, env: dict[str, str], *args: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _PRELUDE + snippet, *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"compare: a run in {cwd} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _environment(base: Path) -> dict[str, str]:
    """The environment both sides run in: compiled if this checkout runs compiled and the base
    can be built so (in place, as `make` builds this one), else both on the Python sources."""
    import simnet.server.machine

    env = dict(os.environ)
    compiled = not simnet.server.machine.__file__.endswith(".py") and (base / "simnet" / "_build.py").exists()
    if compiled:
        build = [sys.executable, "setup.py", "build_ext", "--inplace"]
        done = subprocess.run(build, cwd=base, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"compare: building the base failed: {done.stderr.strip()[-300:]}")
    else:
        env["SIMNET_PURE_PYTHON"] = "1"
    env["COMPARE_COMPILED"] = "1" if compiled else "0"
    return env


def _http_trace(base: Path, into: Path, env: dict[str, str], clients: int, requests: int) -> Path:
    """An HTTP trace both sides can replay: recorded by the base, so that it is the base's."""
    path = into / "http.jsonl"
    cmd = [sys.executable, "-m", "simnet.cli", "run", "--app", "http", "--clients", str(clients), "--requests", str(requests),
           "--think-time", "0", "--trace", str(path)]  # fmt: skip
    done = subprocess.run(cmd, cwd=base, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"compare: recording the HTTP trace failed: {done.stderr.strip()[-300:]}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", help="the commit to compare against (anything git rev-parse takes)")
    parser.add_argument("--rounds", type=int, default=4, help="alternations per measure (default 4)")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(MEASURES)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes (figures mean nothing)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(MEASURES)
    unknown = [n for n in names if n not in MEASURES]
    if unknown:
        parser.error(f"unknown measure {unknown[0]!r} (known: {', '.join(MEASURES)})")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", "--quiet", f"{args.base}^{{commit}}"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if rev.returncode != 0:
        parser.error(f"not a commit here: {args.base!r}")
    base_rev = rev.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="simnet-compare-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), base_rev], cwd=ROOT, check=True)
        try:
            # Sizes: P1 round trips per connection, echo-replay syscalls, HTTP clients x requests.
            p1, echo, (clients, requests) = (12, 2_000, (3, 5)) if args.quick else (600, 60_000, (50, 200))
            env = _environment(base)
            http = str(_http_trace(base, Path(tmp), env, clients, requests)) if "http-replay" in names else ""
            sizes = {"p1": [str(p1)], "echo-replay": [str(echo)], "http-replay": [http]}
            build = "compiled" if env["COMPARE_COMPILED"] == "1" else "pure Python"
            print(f"compare: {base_rev} (base) vs this checkout, {args.rounds} alternations, CPU time, {build}")
            for name in names:
                unit, higher_is_better, snippet = MEASURES[name]
                figures: dict[str, list[float]] = {"base": [], "this": []}
                for _ in range(args.rounds):
                    figures["base"].append(_run(snippet, base, env, *sizes[name]))
                    figures["this"].append(_run(snippet, ROOT, env, *sizes[name]))
                b, t = statistics.median(figures["base"]), statistics.median(figures["this"])
                better = t / b if higher_is_better else b / t
                print(f"  {name:12} base {b:12,.1f}  this {t:12,.1f}  {unit}; this is {better:.2f}x as fast")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
