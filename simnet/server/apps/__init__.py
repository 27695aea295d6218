"""Apps: sans-IO protocol objects that the server machine drives (see base.py for the interface).

`APPS` maps a name to an app class; an instance of it, built from keyword options, is the
`AppFactory` the machine takes:

    factory = make_app("http", max_body_bytes=4096)
    machine = ServerMachine(ServerConfig(port=0), factory)
"""

from __future__ import annotations

from typing import Any

import attrs

from simnet.server.apps.base import AppFactory, AppProtocol, BaseApp, Phase
from simnet.server.apps.echo import Echo, EchoProtocol
from simnet.server.apps.http import Http, HttpProtocol

APPS: dict[str, type] = {"echo": Echo, "http": Http}


def make_app(name: str, **options: Any) -> AppFactory:
    """The factory for app `name` with `options`; ValueError with a one-line message otherwise."""
    try:
        cls = APPS[name]
    except KeyError:
        raise ValueError(f"unknown app {name!r} (known: {', '.join(APPS)})") from None
    known = [field.name for field in attrs.fields(cls)]
    for key in options:
        if key not in known:
            raise ValueError(f"app {name!r} has no option {key!r} (options: {', '.join(known) or 'none'})")
    try:
        factory: AppFactory = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"app {name!r}: {exc}") from None
    return factory


__all__ = [
    "APPS",
    "AppFactory",
    "AppProtocol",
    "BaseApp",
    "Echo",
    "EchoProtocol",
    "Http",
    "HttpProtocol",
    "Phase",
    "make_app",
]
