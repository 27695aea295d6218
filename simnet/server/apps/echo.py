"""echo: every byte received is sent back, in order. The smallest app that exercises the machine."""

from __future__ import annotations

import attrs

from simnet.server.apps.base import BaseApp


class EchoProtocol(BaseApp):
    """Returns its input at once; after EOF the machine flushes what is pending and closes."""

    def receive(self, data: bytes) -> bytes:
        return data


@attrs.frozen(kw_only=True)
class Echo:
    """AppFactory for echo. It has no options; a class so that `APPS["echo"]()` works like http."""

    def __call__(self) -> EchoProtocol:
        return EchoProtocol()
