"""simnet.aio tests: every test here asserts that its simulated programs opened nothing real.

An audit hook (PEP 578) sees every real socket the interpreter creates, binds or connects, and
every real name lookup; the simulated sockets never reach the C code that raises those events.
Tests that compare against real asyncio on loopback live in bench/, not here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from simnet.aio.fence import active_world

_REAL_EVENTS = (
    "socket.__new__",
    "socket.bind",
    "socket.connect",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "subprocess.Popen",
)
_recorded: list[tuple[str, tuple[Any, ...]]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Only while a simulated loop runs: the test's own helpers (a subprocess that reruns a
    # scenario, say) are not the simulated program.
    if _recorded is not None and event in _REAL_EVENTS and active_world() is not None:
        _recorded.append((event, args[:2]))


sys.addaudithook(_audit)


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"), key=int)


@pytest.fixture(autouse=True)
def nothing_real_is_opened() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    global _recorded
    before = _open_fds()
    _recorded = []
    events = _recorded
    try:
        yield events
    finally:
        _recorded = None
    assert not events, f"the simulation reached the real OS: {events[:5]}"
    leaked = sorted(set(_open_fds()) - set(before), key=int)
    # Files the test itself opened (a TOML schedule, a trace) are closed again by then.
    assert not leaked, f"real fds left open: {leaked}"
