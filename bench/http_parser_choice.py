"""Which HTTP parser under the http app: httptools (llhttp, C) or h11 (pure Python)?

Runs the *same* protocol code (simnet.server.apps.http.HttpProtocol) on both parsers, side by
side in one process, on the same inputs, and prints requests/second and the ratio. It first
checks that both produce byte-identical output for every input, so the figures compare like with
like. The h11 adapter lives here, not in the package: only the winner is a runtime dependency.

    .venv/bin/pip install h11 httptools      # h11 is needed only by this benchmark
    .venv/bin/python bench/http_parser_choice.py [--requests N] [--repeat R]

Inputs (each a list of reads handed to one connection's `receive`):
  keepalive   one GET per read, as a keep-alive client that waits for each response sends them
  pipelined   all GETs back to back, cut into 64 KiB reads
  post-echo   pipelined POST /echo with a 64-byte Content-Length body
  split-3     pipelined GETs cut into 3-byte reads: a slow, trickling peer
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

try:
    import h11
except ImportError:  # pragma: no cover - a one-line message instead of a traceback
    sys.exit("bench/http_parser_choice.py needs h11: .venv/bin/pip install h11")

from simnet.server.apps.http import (
    BadRequest,
    Http,
    HttpProtocol,
    HttptoolsParser,
    RequestHead,
    RequestParser,
    RequestSink,
    head_size,
)


class H11Parser:
    """RequestParser on h11, used as a parser only.

    h11 parses one request per cycle and will not hand out the next pipelined request until our
    side of the cycle is done; the real response bytes are the app's, so we finish each cycle
    with a stand-in response and start the next. h11 treats every HTTP/1.0 request as closing;
    for an HTTP/1.0 keep-alive request we carry the unparsed bytes over to a fresh h11.Connection.
    """

    def __init__(self, sink: RequestSink, max_header_bytes: int) -> None:
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        self._keep_alive = False
        self._in_body = False

    @property
    def in_head(self) -> bool:
        return not self._in_body and bool(self._conn.trailing_data[0])

    @property
    def in_message(self) -> bool:
        return self._in_body or self.in_head

    def feed(self, data: bytes) -> None:
        self._conn.receive_data(data)
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise BadRequest(exc.error_status_hint, str(exc)) from None
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                headers = tuple((bytes(k), bytes(v)) for k, v in event.headers)
                version = event.http_version.decode()
                tokens = b",".join(v for k, v in headers if k == b"connection").lower()
                if version == "1.0":
                    self._keep_alive = b"keep-alive" in tokens
                else:
                    self._keep_alive = b"close" not in tokens
                self._in_body = True
                self._sink.on_head(
                    RequestHead(
                        method=bytes(event.method),
                        target=bytes(event.target),
                        version=version,
                        headers=headers,
                        keep_alive=self._keep_alive,
                        head_size=head_size(bytes(event.method), bytes(event.target), headers),
                    )
                )
            elif isinstance(event, h11.Data):
                self._sink.on_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._in_body = False
                self._sink.on_end()
                self._conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
                self._conn.send(h11.EndOfMessage())
                if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
                    self._conn.start_next_cycle()
                elif self._keep_alive:  # HTTP/1.0 keep-alive: h11 says MUST_CLOSE, we do not
                    rest, _closed = self._conn.trailing_data
                    self._conn = h11.Connection(
                        h11.SERVER, max_incomplete_event_size=self._max_header_bytes
                    )
                    self._conn.receive_data(rest)
                else:
                    return
            else:  # ConnectionClosed
                return


REQUEST = (
    b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: bench/1.0\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\n\r\n"
)
POST = (
    b"POST /echo HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: bench/1.0\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Length: 64\r\n\r\n" + b"x" * 64
)


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def inputs(n: int) -> dict[str, list[bytes]]:
    return {
        "keepalive": [REQUEST] * n,
        "pipelined": _chunks(REQUEST * n, 64 * 1024),
        "post-echo": _chunks(POST * n, 64 * 1024),
        "split-3": _chunks(REQUEST * max(1, n // 20), 3),
    }


def run(parser: Callable[[RequestSink, int], RequestParser], reads: list[bytes]) -> tuple[bytes, int]:
    """Feed the reads to one connection, pulling all output after each; (output, responses)."""
    app = HttpProtocol(Http(), parser)
    out = bytearray()
    for data in reads:
        out += app.receive(data)
        while piece := app.pull(1 << 20):
            out += piece
    return bytes(out), app.responses


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    parsers = {"httptools": HttptoolsParser, "h11": H11Parser}
    print(f"{'input':<10} {'requests':>8} " + " ".join(f"{p + ' req/s':>15}" for p in parsers)
          + f" {'httptools/h11':>14}")
    for name, reads in inputs(args.requests).items():
        outputs = {p: run(f, reads) for p, f in parsers.items()}
        first = next(iter(outputs.values()))
        for p, got in outputs.items():
            if got != first:
                print(f"{name}: {p} output differs from httptools's; not comparable", file=sys.stderr)
                return 1
        rates = {}
        for p, f in parsers.items():
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                run(f, reads)
                times.append(time.perf_counter() - t0)
            rates[p] = first[1] / statistics.median(times)
        print(f"{name:<10} {first[1]:>8} " + " ".join(f"{rates[p]:>15,.0f}" for p in parsers)
              + f" {rates['httptools'] / rates['h11']:>13.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
