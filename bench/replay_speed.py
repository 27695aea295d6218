"""Replay speed, and the JSON library choice behind it.

    python bench/replay_speed.py            # 500,000-syscall trace, best of 3
    python bench/replay_speed.py --quick    # a smoke run: 20,000 syscalls, one repeat

Prints, side by side:
  1. encoding and parsing one trace record with json, orjson (if installed) and msgspec,
     as time per record and the ratio to the json module -- why msgspec is a dependency;
  2. read_trace throughput (records/s);
  3. replay_exact throughput (syscalls/s) against the goal of 300,000/s.

The trace is a recording of the stand-in echo machine (tests/trace/trace_fakes.py) on a fake
kernel; when simnet.server.machine is importable, a recording of the real ServerMachine is
replayed too. Times are the best of the repeats: this is a shared 2-core machine, and the best
run is the one least disturbed by others.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "trace"))

import msgspec  # noqa: E402

from simnet.drivers.loop import run_direct  # noqa: E402
from simnet.drivers.replay import replay_exact  # noqa: E402
from simnet.trace import Recorder, TraceHeader, TraceWriter, read_trace  # noqa: E402
from simnet.trace.codec import _Envelope, encode_record  # noqa: E402
from trace_fakes import FakeKernel, make_echo_machine, record_fake_run  # noqa: E402

GOAL = 300_000


def best_of(repeat: int, run: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def json_libraries(path: Path, sample: int, repeat: int) -> None:
    header, records = read_trace(path)
    objs = []
    for record in records:
        if record.result is not None:
            objs.append(encode_record(record.seq, record.request, record.result))
        if len(objs) == sample:
            break
    lines = [msgspec.json.encode(o) + b"\n" for o in objs]
    std = json.JSONEncoder(separators=(",", ":"))
    encoders: dict[str, Callable[[Any], Any]] = {"json": std.encode, "msgspec": msgspec.json.Encoder().encode}
    decoders: dict[str, Callable[[Any], Any]] = {
        "json": json.loads,
        "msgspec": msgspec.json.Decoder().decode,
        "msgspec typed": msgspec.json.Decoder(_Envelope).decode,  # what the reader's fast path uses
    }
    try:
        import orjson

        encoders["orjson"] = orjson.dumps
        decoders["orjson"] = orjson.loads
    except ImportError:
        print("(orjson is not installed: `pip install orjson` to compare it too)")
    print(
        f"\nJSON per trace record ({len(objs)} records, mean line {sum(map(len, lines)) / len(lines):.0f} bytes):"
    )
    for title, table, items in (("encode", encoders, objs), ("parse", decoders, lines)):
        base = None
        for name, fn in table.items():

            def run(fn: Callable[[Any], Any] = fn, items: list[Any] = items) -> None:
                for item in items:
                    fn(item)

            run()  # warm up: first calls build caches (msgspec's type info, for one)
            seconds = best_of(repeat, run)
            per = seconds / len(items) * 1e6
            base = base or per
            print(f"  {title:6} {name:14} {per:6.2f} us/record   {base / per:5.1f}x json")


def throughput(path: Path, factory: Any, repeat: int, label: str) -> float:
    count = 0

    def read() -> None:
        nonlocal count
        header, records = read_trace(path)
        count = sum(1 for _ in records)

    seconds = best_of(repeat, read)
    print(f"\n{label}\n  read_trace   {count / seconds:12,.0f} records/s")
    matched = 0

    def replay() -> None:
        nonlocal matched
        report = replay_exact(path, factory)
        assert report.ok and report.exited, report.format()
        matched = report.matched

    seconds = best_of(repeat, replay)
    rate = matched / seconds
    verdict = "meets" if rate >= GOAL else "MISSES"
    print(
        f"  replay_exact {rate:12,.0f} syscalls/s  ({matched:,} syscalls in {seconds:.2f} s; {verdict} the goal of {GOAL:,}/s)"
    )
    return rate


def real_machine_trace(directory: Path, syscalls: int) -> Path | None:
    try:
        from simnet.server.apps import make_app
        from simnet.server.machine import ServerConfig, ServerMachine
    except ImportError:
        return None
    config = ServerConfig(recv_size=4096)
    header = TraceHeader.create(backend="simnet", app="echo", server_config=config, seed=1)
    path = directory / "real.jsonl"
    with TraceWriter(path, header) as writer:
        recorder = Recorder(ServerMachine(config, make_app("echo")), writer, flush_before_wait=False)
        run_direct(recorder, FakeKernel(1, syscalls))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small trace, one repeat")
    parser.add_argument("--syscalls", type=int, help="trace length (default 500,000; 20,000 with --quick)")
    parser.add_argument("--repeat", type=int, help="runs per figure, best kept (default 3; 1 with --quick)")
    args = parser.parse_args()
    syscalls = args.syscalls or (20_000 if args.quick else 500_000)
    repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / "fake.jsonl"
        start = time.perf_counter()
        recorded = record_fake_run(path, seed=7, syscalls=syscalls)
        seconds = time.perf_counter() - start
        print(
            f"recorded {recorded:,} syscalls ({path.stat().st_size / 1e6:.1f} MB) in {seconds:.2f} s "
            f"= {recorded / seconds:,.0f}/s (fake kernel and echo machine included)"
        )
        json_libraries(path, min(recorded, 50_000), repeat)
        rate = throughput(
            path, make_echo_machine, repeat, "stand-in echo machine (tests/trace/trace_fakes.py):"
        )
        real = real_machine_trace(directory, syscalls)
        if real is not None:
            throughput(real, None, repeat, "simnet.server.machine.ServerMachine, echo app, default factory:")
        else:
            print("\n(simnet.server.machine is not importable yet: only the stand-in machine was replayed)")
    print(f"\nreplay speed: {rate:,.0f} syscalls/s (goal {GOAL:,}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
