"""simnet: a deterministic simulation of Linux TCP sockets and epoll for testing event-loop servers.

The public names live in `simnet.kernel` and are loaded on first use (PEP 562): importing
`simnet.server`, `simnet.trace` or `realnet` goes through this package, and must not pay for
simpy and the kernel model -- nor depend on them (tests/test_layers.py checks it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simnet._build import compiled, pure_requested, use_python_sources

if pure_requested():
    use_python_sources()

if TYPE_CHECKING:
    from simnet.kernel import Epoll, Host, LinkConfig, Network, SimulationDeadlock, Sysctl, TcpSocket

__all__ = ["Epoll", "Host", "LinkConfig", "Network", "SimulationDeadlock", "Sysctl", "TcpSocket", "compiled"]

# Each public name and the module that defines it.
_LAZY = {name: "simnet.kernel" for name in __all__ if name != "compiled"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
