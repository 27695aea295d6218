"""simnet: a deterministic simulation of Linux TCP sockets and epoll for testing event-loop servers."""

from simnet.kernel import Epoll, Host, LinkConfig, Network, SimulationDeadlock, Sysctl, TcpSocket

__all__ = ["Epoll", "Host", "LinkConfig", "Network", "SimulationDeadlock", "Sysctl", "TcpSocket"]
