"""Deliberately broken server machines, for proving that the strategies catch real bugs.

Each is the reference ServerMachine with one classic event-loop mistake, and a replay factory
(`replay_*(header)`) so that `simnet replay --machine` can replay its traces exactly.
"""

from __future__ import annotations

from typing import Any

from simnet.server import syscalls as sc
from simnet.server.apps import make_app
from simnet.server.config import ServerConfig
from simnet.server.machine import Connection, ServerMachine


class IgnoresPartialWrites(ServerMachine):
    """Treats every successful send() as if it took everything: the unsent tail is lost."""

    def _on_send(self, conn: Connection, attempted: int, result: sc.Result) -> None:
        if result.ok and isinstance(result.value, int) and result.value < attempted:
            result = sc.Result(value=attempted, now=result.now, shutdown=result.shutdown)
        super()._on_send(conn, attempted, result)


class ForgetsEpollout(ServerMachine):
    """Never registers EPOLLOUT: after EAGAIN, pending output waits for an event that never comes."""

    def _conn_want(self, conn: Connection) -> int:
        return super()._conn_want(conn) & ~sc.EPOLLOUT


def _rebuild(cls: type[ServerMachine], header: Any) -> ServerMachine:
    return cls(ServerConfig.from_recorded(header.server_config), make_app(header.app, **header.app_config))


def replay_ignores_partial_writes(header: Any) -> ServerMachine:
    return _rebuild(IgnoresPartialWrites, header)


def replay_forgets_epollout(header: Any) -> ServerMachine:
    return _rebuild(ForgetsEpollout, header)
