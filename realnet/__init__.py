"""realnet: the simnet server machine on real Linux sockets and `select.epoll`.

`realnet.driver.RealDriver` executes the machine's syscalls (through simnet.drivers.executor.SyscallExecutor)
and waits in `epoll.poll`; `realnet.server.serve` wires machine, app, recorder and driver; the
`realnet` command (`realnet.cli`) serves from the shell and records live traces.
"""

from realnet.driver import RealDriver
from realnet.server import Outcome, serve

__all__ = ["Outcome", "RealDriver", "serve"]
