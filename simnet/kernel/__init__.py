"""The simulated kernel: a discrete-event model of Linux TCP sockets and epoll (see DESIGN.md)."""

from simnet.kernel.epoll import Epoll
from simnet.kernel.host import Host
from simnet.kernel.network import LinkConfig, Network, SimulationDeadlock, Sysctl
from simnet.kernel.segment import LoggedSegment, Segment
from simnet.kernel.tcp import DupSocket, TcpSocket

__all__ = [
    "DupSocket",
    "Epoll",
    "Host",
    "LinkConfig",
    "LoggedSegment",
    "Network",
    "Segment",
    "SimulationDeadlock",
    "Sysctl",
    "TcpSocket",
]
