"""CPython's own epoll and selectors tests, run on simulated sockets (see _shim.py).

Every test gets a fresh Network. A test is excluded only when what it checks lies outside a
network stack (the real process's fd table, signals, real files); each with its reason below.
KqueueSelector's and DevpollSelector's test cases are for BSD's and Solaris's selectors: they are
not collected here (on Linux CPython skips them itself).

Excluded tests are deselected, not skipped: `pytest -ra` lists no skip for a test that could
never run here, and `pytest --co -q tests/kernel/cpython` with `-v` shows what was left out.
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
EXCLUDED["test_selectors.py::SelectSelectorTestCase::test_modify_unregister"] = (
    "CPython skips it itself for SelectSelector: it has no _selector_cls whose modify() can fail")
for _case in _ALL_SELECTORS:
    EXCLUDED[f"test_selectors.py::{_case}::test_unregister_after_fd_close_and_reuse"] = (
        "os.dup2() on the real process's fd table: simulated fds are not real ones")
    EXCLUDED[f"test_selectors.py::{_case}::test_select_interrupt_exc"] = (
        "signal.alarm(): a real-time signal cannot interrupt a wait in virtual time")
    EXCLUDED[f"test_selectors.py::{_case}::test_select_interrupt_noraise"] = (
        "signal.alarm(): a real-time signal cannot interrupt a wait in virtual time")


# Test cases of selectors that exist on other systems only.
OTHER_SYSTEMS: dict[str, str] = {
    "KqueueSelectorTestCase": "kqueue is BSD's and macOS's, not Linux's",
    "DevpollSelectorTestCase": "/dev/poll is Solaris's, not Linux's",
}


def excluded(nodeid: str) -> str | None:
    """Why a CPython test is not run on simulated sockets, or None if it is run."""
    for suffix, reason in EXCLUDED.items():
        if nodeid.endswith(suffix):
            return reason
    for case, reason in OTHER_SYSTEMS.items():
        if f"::{case}::" in nodeid:
            return reason
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        (dropped if excluded(item.nodeid) is not None else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(autouse=True)
def _fresh_simulation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    _shim.reset()
    # mock.patch('selectors.X') resolves 'selectors' through sys.modules: let it find the copy
    # whose classes the tests are running.
    monkeypatch.setitem(sys.modules, "selectors", _shim.selectors)
    yield
