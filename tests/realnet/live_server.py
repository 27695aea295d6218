"""A `realnet serve` subprocess for live tests: started on a free port, stopped with SIGTERM.

Every wait is bounded, and `RealnetServer.stop()` (or leaving the `with` block) kills the process
if it does not stop by itself, so a hung server fails a test instead of hanging the suite.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 15.0  # s: python start-up plus imports on a loaded 2-core machine
STOP_TIMEOUT = 15.0  # s: the default shutdown grace is 5 s
SOCKET_TIMEOUT = 10.0  # s: for every client socket in these tests

_BANNER = re.compile(rb"^realnet: serving (\w+) on http://([\d.]+):(\d+) \(pid (\d+)\)$")
REPO = Path(__file__).resolve().parents[2]


class RealnetServer:
    def __init__(self, app: str, *args: str, record: str | os.PathLike[str] | None = None) -> None:
        cmd = [sys.executable, "-m", "realnet", "serve", "--app", app, "--port", "0", *args]
        if record is not None:
            cmd += ["--record", os.fspath(record)]
        self.cmd = cmd
        self.record = record
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.stdout = b""
        self.stderr = b""
        self.returncode: int | None = None

    def start(self) -> RealnetServer:
        self.proc = subprocess.Popen(
            self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, start_new_session=True
        )
        line = self._first_line(START_TIMEOUT)
        m = _BANNER.match(line.rstrip(b"\n"))
        if m is None:
            self.kill()
            raise AssertionError(f"unexpected first line {line!r}; stderr: {self.stderr!r}")
        self.host, self.port = m.group(2).decode(), int(m.group(3))
        assert int(m.group(4)) == self.proc.pid
        self.banner = line
        return self

    def _first_line(self, timeout: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError(f"no banner within {timeout}s; stderr: {self.stderr!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    self.kill()
                    raise AssertionError(f"server exited before listening: {buf!r}; stderr: {self.stderr!r}")
                buf += chunk
        line, _, rest = buf.partition(b"\n")
        self._rest = rest
        return line + b"\n"

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Signal the server and wait for it; returns its exit status (kills it on timeout)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not stop within {timeout}s of signal {signum}") from None
        self.stdout = getattr(self, "_rest", b"") + out
        self.stderr = err
        self.returncode = self.proc.returncode
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        try:
            out, err = self.proc.communicate(timeout=STOP_TIMEOUT)
            self.stderr += err
        except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
            pass

    def __enter__(self) -> RealnetServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.kill()
