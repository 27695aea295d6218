"""CPython's own epoll and selectors tests, run on simulated sockets (see _shim.py).

Every test gets a fresh Network. A test is excluded only when what it checks lies outside a
network stack (the real process's fd table, signals, real files); each with its reason below.
KqueueSelector and DevpollSelector tests skip themselves on Linux (their own skipUnless).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from . import _shim

_ALL_SELECTORS = ("DefaultSelectorTestCase", "SelectSelectorTestCase", "PollSelectorTestCase",
                  "EpollSelectorTestCase")

EXCLUDED: dict[str, str] = {
    "test_epoll.py::TestEPoll::test_fd_non_inheritable":
        "os.get_inheritable() asks the real process's fd table, which holds no simulated fd",
    "test_selectors.py::EpollSelectorTestCase::test_register_file":
        "registers a real temporary file: files are outside the network stack (the simulated "
        "epoll answers EBADF for an fd it does not have, where Linux says EPERM for a file)",
}
for _case in _ALL_SELECTORS:
    EXCLUDED[f"test_selectors.py::{_case}::test_unregister_after_fd_close_and_reuse"] = (
        "os.dup2() on the real process's fd table: simulated fds are not real ones")
    EXCLUDED[f"test_selectors.py::{_case}::test_select_interrupt_exc"] = (
        "signal.alarm(): a real-time signal cannot interrupt a wait in virtual time")
    EXCLUDED[f"test_selectors.py::{_case}::test_select_interrupt_noraise"] = (
        "signal.alarm(): a real-time signal cannot interrupt a wait in virtual time")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for suffix, reason in EXCLUDED.items():
            if item.nodeid.endswith(suffix):
                item.add_marker(pytest.mark.skip(reason=f"excluded: {reason}"))


@pytest.fixture(autouse=True)
def _fresh_simulation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _shim.reset()
    # mock.patch('selectors.X') resolves 'selectors' through sys.modules: let it find the copy
    # whose classes the tests are running.
    monkeypatch.setitem(sys.modules, "selectors", _shim.selectors)
    yield
