"""How the machine opens: socket, bind, listen, epoll -- and no syscall it does not need."""

from __future__ import annotations

import pytest

from simnet.server import syscalls as sc
from simnet.server.apps import make_app
from simnet.server.config import ServerConfig
from simnet.server.machine import ServerMachine

LISTEN_FD, EPOLL_FD = 3, 4


def opening(config: ServerConfig) -> list[sc.Syscall]:
    """The syscalls the machine asks for up to its first EpollWait, on a kernel that says yes
    to everything and has no connection queued (an Accept says EAGAIN)."""
    machine = ServerMachine(config, make_app("echo"))
    request = machine.start()
    asked = []
    while not isinstance(request, sc.EpollWait):
        asked.append(request)
        assert len(asked) < 50, asked
        if isinstance(request, sc.Accept):
            result = sc.Result(error="EAGAIN", now=0)
        else:
            value = {sc.Socket: LISTEN_FD, sc.GetSockName: ("127.0.0.1", 8080), sc.EpollCreate: EPOLL_FD}
            result = sc.Result(value=value.get(type(request)), now=0)
        request = machine.step(result)
    return asked


@pytest.mark.parametrize("edge_triggered", [False, True])
def test_the_listener_is_added_with_epollin_and_no_accept_comes_before_epoll_reports_it(edge_triggered: bool) -> None:
    asked = opening(ServerConfig(edge_triggered=edge_triggered))
    ctls = [r for r in asked if isinstance(r, sc.EpollCtl)]
    mask = sc.EPOLLIN | (sc.EPOLLET if edge_triggered else 0)
    assert ctls == [sc.EpollCtl(epfd=EPOLL_FD, op=sc.EPOLL_CTL_ADD, fd=LISTEN_FD, mask=mask)]
    assert not [r for r in asked if isinstance(r, sc.Accept)]


def test_a_config_recorded_before_the_field_opens_as_the_machine_did_then() -> None:
    # ADD with mask 0, MOD to EPOLLIN, an Accept that says EAGAIN: what every trace recorded
    # before `listener_armed_at_add` holds, so that they replay exactly.
    config = ServerConfig.from_recorded({"port": 8080})
    assert config.listener_armed_at_add is False
    tail = opening(config)[-3:]
    assert tail == [
        sc.EpollCtl(epfd=EPOLL_FD, op=sc.EPOLL_CTL_ADD, fd=LISTEN_FD, mask=0),
        sc.EpollCtl(epfd=EPOLL_FD, op=sc.EPOLL_CTL_MOD, fd=LISTEN_FD, mask=sc.EPOLLIN),
        sc.Accept(fd=LISTEN_FD),
    ]
    assert ServerConfig.from_recorded({"port": 8080, "listener_armed_at_add": True}).listener_armed_at_add
