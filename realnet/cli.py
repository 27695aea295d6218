"""The `realnet` command: run the simnet server machine on real sockets.

    realnet serve --app http --port 8080 [--record traces/run.jsonl] [options]

It prints `realnet: serving APP on http://HOST:PORT (pid N)` once listening (with --port 0, the
port the kernel picked), serves until SIGINT or SIGTERM, shuts down gracefully and prints a
one-line summary. Exit status: 0 after a clean shutdown; 2 for bad arguments or when it cannot
listen (port in use, address not local); 1 when the run ended any other way (a second signal
during the shutdown, a failure of the server itself).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from typing import Any, NoReturn

from simnet import units
from simnet.server.config import ServerConfig

USAGE_EXIT = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# Durations and sizes are read by simnet/units.py, as `simnet run` reads them: a bare number of
# seconds as before, or 5ms, 1.5s; 65536, 64k, 64KiB, 1m. Sizes here are all positive.


def _seconds_or_off(text: str) -> int | None:
    """A positive timeout (`5`, `1.5s`, `500ms`) as integer ns; "off" disables it."""
    if units.is_off(text):
        return None
    try:
        return units.parse_duration_ns(text, positive=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (or 'off')") from None


def _seconds(text: str) -> int:
    """A duration >= 0 (`5`, `1.5s`, `500ms`) as integer ns."""
    try:
        return units.parse_duration_ns(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size_or_off(text: str) -> int | None:
    return None if units.is_off(text) else _size(text)


def _size(text: str) -> int:
    """A positive byte count: 4096, 64k, 64KiB, 1m (binary multiples)."""
    try:
        return units.parse_size(text, positive=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535 (0: any free port), not {value}")
    return value


def _host(text: str) -> str:
    if text == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an IPv4 address such as 127.0.0.1, not {text!r}") from None


# The server's defaults are ServerConfig's: written once, there.
DEFAULTS = ServerConfig()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="realnet", description="Run the simnet server machine on real sockets and epoll.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser(
        "serve",
        help="serve an app on a real port until SIGINT/SIGTERM",
        description="Serve an app on real non-blocking sockets and epoll until SIGINT/SIGTERM, then shut "
        "down gracefully. Durations are in seconds ('off' disables a timeout); sizes in bytes (64k, 1m).",
    )
    p.add_argument("--app", required=True, choices=["echo", "http"], help="the app to serve")
    p.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--host",
        type=_host,
        default="127.0.0.1",
        help="IPv4 address to bind (default 127.0.0.1; a non-loopback address serves the network)",
    )
    p.add_argument("--record", metavar="TRACE.jsonl", help="record the run's syscalls to this trace file")
    g = p.add_argument_group("server")
    g.add_argument("--edge-triggered", action="store_true", help="register connections IN|OUT|RDHUP|ET once")
    g.add_argument(
        "--backlog", type=int, default=DEFAULTS.backlog, help=f"listen(2) backlog (default {DEFAULTS.backlog})"
    )
    g.add_argument(
        "--max-connections",
        type=_count,
        default=DEFAULTS.max_connections,
        help="open connections at once; above it the server stops accepting and new ones wait in the listen "
        f"backlog (default {DEFAULTS.max_connections})",
    )
    g.add_argument(
        "--output-cap",
        type=_size,
        default=DEFAULTS.output_cap,
        help="pending output per connection before it stops reading",
    )
    g.add_argument("--recv-size", type=_size, default=DEFAULTS.recv_size, help="bytes per recv (default 64k)")
    g.add_argument(
        "--send-size",
        type=_size_or_off,
        default=DEFAULTS.send_size,
        help="most pending output offered per send, and recorded per Send (default 64k; off: all of it)",
    )
    g.add_argument(
        "--max-events",
        type=_count,
        default=DEFAULTS.max_events,
        help=f"events per epoll_wait (default {DEFAULTS.max_events})",
    )
    g.add_argument("--rcvbuf", type=_size, help="SO_RCVBUF for the listener, inherited (default: autotuning)")
    g.add_argument("--sndbuf", type=_size, help="SO_SNDBUF for the listener, inherited (default: autotuning)")
    g.add_argument("--no-nodelay", action="store_true", help="leave Nagle on (no TCP_NODELAY)")
    g.add_argument("--io-budget", type=_count, default=DEFAULTS.io_budget, help="syscalls per connection per turn")
    g.add_argument("--accept-budget", type=_count, default=DEFAULTS.accept_budget, help="accepts per turn")
    t = p.add_argument_group("timeouts")
    t.add_argument(
        "--idle-timeout", type=_seconds_or_off, default=DEFAULTS.idle_timeout_ns, help="no byte in or out (60)"
    )
    t.add_argument(
        "--header-timeout", type=_seconds_or_off, default=DEFAULTS.header_timeout_ns, help="request head due (10)"
    )
    t.add_argument(
        "--keepalive-timeout", type=_seconds_or_off, default=DEFAULTS.keepalive_timeout_ns, help="between requests (5)"
    )
    t.add_argument(
        "--linger-timeout", type=_seconds_or_off, default=DEFAULTS.linger_timeout_ns, help="after our FIN (2)"
    )
    t.add_argument(
        "--shutdown-grace", type=_seconds, default=DEFAULTS.shutdown_grace_ns, help="in-flight work at shutdown (5)"
    )
    h = p.add_argument_group("http app")
    h.add_argument("--max-header-bytes", type=_size, help="request head limit, else 431 (default 8k)")
    h.add_argument("--max-body-bytes", type=_size, help="request body limit, else 413 (default 1m)")
    h.add_argument("--max-response-bytes", type=int, help="largest N for /bytes/N (default 100000000)")
    return parser


def _config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        backlog=args.backlog,
        edge_triggered=args.edge_triggered,
        max_connections=args.max_connections,
        output_cap=args.output_cap,
        recv_size=args.recv_size,
        send_size=args.send_size,
        max_events=args.max_events,
        rcvbuf=args.rcvbuf,
        sndbuf=args.sndbuf,
        nodelay=not args.no_nodelay,
        io_budget=args.io_budget,
        accept_budget=args.accept_budget,
        idle_timeout_ns=args.idle_timeout,
        header_timeout_ns=args.header_timeout,
        keepalive_timeout_ns=args.keepalive_timeout,
        linger_timeout_ns=args.linger_timeout,
        shutdown_grace_ns=args.shutdown_grace,
    )


def _app_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {
        name: getattr(args, name)
        for name in ("max_header_bytes", "max_body_bytes", "max_response_bytes")
        if getattr(args, name) is not None
    }
    if options and args.app != "http":
        flags = ", ".join("--" + k.replace("_", "-") for k in options)
        raise _UsageError(f"realnet serve: {flags}: only for --app http")
    return options


def _errno_text(name: str) -> str:
    import errno as errno_mod

    code = getattr(errno_mod, name, None)
    return f"{name} ({os.strerror(code)})" if isinstance(code, int) else name


# fds besides connections: stdio, the listener, epoll, the wake-up pipe, the trace, imports.
_FD_RESERVE = 32


def _fit_fd_limit(max_connections: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE (up to the hard limit) so that --max-connections can be
    reached; a note if the hard limit is too low. Below the limit the server still works: an
    accept that fails with EMFILE pauses accepting (ServerConfig.accept_retry_ns), but each
    connection queued meanwhile waits, so the limit should be the one that binds."""
    import resource

    want = max_connections + _FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return None
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    if target >= want:
        return None
    return (
        f"the open-file limit is {target} (hard limit {hard}), below --max-connections {max_connections} "
        f"+ {_FD_RESERVE}; accepting pauses on EMFILE before the connection limit is reached"
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from realnet.server import serve  # here, so that --help and argument errors stay fast

    try:
        config = _config(args)
    except (TypeError, ValueError) as exc:
        raise _UsageError(f"realnet serve: {exc}") from None
    options = _app_options(args)
    fd_note = _fit_fd_limit(config.max_connections)

    def announce(machine: Any) -> None:
        url = f"http://{config.host}:{machine.bound_port}"
        print(f"realnet: serving {args.app} on {url} (pid {os.getpid()})", flush=True)
        if not ipaddress.IPv4Address(config.host).is_loopback:
            print(f"realnet: note: {config.host} is not a loopback address; other hosts can connect", file=sys.stderr)
        if fd_note:
            print(f"realnet: note: {fd_note}", file=sys.stderr)

    try:
        outcome = serve(
            config, args.app, options, record=args.record, on_listening=announce, meta={"command": args.command_line}
        )
    except ValueError as exc:  # make_app's one-line message
        raise _UsageError(f"realnet serve: {exc}") from None
    except OSError as exc:  # the trace file cannot be created
        where = exc.filename if exc.filename is not None else args.record
        print(f"realnet: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return USAGE_EXIT
    except Exception as exc:  # noqa: BLE001 - a bug in the machine or the driver, not bad input
        # Sockets are closed and the trace is flushed by now (serve's finally clauses); the
        # trace ends with the result that made the machine fail, so `simnet replay` shows it.
        kept = f"; the run so far is in {args.record} (simnet replay {args.record})" if args.record else ""
        print(f"realnet: internal error: {type(exc).__name__}: {exc}{kept}", file=sys.stderr)
        return 1
    if outcome.setup_failed:
        reason = outcome.machine.exit_reason or "setup failed"
        call, _, err = reason.partition(": ")
        print(
            f"realnet: cannot listen on {config.host}:{config.port}: {call}: {_errno_text(err)}",
            file=sys.stderr,
        )
        return USAGE_EXIT
    print(outcome.summary(), flush=True)
    if outcome.clean:
        return 0
    if outcome.driver.forced:
        print("realnet: stopped at once on a second signal; connections were closed mid-flight", file=sys.stderr)
    else:
        print(f"realnet: the server stopped: {outcome.machine.exit_reason}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.command_line = shlex.join(["realnet", *(sys.argv[1:] if argv is None else argv)])
        if args.command is None:
            raise _UsageError("realnet: a command is required: serve (see realnet --help)")
        return cmd_serve(args)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return USAGE_EXIT
    except BrokenPipeError:
        # stdout went away (`realnet serve | head -1`): nothing left to tell anyone.
        return 1


if __name__ == "__main__":
    sys.exit(main())
