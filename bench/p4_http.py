"""P4: realnet HTTP keep-alive under wrk, against asyncio serving the same app, and asyncio + h11.

    python bench/p4_http.py            # 3 rounds of 3 s of wrk per server
    python bench/p4_http.py --quick    # a smoke run: 1 round of 1 s
    python bench/p4_http.py --serve asyncio|h11 [--port 0]   # one peer server on its own

The servers, each a fresh process pinned to one core, with wrk (1 thread, 50 keep-alive
connections, `GET /`) pinned to the other:
  realnet   `realnet serve --app http`: the simnet ServerMachine on real sockets and epoll;
  asyncio   an asyncio `Protocol` serving the *same* app objects (simnet.server.apps.http: bytes
            in -> app.receive -> transport.write, then app.pull until empty; app.eof at EOF;
            closed when the app says so after its output);
  h11       asyncio `Protocol` + h11 (the usual pure-Python HTTP/1.1 stack), answering `GET /`
            with the same head fields and body as the http app.
Both asyncio peers free one 1 MiB block at start-up: CPython 3.11's asyncio reads with
recv(256 KiB), and until glibc's dynamic mmap threshold has been raised once (by freeing an
mmapped block) every such read is an mmap + munmap, up to 3x slower. Warming it makes the peer
faster, not slower. Each server also gets one unmeasured second of wrk first.

Goals: realnet >= 1.0x asyncio with the same app, and >= 5x asyncio + h11.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

GOAL_ASYNCIO = 1.0
GOAL_H11 = 5.0
CONNS = 50


def warm_allocator() -> None:
    """Raise glibc's dynamic mmap threshold: free one block above the default 128 KiB threshold."""
    block = bytearray(1024 * 1024)
    del block


# -- the asyncio peer with the simnet http app ----------------------------------------------------


class AppProtocol(asyncio.Protocol):
    """One connection: the simnet app object behind an asyncio transport."""

    def __init__(self, factory: Any) -> None:
        self.app = factory()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _flush(self, out: bytes) -> None:
        transport = self.transport
        assert transport is not None
        app = self.app
        while out:
            transport.write(out)
            out = app.pull(65536)
        if app.close_after_flush:
            transport.close()  # after the buffered output is written

    def data_received(self, data: bytes) -> None:
        self._flush(self.app.receive(data))

    def eof_received(self) -> bool:
        self._flush(self.app.eof())
        return False


# -- asyncio + h11 --------------------------------------------------------------------------------


class H11Protocol(asyncio.Protocol):
    """`GET /` -> 200 with the http app's body and head fields, on h11."""

    def __init__(self) -> None:
        import h11

        from simnet.server.apps.http import HELLO

        self.h11 = h11
        self.hello = HELLO
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._events()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._events()
        return False

    def _events(self) -> None:
        h11, conn, transport = self.h11, self.conn, self.transport
        assert transport is not None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                transport.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED and conn.our_state is not h11.DONE:
                return
            if isinstance(event, h11.Request):
                ok = event.target.split(b"?", 1)[0] == b"/"
                body = self.hello if ok else b"404 Not Found\n"
                out = conn.send(
                    h11.Response(
                        status_code=200 if ok else 404,
                        reason=b"OK" if ok else b"Not Found",
                        headers=[
                            ("Server", "simnet"),
                            ("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body))),
                        ],
                    )
                )
                out += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
                transport.write(out)
            elif isinstance(event, h11.ConnectionClosed):
                transport.close()
                return
            elif event is h11.PAUSED or isinstance(event, h11.EndOfMessage):
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                elif conn.our_state is h11.MUST_CLOSE:
                    transport.close()
                    return


def serve(kind: str, port: int) -> None:
    """Serve `kind` on 127.0.0.1:port until killed; print the port once listening."""
    warm_allocator()
    if kind == "asyncio":
        from simnet.server.apps import make_app

        factory = make_app("http")

        def protocol() -> asyncio.Protocol:
            return AppProtocol(factory)

    elif kind == "h11":
        protocol = H11Protocol
    else:
        raise SystemExit(f"unknown server {kind!r}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, C.HOST, port, backlog=128)
        bound = server.sockets[0].getsockname()[1]
        print(f"{kind}: serving on http://{C.HOST}:{bound}", flush=True)
        gc.collect()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# -- the benchmark --------------------------------------------------------------------------------


def have_h11(install: bool = False) -> bool:
    try:
        import h11  # noqa: F401

        return True
    except ImportError:
        pass
    if not install:
        return False
    done = subprocess.run([C.PYTHON, "-m", "pip", "install", "--quiet", "h11"], capture_output=True, timeout=300)
    if done.returncode != 0:
        return False
    import importlib

    importlib.invalidate_caches()
    try:
        import h11  # noqa: F401,F811

        return True
    except ImportError:
        return False


def peer_argv(kind: str) -> list[str]:
    return [C.PYTHON, str(Path(__file__).resolve()), "--serve", kind, "--port", "0"]


def measure(argv: list[str], seconds: float, warm: float) -> dict[str, Any]:
    with C.server(argv) as srv:
        return C.wrk_server(srv, seconds, warm=warm, conns=CONNS)


def run(quick: bool = False, rounds: int | None = None, install_h11: bool = False) -> dict[str, Any]:
    measure_name = "realnet HTTP keep-alive requests/s under wrk (GET /, 50 connections)"
    goal_a, goal_h = f">= {GOAL_ASYNCIO:.1f}x", f">= {GOAL_H11:.0f}x"
    peer_a = "asyncio Protocol with the same app objects (allocator warmed)"
    peer_h = "asyncio + h11 (allocator warmed)"
    if C.WRK is None:
        why = "wrk is not installed (apt-get install wrk)"
        return {
            "rows": [C.skipped_row("P4a", measure_name, peer_a, goal_a, why),
                     C.skipped_row("P4b", measure_name, peer_h, goal_h, why)],
            "details": [f"P4 skipped: {why}."],
            "skipped": why,
        }
    seconds, warm = (1.0, 0.0) if quick else (3.0, 1.0)
    rounds = rounds or (1 if quick else 3)
    h11_ok = have_h11(install_h11)
    kinds = ["realnet", "asyncio"] + (["h11"] if h11_ok else [])
    rps: dict[str, list[float]] = {k: [] for k in kinds}
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(rounds):
        for kind in kinds:
            argv = C.realnet_argv("http") if kind == "realnet" else peer_argv(kind)
            result = measure(argv, seconds, warm)
            rps[kind].append(result["rps"])
            cpu[kind].append(result["cpu_us_per_request"])
    real = C.spread(rps["realnet"])
    how = f"{rounds} rounds of {seconds:.0f} s per server, servers alternating"
    rows = []
    details = [f"P4: wrk -t1 -c{CONNS} -d{seconds:.0f}s `GET /`, {how}; server CPU time per request "
               "(/proc/PID/schedstat; steadier than wall time on a shared machine):"]
    for kind in kinds:
        details.append(f"  {kind:8} {C.fmt_spread(C.spread(rps[kind]), 'req/s')}, "
                       f"{C.fmt_spread(C.spread(cpu[kind]), 'us CPU/request')}")
    peers = [("asyncio", "P4a", peer_a, goal_a, GOAL_ASYNCIO), ("h11", "P4b", peer_h, goal_h, GOAL_H11)]
    for kind, rid, peer, goal, target in peers:
        if kind not in kinds:
            rows.append(C.skipped_row(rid, measure_name, peer, goal, "h11 is not installed and could not be"))
            continue
        r = C.ratios(rps["realnet"], rps[kind])
        by_cpu = C.ratios(cpu[kind], cpu["realnet"])
        details.append(f"  realnet / {kind}: {C.fmt_spread(r, ratio=True)} by requests/s, "
                       f"{C.fmt_spread(by_cpu, ratio=True)} by CPU per request")
        rows.append(C.row(id=rid, measure=measure_name, figure=real, unit="req/s", peer=peer,
                          peer_figure=C.spread(rps[kind]), ratio=r, goal=goal, met=r["median"] >= target,
                          note=f"{how}; by server CPU per request {C.fmt_ratio(by_cpu['median'])}"))
    return {"rows": rows, "details": details, "rounds": rounds, "seconds": seconds, "rps": rps,
            "cpu_us_per_request": cpu}


def report(figures: dict[str, Any]) -> list[str]:
    return [line for r in figures["rows"] for line in C.row_lines(r)] + figures["details"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    parser.add_argument("--install-h11", action="store_true", help="pip install h11 if it is missing")
    parser.add_argument("--serve", choices=["asyncio", "h11"], help="run one peer server until killed")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    for line in report(run(args.quick, args.rounds, args.install_h11)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
