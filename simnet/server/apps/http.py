"""http: HTTP/1.1 with keep-alive and pipelining, on the llhttp parser (httptools).

Routes: `/` (a short hello), `/echo` (POST: the body back), `/bytes/N` (N bytes of `pattern()`,
streamed in pieces so that large responses exercise partial writes without large buffers), and
404 for anything else. Malformed, oversized or unsupported requests get one clear error response
(400, 405, 413, 431, 505) with `Connection: close`, and the connection closes after it.

Parsing is httptools' (llhttp, the parser in Node.js), chosen over h11 by measurement: see
docs/apps.md and bench/http_parser_choice.py. The parser sits behind the small `RequestParser`
interface below so that the benchmark can run this same protocol code on another parser.

No clock and no I/O here: timeouts (header read, keep-alive) are the machine's, chosen by `phase`.
The response carries no Date header for the same reason (RFC 9110 §6.6.1 allows omitting it when
the server has no clock); that also keeps traces byte-identical across runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

import attrs
import httptools

from simnet.server.apps.base import PHASE_BUSY, PHASE_HEAD, PHASE_IDLE, Phase

KiB = 1024
MiB = 1024 * KiB

# The deterministic body of /bytes/N: byte i of the body is PATTERN[i % len(PATTERN)]. Printable
# and newline-terminated so that a human can look at it; 64 bytes, so a misplaced or repeated
# piece shows up as a shifted line.
PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.\n"
# A pre-built run of the pattern, from which any slice of up to 64 KiB is one bytes slice.
_PATTERN_RUN = PATTERN * (64 * KiB // len(PATTERN) + 2)

HELLO = b"Hello from simnet!\n"

_REASONS = {
    100: b"Continue",
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    505: b"HTTP Version Not Supported",
}


def pattern(offset: int, n: int) -> bytes:
    """Bytes [offset, offset+n) of the /bytes/N body: what a client checks a response against."""
    out = bytearray()
    while n > 0:
        start = offset % len(PATTERN)
        take = min(n, len(_PATTERN_RUN) - start)
        out += _PATTERN_RUN[start : start + take]
        offset += take
        n -= take
    return bytes(out)


class BadRequest(Exception):
    """The peer sent something we will not serve; `status` is the response code to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@attrs.frozen(kw_only=True)
class RequestHead:
    """A parsed request line and headers, parser-independent. Header names are lower-cased."""

    method: bytes
    target: bytes
    version: str  # "1.1", "1.0", "2.0", ...: as written in the request line
    headers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool  # what RFC 9112 §9.3 says, before our own reasons to close
    head_size: int  # bytes of the head, reconstructed from its parts (see _head_size)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class RequestSink(Protocol):
    """What a parser reports to, in stream order."""

    def on_head(self, head: RequestHead) -> None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_end(self) -> None: ...


class RequestParser(Protocol):
    """A streaming HTTP/1.x request parser. `feed` raises BadRequest for input it rejects."""

    def feed(self, data: bytes) -> None: ...

    @property
    def in_head(self) -> bool: ...  # a request has begun and its head is not complete

    @property
    def in_message(self) -> bool: ...  # a request has begun and has not ended


ParserFactory = Callable[[RequestSink, int], RequestParser]

# Bytes of chunked framing allowed per chunk beyond max_header_bytes: "ffffffff\r\n" and the
# CRLF after the data are 12; the rest is room for a short chunk extension.
_CHUNK_ALLOWANCE = 64


def head_size(method: bytes, target: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> int:
    """The size of a head written canonically: `M SP T SP HTTP/x.y CRLF (N: V CRLF)* CRLF`.

    Parsers hand us the parts, not the offsets, so this is how both parsers measure a complete head
    against max_header_bytes; optional whitespace around values is not counted.
    """
    return len(method) + len(target) + 12 + sum(len(k) + len(v) + 4 for k, v in headers) + 2


class HttptoolsParser:
    """RequestParser on httptools (llhttp). llhttp parses everything it is fed and calls back
    synchronously from inside `feed_data`, so pipelined requests in one read arrive together."""

    # One per connection: slots, not a __dict__ (docs/benchmarks.md, P6).
    __slots__ = (
        "_sink", "_max_header_bytes", "_parser", "_in_message", "_head_done", "_url", "_headers",
        "_head_fed", "_head_parts", "_framing", "_body_fed", "_chunks", "_begun",
    )

    def __init__(self, sink: RequestSink, max_header_bytes: int) -> None:
        self._sink = sink
        self._max_header_bytes = max_header_bytes
        # Made at the first byte: an idle connection, which may never send one, then costs
        # ~1 KB less (docs/benchmarks.md, P6).
        self._parser: httptools.HttpRequestParser | None = None
        self._in_message = False
        self._head_done = False
        self._url = b""
        # A fresh list at each on_message_begin (llhttp calls it before any on_header); until
        # then an empty tuple, so an idle connection holds no list (docs/benchmarks.md, P6).
        self._headers: list[tuple[bytes, bytes]] | tuple[()] = ()
        # Bytes fed while a head was in progress and still incomplete: bounds the memory that a
        # never-ending head can take inside the parser. llhttp reports no offsets, so the piece of
        # the head inside the read where it began is not counted: the bound is one read loose.
        # A head that does complete is measured exactly (head_size) in on_headers_complete.
        self._head_fed = 0
        # The parts of the head seen so far (target and complete fields, as head_size counts
        # them): a head that will be too large is rejected at the field that makes it so, not at
        # the end of the read, so that one read of thousands of tiny fields never becomes
        # thousands of tuples held until the connection closes.
        self._head_parts = 0
        # After the head: bytes fed that were not body -- chunk-size lines, chunk extensions,
        # trailer fields. llhttp keeps none of them but a trailer value, which httptools buffers
        # whole before calling on_header; without a bound, a never-ending trailer value (or
        # chunk extension, or run of leading zeros in a chunk size) keeps a connection reading
        # forever, with memory growing in the first case. Counted like _head_fed, for reads that
        # begin and end inside the same body, against max_header_bytes plus a fixed allowance per
        # chunk (a chunk-size line is a few bytes; 1-byte chunks are slow but legal).
        self._framing = 0
        self._body_fed = 0  # body bytes handed to the sink during the current feed
        self._chunks = 0
        self._begun = 0  # requests begun so far

    @property
    def in_head(self) -> bool:
        return self._in_message and not self._head_done

    @property
    def in_message(self) -> bool:
        return self._in_message

    def feed(self, data: bytes) -> None:
        # Count this read against the head only if one and the same head was in progress before
        # and after it (a read may finish one request and begin the next).
        counting = self.in_head
        in_body = self._in_message and self._head_done
        begun = self._begun
        self._body_fed = 0
        parser = self._parser
        if parser is None:
            parser = self._parser = httptools.HttpRequestParser(self)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp stops after an Upgrade (or CONNECT) request. We answer it as plain HTTP/1.1
            # and close (keep_alive was forced off in on_headers_complete); the rest is not ours.
            return
        except httptools.HttpParserCallbackError as exc:
            # One of our callbacks raised: httptools wraps it; hand on the original.
            if exc.__context__ is not None:
                raise exc.__context__ from None
            raise
        except httptools.HttpParserError as exc:
            detail = str(exc)
            # llhttp rejects any version but 0.9/1.0/1.1/2.0 in the request line itself.
            raise BadRequest(505 if "HTTP version" in detail else 400, detail) from None
        if self._begun != begun:
            return
        if counting and self.in_head:
            self._head_fed += len(data)
            if self._head_fed > self._max_header_bytes:
                raise BadRequest(431, "request head too long")
        elif in_body and self._in_message:
            self._framing += len(data) - self._body_fed
            if self._framing > self._max_header_bytes + _CHUNK_ALLOWANCE * self._chunks:
                raise BadRequest(400, "chunked framing (sizes, extensions, trailers) too long")

    # httptools callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._begun += 1
        self._in_message = True
        self._head_done = False
        self._url = b""
        self._headers = []
        self._head_fed = 0
        self._head_parts = 0
        self._framing = 0
        self._chunks = 0

    def on_url(self, url: bytes) -> None:
        self._url += url  # llhttp may deliver the target in pieces across reads
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._head_done:
            return  # a trailer field (RFC 9112 §7.1.2): nothing here uses one; counted as framing
        self._headers.append((name.lower(), value))  # type: ignore[union-attr]  # a list by now
        self._count_head(len(name) + len(value) + 4)

    def _count_head(self, n: int) -> None:
        # head_size() counts these parts plus the method and 14 bytes of fixed syntax, so a head
        # rejected here would be rejected by on_head's exact check too; only sooner.
        self._head_parts += n
        if self._head_parts > self._max_header_bytes:
            self._headers = ()
            raise BadRequest(431, "request head too long")

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_headers_complete(self) -> None:
        self._head_done = True
        headers = tuple(self._headers)
        parser = self._parser
        assert parser is not None  # a callback of its own feed_data
        method = parser.get_method()
        self._sink.on_head(
            RequestHead(
                method=method,
                target=self._url,
                version=parser.get_http_version(),
                headers=headers,
                # We do not speak the protocol of an Upgrade: answer in HTTP/1.1, then close.
                keep_alive=parser.should_keep_alive() and not parser.should_upgrade(),
                head_size=head_size(method, self._url, headers),
            )
        )

    def on_body(self, body: bytes) -> None:
        self._body_fed += len(body)
        self._sink.on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._head_done = False
        self._sink.on_end()


@attrs.define
class _Outgoing:
    """One queued response: literal bytes (head and small body), then optionally a pattern body."""

    data: bytes
    pattern_len: int = 0
    final: bool = True  # False for "100 Continue", which is not counted as a response
    _sent: int = 0  # of data
    _pattern_sent: int = 0

    @property
    def done(self) -> bool:
        return self._sent == len(self.data) and self._pattern_sent == self.pattern_len

    def take(self, n: int) -> bytes:
        out = b""
        if self._sent < len(self.data):
            out = self.data[self._sent : self._sent + n]
            self._sent += len(out)
            n -= len(out)
        if n > 0 and self._pattern_sent < self.pattern_len:
            piece = pattern(self._pattern_sent, min(n, self.pattern_len - self._pattern_sent))
            self._pattern_sent += len(piece)
            out += piece
        return out


@attrs.define
class _Request:
    head: RequestHead
    route: bytes  # the path without a query, used for routing
    keep_body: bool  # /echo keeps its body; other routes count and discard it
    body: bytearray = attrs.field(factory=bytearray)
    body_len: int = 0


def _response(
    status: int,
    body: bytes,
    *,
    close: bool,
    keep_alive_header: bool = False,
    content_length: int | None = None,
    content_type: bytes = b"text/plain",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """The head (and the body, if given) of a response. We always answer as HTTP/1.1 (RFC 9110
    §2.5: a server sends its own highest version), framed by Content-Length."""
    length = len(body) if content_length is None else content_length
    lines = [
        b"HTTP/1.1 %d %s" % (status, _REASONS[status]),
        b"Server: simnet",
        b"Content-Type: " + content_type,
        b"Content-Length: %d" % length,
    ]
    lines += [k + b": " + v for k, v in extra]
    if close:
        lines.append(b"Connection: close")
    elif keep_alive_header:
        lines.append(b"Connection: keep-alive")  # HTTP/1.0 closes unless told otherwise
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class HttpProtocol:
    """One HTTP connection. See the module docstring for the routes and the error responses."""

    # One per connection: slots, not a __dict__ (docs/benchmarks.md, P6).
    __slots__ = (
        "_config", "_parser", "_queue", "_request", "_closing", "requests", "responses",
    )

    def __init__(self, config: Http, parser_factory: ParserFactory = HttptoolsParser) -> None:
        self._config = config
        self._parser = parser_factory(self, config.max_header_bytes)
        # Responses in request order (pipelining). An empty tuple until the first response: a
        # deque costs ~600 bytes, which an idle connection need not pay (docs/benchmarks.md, P6).
        self._queue: deque[_Outgoing] | tuple[()] = ()
        self._request: _Request | None = None  # the request whose head is in and end is not
        # Set once a response that closes the connection is queued, or at EOF. From then on input
        # is ignored: requests pipelined behind a `Connection: close` are never answered (RFC 9112
        # §9.6), and the parser may complain about them, which must not replace a good answer.
        self._closing = False
        self.requests = 0  # request heads parsed
        self.responses = 0  # final responses handed out completely

    # the AppProtocol interface ------------------------------------------------------------------

    @property
    def close_after_flush(self) -> bool:
        return self._closing

    @property
    def phase(self) -> Phase:
        if self._closing:
            return PHASE_IDLE  # nothing more will be read; the machine is flushing
        parser = self._parser  # read on every step the machine takes for this connection
        if parser.in_message:
            return PHASE_HEAD if parser.in_head else PHASE_BUSY
        # The first request of a connection is due from the start: its head is awaited.
        return PHASE_HEAD if self.requests == 0 else PHASE_IDLE

    def receive(self, data: bytes) -> bytes:
        if not self._closing:
            try:
                self._parser.feed(data)
            except BadRequest as exc:
                if not self._closing:
                    self._reject(exc.status)
        return self.pull(self._config.chunk_size)

    def eof(self) -> bytes:
        # A request cut short by EOF is not answered (the peer stopped sending mid-request, as
        # nginx's "client prematurely closed connection"); complete ones still are, in order.
        self._closing = True
        self._request = None
        return self.pull(self._config.chunk_size)

    def pull(self, max_bytes: int) -> bytes:
        out = bytearray()
        while self._queue and len(out) < max_bytes:
            head = self._queue[0]
            out += head.take(max_bytes - len(out))
            if head.done:
                self._queue.popleft()
                if head.final:
                    self.responses += 1
        return bytes(out)

    # RequestSink: called by the parser, in stream order --------------------------------------------

    def on_head(self, head: RequestHead) -> None:
        if self._closing:
            return
        self.requests += 1
        if head.version not in ("1.0", "1.1"):
            raise BadRequest(505, f"HTTP/{head.version}")
        if head.head_size > self._config.max_header_bytes:
            raise BadRequest(431, f"head of {head.head_size} bytes")
        if head.version == "1.1" and head.header(b"host") is None:
            # RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host ...
            raise BadRequest(400, "missing Host")
        if sum(1 for name, _ in head.headers if name == b"host") > 1:
            # ... and to any request with more than one: which one names the target is ambiguous.
            raise BadRequest(400, "more than one Host")
        length = head.header(b"content-length")
        if length is not None and int(length) > self._config.max_body_bytes:
            # Answer before the body arrives; the machine's lingering close keeps the unread body
            # from turning our FIN into a RST that would destroy this response at the client.
            raise BadRequest(413, f"Content-Length {int(length)}")
        route = _route_path(head.target)
        self._request = _Request(head=head, route=route, keep_body=route == b"/echo")
        expect = head.header(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and head.version == "1.1":
            # curl waits up to a second for this before sending a body (RFC 9110 §10.1.1).
            self._enqueue(_Outgoing(data=b"HTTP/1.1 100 Continue\r\n\r\n", final=False))

    def on_body(self, data: bytes) -> None:
        request = self._request
        if self._closing or request is None:
            return
        request.body_len += len(data)
        if request.body_len > self._config.max_body_bytes:
            raise BadRequest(413, "body too long")  # a chunked body has no length up front
        if request.keep_body:
            request.body += data

    def on_end(self) -> None:
        request = self._request
        if self._closing or request is None:
            return
        self._request = None
        self._respond(request)

    # responses -----------------------------------------------------------------------------------

    def _enqueue(self, item: _Outgoing) -> None:
        queue = self._queue
        if not isinstance(queue, deque):
            queue = self._queue = deque()
        queue.append(item)

    def _reject(self, status: int) -> None:
        """Queue an error response that closes the connection; ignore all later input."""
        self._request = None
        body = b"%d %s\n" % (status, _REASONS[status])
        self._enqueue(_Outgoing(data=_response(status, body, close=True)))
        self._closing = True

    def _respond(self, request: _Request) -> None:
        head = request.head
        close = not head.keep_alive
        keep_alive_header = head.keep_alive and head.version == "1.0"
        method, route = head.method, request.route
        is_head = method == b"HEAD"

        def reply(
            status: int,
            body: bytes,
            content_type: bytes = b"text/plain",
            extra: tuple[tuple[bytes, bytes], ...] = (),
        ) -> None:
            data = _response(
                status,
                b"" if is_head else body,  # HEAD: the same head, Content-Length included
                close=close,
                keep_alive_header=keep_alive_header,
                content_length=len(body),
                content_type=content_type,
                extra=extra,
            )
            self._enqueue(_Outgoing(data=data))

        if route == b"/":
            if method in (b"GET", b"HEAD"):
                reply(200, HELLO)
            else:
                reply(405, b"405 Method Not Allowed\n", extra=((b"Allow", b"GET, HEAD"),))
        elif route == b"/echo":
            if method == b"POST":
                reply(200, bytes(request.body), content_type=b"application/octet-stream")
            else:
                reply(405, b"405 Method Not Allowed\n", extra=((b"Allow", b"POST"),))
        elif route.startswith(b"/bytes/"):
            digits = route[len(b"/bytes/") :]
            # At most 12 digits: int() of an attacker's million-digit number is itself slow.
            if not (digits.isdigit() and len(digits) <= 12):
                self._reject(400)
                return
            n = int(digits)
            if n > self._config.max_response_bytes:
                self._reject(400)
                return
            if method not in (b"GET", b"HEAD"):
                reply(405, b"405 Method Not Allowed\n", extra=((b"Allow", b"GET, HEAD"),))
                return
            data = _response(
                200,
                b"",
                close=close,
                keep_alive_header=keep_alive_header,
                content_length=n,
                content_type=b"application/octet-stream",
            )
            self._enqueue(_Outgoing(data=data, pattern_len=0 if is_head else n))
        elif not route.startswith(b"/"):
            self._reject(400)
            return
        else:
            reply(404, b"404 Not Found\n")
        if close:
            self._closing = True


def _route_path(target: bytes) -> bytes:
    """The path of a request target: origin-form `/p?q` or absolute-form `http://h/p?q`
    (RFC 9112 §3.2.2: a server MUST accept the absolute form)."""
    lowered = target[:8].lower()
    if lowered.startswith(b"http://") or lowered.startswith(b"https://"):
        slash = target.find(b"/", target.find(b"//") + 2)
        target = b"/" if slash < 0 else target[slash:]
    return target.split(b"?", 1)[0]


@attrs.frozen(kw_only=True)
class Http:
    """AppFactory for http; its fields are the app's limits.

    max_header_bytes: a request head larger than this is answered 431 (nginx's large header
        buffer is 8 KiB; we use the same).
    max_body_bytes: a request body larger than this is answered 413, as soon as Content-Length
        says so (1 MiB, nginx's client_max_body_size).
    max_response_bytes: the largest N that /bytes/N serves; larger is answered 400.
    chunk_size: the most bytes `receive` and `eof` hand over at once; the rest is pulled. Bounds
        what the machine holds beyond its output cap.
    """

    max_header_bytes: int = attrs.field(default=8 * KiB, validator=attrs.validators.gt(0))
    max_body_bytes: int = attrs.field(default=1 * MiB, validator=attrs.validators.ge(0))
    max_response_bytes: int = attrs.field(default=100_000_000, validator=attrs.validators.ge(0))
    chunk_size: int = attrs.field(default=64 * KiB, validator=attrs.validators.gt(0))

    def __call__(self) -> HttpProtocol:
        return HttpProtocol(self)
