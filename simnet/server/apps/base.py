"""The app interface: a sans-IO protocol object per connection, bytes in and bytes out.

The machine owns the socket and the clock; an app owns only the protocol. For each accepted
connection the machine calls the `AppFactory` once and then drives the object it got:

    out = app.receive(data)      # bytes the peer sent, in order; returns bytes to send (maybe b"")
    out = app.eof()              # the peer will send nothing more (recv returned b"")
    out = app.pull(max_bytes)    # more output the app held back; b"" when it has none
    app.close_after_flush        # True once the app wants the connection closed after its output
    app.phase                    # IDLE / HEAD / BUSY: which timeout applies while we wait on the peer
    app.requests, app.responses  # counters for the run summary (0 for apps without messages)

Why `pull`: a response may be far larger than the machine's per-connection output cap (HTTP
`/bytes/100000000`). The app hands over output in bounded pieces and keeps the rest as a cheap
description (a generator position, not 100 MB of bytes); the machine pulls more only once what
it already holds has drained below the cap, and does not read more input from a connection while
the app is still holding output back. So memory per connection stays bounded and a peer that
stops reading stalls only its own connection (TCP flow control then stalls the peer).

Everything an app raises is caught by the machine, which counts it (`stats.app_errors`) and drops
the connection; an app that can say something first (HTTP's 400) should do so itself.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol, runtime_checkable


class Phase(enum.Enum):
    """What the connection is waiting for when it waits on the peer; picks the timer (nginx's split).

    IDLE: between messages with nothing of the next one received. Closing now loses nothing, so the
          keep-alive timeout applies, and a graceful shutdown closes the connection at once.
    HEAD: a request head is due or partly received (including the first request of a new
          connection). The header-read timeout applies -- the slowloris defence -- and it is not
          extended by each trickled byte.
    BUSY: inside a message (a request body is arriving). Only the idle timeout applies, and a
          graceful shutdown waits (up to its grace period) for the message to finish.
    """

    IDLE = "IDLE"
    HEAD = "HEAD"
    BUSY = "BUSY"


# The members as module names, for code that reads them per step: in CPython 3.11 reading a
# member off its class (Phase.IDLE) costs ~100 ns, a global ~10 ns (see simnet/server/machine.py).
PHASE_IDLE, PHASE_HEAD, PHASE_BUSY = Phase.IDLE, Phase.HEAD, Phase.BUSY


@runtime_checkable
class AppProtocol(Protocol):
    """One connection's protocol state. See the module docstring for how the machine drives it."""

    def receive(self, data: bytes) -> bytes: ...

    def eof(self) -> bytes: ...

    def pull(self, max_bytes: int) -> bytes: ...

    @property
    def close_after_flush(self) -> bool: ...

    @property
    def phase(self) -> Phase: ...

    @property
    def requests(self) -> int: ...

    @property
    def responses(self) -> int: ...


# Called once per accepted connection; returns a fresh protocol object. Typically a frozen attrs
# value holding the app's configuration, so that it can be printed and compared.
AppFactory = Callable[[], AppProtocol]


class BaseApp:
    """Defaults for a user app that only needs `receive`: no held-back output, never asks to close,
    no message structure (every byte boundary is a message boundary, so the phase is IDLE)."""

    requests: int = 0
    responses: int = 0

    def receive(self, data: bytes) -> bytes:
        raise NotImplementedError

    def eof(self) -> bytes:
        return b""

    def pull(self, max_bytes: int) -> bytes:
        return b""

    @property
    def close_after_flush(self) -> bool:
        return False

    @property
    def phase(self) -> Phase:
        return PHASE_IDLE
