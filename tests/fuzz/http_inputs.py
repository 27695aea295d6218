"""Hypothesis strategies for hostile HTTP/1.1 input, and an oracle for what the server must answer.

`hostile_inputs()` draws a `Hostile`: the bytes a client sends, and what the server owes it:

- `bad=True`: the input is malformed, oversized or unsupported *by construction* (each builder
  below breaks one rule that llhttp or the app enforces), so the last response must be an error
  (4xx, or 505 for a version we do not speak) and the connection must close after it. Valid
  requests before the bad one (pipelined) are answered first, in order.
- `bad=False`: the input is well-formed but may stop short (a truncated body or head); the
  server answers the complete requests and, at EOF, closes without answering the torn one.

`garbage()` is arbitrary bytes with a sprinkling of HTTP tokens, for which there is no oracle
beyond "the output is a well-formed sequence of responses, and the connection closes at EOF".

`chunkings(data)` splits bytes at arbitrary points: the same input in any pieces a recv could give.
"""

from __future__ import annotations

import os

import attrs
import httptools
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from simnet.server.apps.http import Http

def fuzz_settings(examples: int) -> settings:
    """`examples` per property in `make test`; FUZZ_EXAMPLES=N scales every property by N/100
    for a long hunt (`FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/fuzz`)."""
    scale = int(os.environ.get("FUZZ_EXAMPLES", "100"))
    return settings(
        max_examples=max(1, examples * scale // 100),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Small limits for the fuzz, so that "too large" inputs stay small and fast.
MAX_HEADER = 512
MAX_BODY = 256
APP = Http(max_header_bytes=MAX_HEADER, max_body_bytes=MAX_BODY, max_response_bytes=4096, chunk_size=1024)


@attrs.frozen
class Hostile:
    data: bytes = attrs.field(repr=lambda b: repr(b[:300]) + ("..." if len(b) > 300 else ""))
    kind: str  # which builder made it
    bad: bool  # the last request is malformed: it must get a 4xx/505 and a close
    good_before: int  # complete valid requests in front of it, each answered 2xx/404 first


# -- valid requests ------------------------------------------------------------------------------

@st.composite
def valid_request(draw: st.DrawFn) -> bytes:
    # No HEAD: its response has a Content-Length and no body, which a response parser cannot tell
    # from a pipelined stream without knowing the request (tests/server covers HEAD).
    kind = draw(st.sampled_from(["root", "echo", "bytes", "missing"]))
    if kind == "root":
        return b"GET / HTTP/1.1\r\nHost: fuzz\r\n\r\n"
    if kind == "missing":
        return b"GET /nowhere HTTP/1.1\r\nHost: fuzz\r\n\r\n"  # 404: valid request, keeps the connection
    if kind == "bytes":
        return b"GET /bytes/%d HTTP/1.1\r\nHost: fuzz\r\n\r\n" % draw(st.integers(0, 3000))
    body = draw(st.binary(max_size=MAX_BODY))
    return b"POST /echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: %d\r\n\r\n" % len(body) + body


# -- malformed requests: each breaks exactly one rule on purpose ---------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).map(str.encode)
# Bytes that may not appear in a header field name (RFC 9110 §5.1: a token).
_NOT_TOKEN = st.sampled_from([b" ", b"\t", b"(", b")", b"/", b"@", b"[", b"]", b"{", b"}", b'"', b"\x00",
                              b"\x01", b"\x7f", b"\x80", b"\xff", b",", b";", b"="])
# Bytes that may not appear in a header field value (RFC 9110 §5.5: no CTLs but HTAB, no bare CR/LF).
_BAD_VALUE_BYTE = st.sampled_from([b"\x00", b"\x01", b"\x08", b"\x0b", b"\x0c", b"\x1f", b"\x7f", b"\r"])


@st.composite
def bad_request_line(draw: st.DrawFn) -> bytes:
    which = draw(st.sampled_from(
        ["version", "no_version", "method_ctl", "target_ctl", "lf_in_target", "empty_method",
         "lower_http", "no_target", "binary"]
    ))  # fmt: skip
    host = b"Host: fuzz\r\n\r\n"
    # (Not here: extra spaces between the parts, which RFC 9112 §3 lets a recipient accept, and llhttp does.)
    if which == "version":
        version = draw(st.sampled_from([b"HTTP/1.2", b"HTTP/3.0", b"HTTP/9.9", b"HTTP/1.", b"HTTP/x.y", b"HTP/1.1",
                                        b"HTTP/11", b"HTTP 1.1", b"http/1.1x"]))
        return b"GET / " + version + b"\r\n" + host
    if which == "no_version":
        return b"GET /\r\n" + host
    if which == "method_ctl":
        return b"G" + draw(st.sampled_from([b"\x00", b"\x7f", b"(", b"\x01", b"\xff"])) + b"T / HTTP/1.1\r\n" + host
    if which == "target_ctl":
        return b"GET /" + draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x1b"])) + b" HTTP/1.1\r\n" + host
    if which == "lf_in_target":
        return b"GET /a\nb HTTP/1.1\r\n" + host
    if which == "empty_method":
        return b" / HTTP/1.1\r\n" + host
    if which == "lower_http":
        return b"GET / http/1.1\r\n" + host
    if which == "no_target":
        return b"GET HTTP/1.1\r\n" + host
    # Binary junk where a request line should be, ending in a CRLF CRLF so that a parser that
    # waits for the end of the head gets one.
    first = bytes([draw(st.integers(0x80, 0xFF))])  # no request line begins with a non-ASCII byte
    return first + draw(st.binary(max_size=64)) + b"\r\n\r\n"


@st.composite
def bad_header(draw: st.DrawFn) -> bytes:
    which = draw(st.sampled_from(["name_byte", "value_byte", "no_colon", "space_before_colon", "obs_fold",
                                  "bare_lf_value", "empty_name"]))
    line = b"GET / HTTP/1.1\r\nHost: fuzz\r\n"
    name, value = draw(_TOKEN), draw(_TOKEN)
    if which == "name_byte":
        cut = draw(st.integers(0, len(name)))
        return line + name[:cut] + draw(_NOT_TOKEN) + name[cut:] + b": " + value + b"\r\n\r\n"
    if which == "value_byte":
        cut = draw(st.integers(0, len(value)))
        bad = draw(_BAD_VALUE_BYTE)
        return line + name + b": " + value[:cut] + bad + value[cut:] + b"x\r\n\r\n"
    if which == "no_colon":
        return line + name + b" " + value + b"\r\n\r\n"
    if which == "space_before_colon":
        return line + name + b" : " + value + b"\r\n\r\n"  # RFC 9112 §5.1: MUST be rejected with 400
    if which == "obs_fold":
        return line + name + b": " + value + b"\r\n " + value + b"\r\n\r\n"  # obsolete line folding
    if which == "bare_lf_value":
        return line + name + b": " + value + b"\rX\r\n\r\n"
    return line + b": " + value + b"\r\n\r\n"


@st.composite
def bad_framing(draw: st.DrawFn) -> bytes:
    """Conflicting or invalid body framing: the request-smuggling family (RFC 9112 §6.3)."""
    which = draw(st.sampled_from(["two_lengths", "length_list", "length_sign", "length_junk", "length_and_chunked",
                                  "chunked_not_last", "bad_chunk_size", "huge_length", "length_overflow"]))
    a = draw(st.integers(0, 50))
    b = draw(st.integers(0, 50).filter(lambda x: x != a))
    head = b"POST /echo HTTP/1.1\r\nHost: fuzz\r\n"
    body = b"x" * max(a, b)
    if which == "two_lengths":
        return head + b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (a, b) + body
    if which == "length_list":
        return head + b"Content-Length: %d, %d\r\n\r\n" % (a, b) + body
    if which == "length_sign":
        return head + draw(st.sampled_from([b"Content-Length: -%d\r\n", b"Content-Length: +%d\r\n"])) % a + b"\r\n"
    if which == "length_junk":
        junk = draw(st.sampled_from([b"0x10", b"1e3", b"12abc", b"1 2", b"\xff", b"five"]))
        return head + b"Content-Length: " + junk + b"\r\n\r\n" + body
    if which == "length_and_chunked":
        return head + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % a
    if which == "chunked_not_last":
        return head + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    if which == "bad_chunk_size":
        size = draw(st.sampled_from([b"zz", b"-1", b"0x5", b"fffffffffffffffffff", b" "]))
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n"
    if which == "huge_length":
        return head + b"Content-Length: %d\r\n\r\n" % draw(st.integers(MAX_BODY + 1, 10**15))
    return head + b"Content-Length: 99999999999999999999999999\r\n\r\n"


@st.composite
def oversized(draw: st.DrawFn) -> bytes:
    """Over a limit: the head (431), or the body by Content-Length or by chunks (413)."""
    which = draw(st.sampled_from(["long_value", "many_headers", "long_target", "chunked_body", "length"]))
    if which == "long_value":
        return b"GET / HTTP/1.1\r\nHost: fuzz\r\nX-Big: " + b"v" * draw(st.integers(MAX_HEADER, 4 * MAX_HEADER)) + b"\r\n\r\n"
    if which == "many_headers":
        n = draw(st.integers(MAX_HEADER // 6 + 1, MAX_HEADER))
        return b"GET / HTTP/1.1\r\nHost: fuzz\r\n" + b"a: b\r\n" * n + b"\r\n"
    if which == "long_target":
        return b"GET /" + b"t" * draw(st.integers(MAX_HEADER, 4 * MAX_HEADER)) + b" HTTP/1.1\r\nHost: fuzz\r\n\r\n"
    if which == "chunked_body":
        piece = draw(st.integers(1, 64))
        chunk = b"%x\r\n" % piece + b"c" * piece + b"\r\n"
        return b"POST /echo HTTP/1.1\r\nHost: fuzz\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * (MAX_BODY // piece + 1) + b"0\r\n\r\n"
    return b"POST /echo HTTP/1.1\r\nHost: fuzz\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1) + b"b" * (MAX_BODY + 1)


@st.composite
def other_bad(draw: st.DrawFn) -> bytes:
    which = draw(st.sampled_from(["no_host", "bad_bytes_n", "long_bytes_n", "relative_target", "http2_preface",
                                  "unknown_version_head"]))
    if which == "no_host":
        return b"GET / HTTP/1.1\r\nX: y\r\n\r\n"  # RFC 9112 §3.2: 400
    if which == "bad_bytes_n":
        return b"GET /bytes/" + draw(st.sampled_from([b"-1", b"x", b"", b"1.5", b"9" * 13, b"5000"])) + b" HTTP/1.1\r\nHost: f\r\n\r\n"
    if which == "long_bytes_n":
        return b"GET /bytes/" + b"9" * draw(st.integers(13, 200)) + b" HTTP/1.1\r\nHost: f\r\n\r\n"
    if which == "relative_target":
        return b"GET " + draw(st.sampled_from([b"*", b"abc", b"a:b", b"?q"])) + b" HTTP/1.1\r\nHost: f\r\n\r\n"
    if which == "http2_preface":
        return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    return b"GET / HTTP/2.0\r\nHost: f\r\n\r\n"


def bad_request() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.one_of(
        bad_request_line().map(lambda b: ("request_line", b)),
        bad_header().map(lambda b: ("header", b)),
        bad_framing().map(lambda b: ("framing", b)),
        oversized().map(lambda b: ("oversized", b)),
        other_bad().map(lambda b: ("other", b)),
    )


@st.composite
def truncated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid request cut short: the client stops (EOF) mid-head or mid-body."""
    request = draw(valid_request())
    if request.startswith(b"POST") and not request.endswith(b"\r\n\r\n"):
        cut = draw(st.integers(request.index(b"\r\n\r\n") + 4, len(request) - 1))
        return "truncated_body", request[:cut]
    return "truncated_head", request[: draw(st.integers(1, len(request) - 1))]


@st.composite
def hostile_inputs(draw: st.DrawFn) -> Hostile:
    good = draw(st.lists(valid_request(), max_size=3))
    prefix = b"".join(good)
    shape = draw(st.sampled_from(["bad", "bad", "bad", "truncated", "garbage_after"]))
    if shape == "bad":
        kind, bad = draw(bad_request())
        return Hostile(data=prefix + bad, kind=kind, bad=True, good_before=len(good))
    if shape == "truncated":
        kind, torn = draw(truncated())
        return Hostile(data=prefix + torn, kind=kind, bad=False, good_before=len(good))
    # Pipelined garbage behind valid requests: a byte that cannot begin a request line, then anything.
    first = draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\xff", b"{", b"<", b"\x16"]))
    junk = first + draw(st.binary(max_size=200))
    return Hostile(data=prefix + junk, kind="garbage_after", bad=True, good_before=len(good))


def garbage() -> st.SearchStrategy[bytes]:
    """Anything at all, biased towards pieces of HTTP so that the parser gets past the first byte."""
    atoms = st.sampled_from([b"GET ", b"POST ", b"/", b"/echo", b"/bytes/12", b" HTTP/1.1", b" HTTP/1.0", b"\r\n",
                             b"\r\n\r\n", b"Host: x", b"Content-Length: 3", b"Content-Length: 999999",
                             b"Transfer-Encoding: chunked", b"Connection: close", b"Expect: 100-continue",
                             b"Upgrade: h2c", b"Connection: upgrade", b":", b" ", b"\t", b"\n", b"3\r\nabc\r\n",
                             b"0\r\n\r\n", b"CONNECT ", b"a:1"])
    return st.lists(st.one_of(atoms, st.binary(min_size=1, max_size=8)), max_size=40).map(b"".join)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """`data` split at arbitrary points (as recv would hand it over, in any pieces)."""
    if not data:
        return []
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    pieces, last = [], 0
    for cut in cuts:
        if cut > last:
            pieces.append(data[last:cut])
            last = cut
    pieces.append(data[last:])
    return pieces


# -- the oracle side: split what the server sent into responses ------------------------------------

@attrs.frozen
class Response:
    status: int
    body: bytes
    close: bool  # the response says Connection: close


class ResponseStreamError(AssertionError):
    pass


def parse_responses(data: bytes) -> list[Response]:
    """Every complete response in `data`, parsed with httptools.HttpResponseParser; raises
    ResponseStreamError if the stream is not valid HTTP/1.1 or ends inside a response."""
    done: list[Response] = []

    class Sink:
        def __init__(self) -> None:
            self.body: list[bytes] = []
            self.headers: list[tuple[bytes, bytes]] = []
            self.open = False

        def on_message_begin(self) -> None:
            self.body, self.headers, self.open = [], [], True

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value.lower()))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            self.open = False
            close = (b"connection", b"close") in self.headers
            done.append(Response(status=parser.get_status_code(), body=b"".join(self.body), close=close))

    sink = Sink()
    parser = httptools.HttpResponseParser(sink)
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as exc:
        raise ResponseStreamError(f"not a valid response stream: {exc}: {data[:400]!r}") from None
    if sink.open:
        raise ResponseStreamError(f"the output ends inside a response: {data[-200:]!r}")
    return done
