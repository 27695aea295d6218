"""What `simnet run --pcap` costs: the same `simnet run` workload with and without a capture.

    python bench/pcap_overhead.py            # 5 rounds of each side, two workloads
    python bench/pcap_overhead.py --quick    # a smoke run: 2 rounds of smaller workloads

Both sides run in this one process, alternating round by round (a slow patch of a shared
machine hits both), each through `simnet.cli.main` with the same arguments. Two workloads:
`simnet run` as it comes (200 HTTP clients x 20 requests, seed 7), and the same with /bytes/N
responses of 16 KiB on average, so that nearly every segment carries a full MSS of payload,
whose checksum is the writer's main cost. The capture goes to a file in a temporary directory (deleted after; its
size and packet count are reported). The figure is the wall time of each side, CPU-bound and
single-threaded; the overhead is median(with / without) - 1 over the rounds. Goal: <= 10 %.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simnet.cli import main as simnet_main

GOAL = 0.10
WORKLOADS = (["run"], ["run", "--response-size", "16k"])
QUICK_WORKLOADS = (
    ["run", "--clients", "50", "--requests", "5"],
    ["run", "--clients", "50", "--requests", "5", "--response-size", "16k"],
)


def one_run(args: list[str]) -> float:
    """Wall seconds of one `simnet run` (its summary swallowed)."""
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = simnet_main(args)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"simnet {' '.join(args)} exited {code}:\n{out.getvalue()}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    opts = parser.parse_args()
    rounds = opts.rounds or (2 if opts.quick else 5)
    worst = 0.0
    for args in QUICK_WORKLOADS if opts.quick else WORKLOADS:
        worst = max(worst, measure(args, rounds))
        print()
    return 0 if worst <= GOAL else 1


def measure(args: list[str], rounds: int) -> float:
    """Print one workload's figures; return its overhead (0.05 = 5 %)."""
    with tempfile.TemporaryDirectory() as tmp:
        pcap = os.path.join(tmp, "run.pcap")
        one_run(args)  # warm up: imports, caches
        plain: list[float] = []
        captured: list[float] = []
        for _ in range(rounds):
            plain.append(one_run(args))
            captured.append(one_run([*args, "--pcap", pcap]))
        size = os.path.getsize(pcap)
        packets = _count_packets(pcap)
    ratios = [c / p for c, p in zip(captured, plain, strict=True)]
    overhead = statistics.median(ratios) - 1
    print(f"workload      simnet {' '.join(args)}")
    print(f"rounds        {rounds}, alternating")
    print(f"without pcap  median {statistics.median(plain):.3f} s (min {min(plain):.3f}, max {max(plain):.3f})")
    low, high = min(captured), max(captured)
    print(f"with --pcap   median {statistics.median(captured):.3f} s (min {low:.3f}, max {high:.3f})")
    print(f"overhead      {overhead * 100:+.1f} % (per-round ratios {min(ratios):.3f}-{max(ratios):.3f}); "
          f"goal <= {GOAL * 100:.0f} %")
    extra_us = (statistics.median(captured) - statistics.median(plain)) / packets * 1e6
    print(f"capture       {packets} packets, {size / 1e6:.1f} MB; {extra_us:.1f} us of wall time per packet captured")
    return overhead


def _count_packets(path: str) -> int:
    count = 0
    with open(path, "rb") as file:
        file.seek(24)
        while header := file.read(16):
            count += 1
            file.seek(int.from_bytes(header[8:12], "little"), os.SEEK_CUR)
    return count


if __name__ == "__main__":
    sys.exit(main())
