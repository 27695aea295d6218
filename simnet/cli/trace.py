"""`simnet replay`, `simnet show` and `simnet record`: exact replay and re-simulation of machine
and program traces, the per-connection timeline, and recording a live program.

Exit status: 0 all well, 1 the replay diverged (or, with `--sim`, a connection's response stream
differs from the recorded one), 2 bad input. Bad input -- a malformed trace, a missing file, a
factory that cannot be imported, a bad option value -- is one line on stderr (`path:line:
problem`) and never a traceback: the user's mistake is not our crash.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from simnet.trace.codec import TraceError

EXIT_OK = 0
EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="replay a trace exactly through a fresh server machine",
        description=(
            "Build the server machine the trace's header describes, hand it the recorded results "
            "and check that it asks for exactly the recorded syscalls. Exit status 0: all matched; "
            "1: the first divergence is printed; 2: the trace is malformed. "
            "With --sim, re-simulate instead: take the clients' behaviour out of the trace (when "
            "each connected, what it sent and when, how it ended, how fast it read), run it against "
            "the same app and config in simnet, and compare each connection's response stream with "
            "the recorded one; exit status 0: all equal (a reset connection may be cut at another "
            "byte), 1: a stream differs. See docs/resim.md."
        ),
    )
    parser.add_argument("trace", help="the trace file (JSON Lines, see docs/trace-format.md)")
    parser.add_argument(
        "program",
        nargs=argparse.REMAINDER,
        help="after --: the recorded program, `python app.py [args]` or `python -m module [args]` "
        "(a `simnet record` trace): rerun it with no network, every call answered from the trace; "
        "with --sim, run it on simnet.aio against the recorded clients (docs/aio.md)",
    )
    parser.add_argument(
        "--machine",
        metavar="MODULE:FACTORY",
        help="build the machine with FACTORY(header) from MODULE instead of from the header's app and configs",
    )
    parser.add_argument(
        "--context", type=int, default=5, metavar="N", help="records to show before a divergence (default 5)"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the traceback when the machine raised"
    )
    sim = parser.add_argument_group("re-simulation (--sim)")
    # Option values are taken as text and checked in _cmd_resim, so that a bad one is one line
    # on stderr like every other bad input (argparse would print its usage block first).
    sim.add_argument(
        "--sim",
        action="store_true",
        help="re-simulate the trace's clients in simnet instead of replaying exactly",
    )
    sim.add_argument("--seed", metavar="N", help="the simulated network's seed (default 0)")
    sim.add_argument(
        "--latency",
        metavar="DURATION",
        help="one-way latency between clients and server: 1ms, 250us, 0.5s (default 0)",
    )
    sim.add_argument("--rcvbuf", metavar="BYTES", help="override the server's SO_RCVBUF")
    sim.add_argument("--sndbuf", metavar="BYTES", help="override the server's SO_SNDBUF")
    sim.add_argument(
        "--trace", dest="trace_out", metavar="OUT.jsonl", help="write the simulated server's trace here"
    )
    sim.add_argument(
        "--pcap", metavar="OUT.pcap", help="write every segment of the re-simulation as pcap, for Wireshark"
    )
    sim.add_argument(
        "--asap",
        action="store_true",
        help="send each client's data as soon as it is connected, not at the recorded times",
    )
    sim.add_argument(
        "--no-pace", action="store_true", help="clients read as fast as they can, not at the recorded rate"
    )
    # A program's re-simulation (`--sim T -- python app.py`, simnet/aio/resim.py) runs on
    # simnet.aio, which has every fault of `simnet run`; the machine's re-simulation has none.
    sim.add_argument("--loss", metavar="RATE", help="program: per-segment loss probability on every link")
    sim.add_argument("--reorder", metavar="RATE", help="program: per-segment probability of being held back 5 ms")
    sim.add_argument("--jitter", metavar="DIST:PARAMS", help="program: extra delay per segment, e.g. uniform:0:2ms")
    sim.add_argument("--short-io", metavar="RATE", help="program: short recv/send and spurious wake-ups, at this rate")
    sim.add_argument("--faults", metavar="SCHEDULE.toml", help="program: a fault schedule (docs/faults.md)")
    sim.add_argument(
        "--seeds", metavar="0-9", help="program: re-simulate once per seed (e.g. 0-9 or 1,5,9-12), then summarise"
    )
    parser.set_defaults(_replay_parser=parser)
    parser.set_defaults(func=cmd_replay)
    return parser


def add_show_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "show",
        help="print a trace as a timeline per connection, with a summary",
        description=(
            "Print each connection's accept, reads (sizes, EAGAIN), writes (partial counts), "
            "waits for EPOLLOUT, EOF or RST and close, then counts per syscall and per errno."
        ),
    )
    parser.add_argument("trace", help="the trace file (JSON Lines, see docs/trace-format.md)")
    parser.add_argument(
        "--conn", type=int, metavar="N", help="show only connection #N (numbered in order of accept)"
    )
    parser.add_argument("--summary", action="store_true", help="print only the summary")
    parser.add_argument(
        "--preview", type=int, default=40, metavar="CHARS", help="payload characters to show (default 40)"
    )
    parser.set_defaults(func=cmd_show)
    return parser


def _bad_input(message: str) -> int:
    print(message, file=sys.stderr)
    return EXIT_BAD_INPUT


def _load_factory(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--machine {spec!r}: expected MODULE:FACTORY, e.g. mytests.machines:make_machine")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--machine {spec!r}: cannot import {module_name}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--machine {spec!r}: {module_name} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


_SIM_OPTIONS = ("seed", "latency", "rcvbuf", "sndbuf", "trace_out", "pcap", "asap", "no_pace")
_PROGRAM_SIM_OPTIONS = ("loss", "reorder", "jitter", "short_io", "faults", "seeds")


def _sim_option_given(args: argparse.Namespace) -> str | None:
    for name in (*_SIM_OPTIONS, *_PROGRAM_SIM_OPTIONS):
        value = getattr(args, name, None)
        if value not in (None, False):
            return "--trace" if name == "trace_out" else "--" + name.replace("_", "-")
    return None


def _int_option(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"--{name} {text!r}: expected an integer") from None


def _size_option(name: str, text: str | None) -> int | None:
    """A positive size, as every command reads one (4096, 64k, 64KiB: simnet/units.py)."""
    if text is None:
        return None
    from simnet.units import parse_size

    try:
        return parse_size(text, positive=True)
    except ValueError:
        raise ValueError(f"--{name} {text!r}: expected a positive number of bytes, e.g. 4096 or 64k") from None


def _program_trace(path: str) -> str | None:
    """The one-line refusal for a program trace handed to the machine's replay, else None."""
    from simnet.trace.reader import read_trace

    try:
        header, records = read_trace(path)
        records.close()  # type: ignore[attr-defined]
    except (TraceError, OSError):
        return None  # the replay itself words these
    if header.program is None:
        return None
    argv = " ".join(str(a) for a in header.program.get("argv", [])) or "app.py"
    return (
        f"{path}:1: a trace of a program ({header.backend}), not of the server machine: "
        f"replay it with the program, `simnet replay {path} -- python {argv}`"
    )


def _options_after_trace(args: argparse.Namespace) -> None:
    """Options written after the trace (`replay --sim T --latency 1ms [-- python app.py]`) land
    in the program's REMAINDER: parse them as options, and keep only what follows `--`."""
    words = list(getattr(args, "program", None) or [])
    parser = getattr(args, "_replay_parser", None)
    if not words or not words[0].startswith("-") or words[0] == "--" or parser is None:
        return
    cut = words.index("--") if "--" in words else len(words)
    # Options before the trace's positional: REMAINDER then takes nothing of them.
    parser.parse_args([*words[:cut], args.trace], namespace=args)
    args.program = words[cut:]


def cmd_replay(args: argparse.Namespace) -> int:
    _options_after_trace(args)
    if getattr(args, "program", None):
        return _cmd_replay_program(args)
    refusal = _program_trace(args.trace)
    if refusal is not None:
        return _bad_input(refusal)
    if getattr(args, "sim", False):
        for name in _PROGRAM_SIM_OPTIONS:
            if getattr(args, name, None) is not None:
                flag = "--" + name.replace("_", "-")
                return _bad_input(
                    f"simnet replay: {flag} applies only to a program's re-simulation "
                    f"(simnet replay --sim TRACE -- python app.py)"
                )
        return _cmd_resim(args)
    given = _sim_option_given(args)
    if given is not None:
        return _bad_input(f"simnet replay: {given} applies only to a re-simulation: add --sim")
    from simnet.drivers.replay import replay_exact  # not at import time: simnet.drivers.replay imports simnet.trace

    try:
        factory = _load_factory(args.machine) if args.machine else None
    except ValueError as exc:
        return _bad_input(f"simnet replay: {exc}")
    try:
        report = replay_exact(args.trace, factory, context=max(0, args.context))
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        return _bad_input(f"{args.trace}: cannot read: {exc.strerror or exc}")
    except ImportError as exc:
        # Only the default factory imports anything: the server machine is not installed.
        return _bad_input(
            f"simnet replay: cannot build the server machine ({exc}); pass --machine MODULE:FACTORY"
        )
    print(report.format())
    if report.divergence is not None:
        if args.verbose and report.divergence.traceback:
            print(report.divergence.traceback, end="")
        return EXIT_DIVERGED
    return EXIT_OK


def _cmd_resim(args: argparse.Namespace) -> int:
    """`simnet replay --sim`: re-simulate, print one line per connection and a total."""
    from simnet.sim.resim import resimulate
    from simnet.units import parse_duration_ns

    if args.machine:
        return _bad_input(
            "simnet replay: --machine cannot be combined with --sim (it builds the app from the header)"
        )
    try:
        seed = _int_option("seed", args.seed)
        rcvbuf = _size_option("rcvbuf", args.rcvbuf)
        sndbuf = _size_option("sndbuf", args.sndbuf)
        try:
            latency = None if args.latency is None else parse_duration_ns(args.latency)
        except ValueError as exc:
            raise ValueError(f"--latency {exc}") from None
        del latency  # checked here for a one-line message; resimulate parses the same text
    except ValueError as exc:
        return _bad_input(f"simnet replay: {exc}")
    pcap_file = None
    if args.pcap is not None:  # opened now, so that a bad path costs no simulation
        try:
            pcap_file = open(args.pcap, "wb", buffering=1 << 20)  # noqa: SIM115 (closed after the run)
        except OSError as exc:
            return _bad_input(f"simnet replay: --pcap {args.pcap}: {exc.strerror or exc}")
    try:
        report = resimulate(
            args.trace,
            seed=seed or 0,
            latency=args.latency,
            rcvbuf=rcvbuf,
            sndbuf=sndbuf,
            trace_out=args.trace_out,
            timing="asap" if args.asap else "recorded",
            pace_reads=not args.no_pace,
            pcap=pcap_file,
        )
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.trace
        verb = "cannot write" if args.trace_out is not None and name == args.trace_out else "cannot read"
        return _bad_input(f"{name}: {verb}: {exc.strerror or exc}")
    except ValueError as exc:
        return _bad_input(f"simnet replay: {exc}")
    finally:
        if pcap_file is not None:
            pcap_file.close()
    print(report.format())
    return EXIT_OK if report.ok else EXIT_DIVERGED


# -- programs: `simnet record -- python app.py` and `simnet replay T.jsonl -- python app.py` ------
# The program runs in a Python process of its own (the launcher in simnet/aio replaces this
# process, so signals reach the program as they would without simnet); nothing of simnet.aio is
# imported here.


def _program_words(words: list[str]) -> list[str]:
    return words[1:] if words and words[0] == "--" else list(words)


def _launch(
    module: str, trace: str, words: list[str], hash_seed: str | None, options: list[str] | None = None
) -> int:
    """Replace this process by `python -m module [options] trace -- program...` (the program's
    Python: this one for a bare `python`/`python3`, else the interpreter named)."""
    import shutil

    python = sys.executable
    if words and os.path.basename(words[0]).startswith("python") and not words[0].endswith(".py"):
        named = words[0]
        if named not in ("python", "python3") and os.path.basename(named) != os.path.basename(sys.executable):
            found = shutil.which(named)
            if found is None:
                return _bad_input(f"{named}: no such interpreter")
            python = found
        words = words[1:]
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = hash_seed
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [python, "-m", module, *(options or []), trace, "--", *words], env)
    return EXIT_BAD_INPUT  # not reached


def add_record_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "record",
        help="run a program on real sockets and record its syscalls, clock and randomness",
        description=(
            "Run `python app.py [args]` (or `python -m module [args]`) unchanged, on real sockets "
            "and stock asyncio, and write every socket and epoll call with its result, and what it "
            "read of the clock and of randomness, to TRACE (docs/trace-format.md). SIGINT/SIGTERM "
            "end the program as usual and leave a complete trace. `simnet replay TRACE -- python "
            "app.py` replays it exactly; add --sim to re-run its clients in simulation."
        ),
    )
    parser.add_argument("--trace", required=True, metavar="TRACE.jsonl", help="where to write the trace")
    parser.add_argument("program", nargs=argparse.REMAINDER, help="after --: python app.py [args]")
    parser.set_defaults(func=cmd_record)
    return parser


def cmd_record(args: argparse.Namespace) -> int:
    words = _program_words(args.program)
    if not words:
        return _bad_input("simnet record: no program given: simnet record --trace T.jsonl -- python app.py [args]")
    # The program's hash seed is fixed and recorded (set iteration order must replay the same).
    hash_seed = os.environ.get("PYTHONHASHSEED") or str(int.from_bytes(os.urandom(4), "big"))
    return _launch("simnet.aio.record_main", args.trace, words, hash_seed)


def _cmd_replay_program(args: argparse.Namespace) -> int:
    words = _program_words(args.program)
    if not words:
        return _bad_input("simnet replay: no program given after --")
    if args.machine:
        return _bad_input("simnet replay: --machine replays the server machine, not a program")
    sim = bool(getattr(args, "sim", False))
    if not sim:
        given = _sim_option_given(args)
        if given is not None:
            return _bad_input(f"simnet replay: {given} applies only to a re-simulation: add --sim")
    from simnet.trace.reader import read_trace

    try:
        header, records = read_trace(args.trace)
        records.close()  # type: ignore[attr-defined]
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        return _bad_input(f"{args.trace}: cannot read: {exc.strerror or exc}")
    hash_seed = None if header.program is None else str(header.program.get("hash_seed") or "") or None
    if sim:
        # simnet/aio/resim.py checks the values (one line, exit 2) and runs the program there;
        # a fixed hash seed keeps a seed's run the same run.
        options: list[str] = []
        for name in (*_SIM_OPTIONS, *_PROGRAM_SIM_OPTIONS):
            value = getattr(args, name, None)
            flag = "--trace" if name == "trace_out" else "--" + name.replace("_", "-")
            if value is True:
                options.append(flag)
            elif value not in (None, False):
                options += [flag, str(value)]
        return _launch("simnet.aio.resim", args.trace, words, hash_seed or "0", options)
    return _launch("simnet.aio.replay_main", args.trace, words, hash_seed)


def cmd_show(args: argparse.Namespace) -> int:
    from simnet.trace.show import render_trace

    try:
        text = render_trace(
            args.trace, conn=args.conn, summary_only=args.summary, preview=max(1, args.preview)
        )
    except TraceError as exc:
        return _bad_input(str(exc))
    except OSError as exc:
        return _bad_input(f"{args.trace}: cannot read: {exc.strerror or exc}")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `simnet show trace | head`: the reader left, which is fine. Point stdout at /dev/null
        # so the interpreter's own flush at exit does not complain about the pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK
