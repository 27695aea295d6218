"""The simulated world an asyncio program runs in: one Network, its named hosts, and a resolver.

Hosts are named ("main", "server", "c1"); each name gets an address on first use, the next free
10.0.0.N in the order names are first used, unless `hosts=` pins it. Names resolve through
`getaddrinfo` as a real resolver would resolve /etc/hosts entries; every host also has its own
loopback (127.0.0.1, "localhost"). A fault schedule may name hosts instead of addresses: the
names it mentions are given their addresses before the run starts, in the order the schedule
mentions them, so the faults do not depend on which task happens to create a host first.
"""

from __future__ import annotations

import contextvars
import ipaddress
import random
import socket as _socket
from typing import Any

from simnet.kernel.host import Host
from simnet.kernel.network import Network

MAIN_HOST = "main"
_FIRST_AUTO = ipaddress.IPv4Address("10.0.0.1")

# The simulated host whose sockets the running code creates: tasks inherit it from the context
# they are created in, so a handler spawned by a server task lives on the server's host.
current_host: contextvars.ContextVar[Host | None] = contextvars.ContextVar("simnet_aio_host", default=None)


class World:
    """A Network plus the names of its hosts; one per `simnet.aio.run` or loop."""

    def __init__(self, pinned: dict[str, str], schedule_rng: random.Random | None, seed: int) -> None:
        self.net: Network = None  # type: ignore[assignment]  # bind() gives it
        self.names: dict[str, str] = {}  # name -> ip, in the order names were first used
        self.ips: dict[str, str] = {}  # ip -> name
        self._pinned = dict(pinned)
        for name, ip in pinned.items():
            _check_name(name)
            _check_host_ip(ip, f"hosts[{name!r}]")
        self._next_auto = _FIRST_AUTO
        # None: schedule="fixed" (ready sockets in kernel order, timer ties in insertion order).
        self.schedule_rng = schedule_rng
        # What the fence gives the program (simnet/aio/fence.py): the wall clock as virtual time
        # from `epoch_ns`, and `random`/`os.urandom` seeded from the run's seed.
        self.virtual_clock = True
        self.epoch_ns = 0
        self.seeded_random = True
        # simnet.aio.recorder.SimRecorder when the run writes a trace (run(trace=...)), else None.
        self.recorder: Any = None
        self.random_seed = f"simnet.aio {seed}"
        self.entropy = random.Random(f"simnet.aio urandom {seed}")
        self.address(MAIN_HOST)  # the first host, so that its address never depends on others

    def bind(self, net: Network) -> None:
        """The network the hosts live on; names given out before it existed get their hosts."""
        self.net = net
        for ip in self.names.values():
            net.host(ip)

    def address(self, name: str) -> str:
        """The address of host `name`, creating the host on first use."""
        ip = self.names.get(name)
        if ip is None:
            _check_name(name)
            ip = self._pinned.get(name) or self._allocate()
            if ip in self.ips:
                raise ValueError(f"hosts: {name!r} and {self.ips[ip]!r} both pinned to {ip}")
            self.names[name] = ip
            self.ips[ip] = name
            if self.net is not None:
                self.net.host(ip)
        return ip

    def host(self, name: str) -> Host:
        return self.net.host(self.address(name))

    def _allocate(self) -> str:
        taken = set(self.ips) | set(self._pinned.values())  # membership only, never iterated
        ip = self._next_auto
        while str(ip) in taken:
            ip += 1
        self._next_auto = ip + 1
        return str(ip)

    def name_of(self, ip: str) -> str:
        return self.ips.get(ip, ip)

    # -- the resolver -----------------------------------------------------------------------------

    def resolve(self, name: str | None, flags: int = 0) -> str:
        """A name or numeric address -> an IPv4 address, or socket.gaierror as glibc gives it."""
        if name is None or name == "":
            if flags & _socket.AI_PASSIVE:
                return "0.0.0.0"
            return "127.0.0.1"
        if isinstance(name, bytes):
            name = name.decode("idna")
        if name == "localhost" or name == "localhost.localdomain":
            return "127.0.0.1"
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            if addr.version == 6:
                if addr.is_loopback:
                    return "127.0.0.1"  # ::1: simnet models IPv4 only; loopback is loopback
                raise _socket.gaierror(_socket.EAI_FAMILY, f"ai_family not supported (simnet models IPv4 only: {name})")
            return str(addr)
        ip = self.names.get(name) or self.names.get(name.rstrip("."))
        if ip is None:
            known = ", ".join(self.names) or "none yet"
            raise _socket.gaierror(
                _socket.EAI_NONAME,
                f"Name or service not known ({name!r} is not a simulated host; hosts: {known})",
            )
        return ip

    def getaddrinfo(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, Any, int, str, tuple[str, int]]]:
        """socket.getaddrinfo over the simulated hosts: AF_INET, TCP only."""
        if family not in (0, _socket.AF_UNSPEC, _socket.AF_INET):
            if family == _socket.AF_INET6:
                return []  # no IPv6 addresses here; callers try the next family
            raise _socket.gaierror(_socket.EAI_FAMILY, "ai_family not supported")
        if type not in (0, _socket.SOCK_STREAM):
            raise _socket.gaierror(_socket.EAI_SOCKTYPE, "ai_socktype not supported (simnet models TCP only)")
        ip = self.resolve(host, flags)
        port_number = _port(port)
        canon = str(host) if flags & _socket.AI_CANONNAME and host else ""
        return [(_socket.AF_INET, _socket.SOCK_STREAM, _socket.IPPROTO_TCP, canon, (ip, port_number))]

    def getnameinfo(self, sockaddr: tuple[str, int], flags: int = 0) -> tuple[str, str]:
        ip, port = sockaddr[0], sockaddr[1]
        if flags & _socket.NI_NUMERICHOST:
            return ip, str(port)
        if ip.startswith("127."):
            return "localhost", str(port)
        return self.ips.get(ip, ip), str(port)

    # -- fault schedules that name hosts ----------------------------------------------------------

    def name_faults(self, obj: Any) -> Any:
        """A schedule's JSON/TOML form with host names replaced by addresses (given out now)."""
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                if key in _HOST_FIELDS and isinstance(value, str) and not _is_ip(value):
                    value = self.address(value)
                else:
                    value = self.name_faults(value)
                out[key] = value
            return out
        if isinstance(obj, list):
            return [self.name_faults(item) for item in obj]
        return obj


_HOST_FIELDS = ("src", "dst", "a", "b", "host")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name or _is_ip(name) or name == "localhost" or " " in name:
        raise ValueError(f"a host name is a non-empty word that is not an address or 'localhost', not {name!r}")


def _check_host_ip(ip: Any, where: str) -> None:
    try:
        addr = ipaddress.IPv4Address(ip)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: not an IPv4 address: {ip!r}") from None
    if addr.is_loopback or addr.is_unspecified:
        raise ValueError(f"{where}: {ip} is not a host address (127.0.0.1 exists inside every host)")


def _port(port: Any) -> int:
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode()
    if isinstance(port, str):
        if port.isdigit():
            port = int(port)
        else:
            try:
                return _socket.getservbyname(port, "tcp")
            except OSError:
                raise _socket.gaierror(_socket.EAI_SERVICE, "Servname not supported for ai_socktype") from None
    if not isinstance(port, int):
        raise TypeError(f"getaddrinfo() argument 2 must be integer or string, not {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise OverflowError("getaddrinfo(): port must be 0-65535.")
    return port
