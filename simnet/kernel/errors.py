"""Python's own exceptions with the real errno, raised the way CPython's socket module raises them."""

from __future__ import annotations

import os
from typing import NoReturn


def os_error(code: int) -> OSError:
    # OSError(errno, msg) picks the subclass itself: ECONNRESET -> ConnectionResetError, EAGAIN ->
    # BlockingIOError, EPIPE -> BrokenPipeError, ... exactly as a real failing syscall does.
    return OSError(code, os.strerror(code))


def raise_errno(code: int) -> NoReturn:
    raise os_error(code)


def timeout_error() -> TimeoutError:
    """What a socket with settimeout() raises when the timeout passes (CPython: 'timed out')."""
    return TimeoutError("timed out")
