"""simnet's pytest plugin (entry point `pytest11`): seeded networks and reproducible failures.

Fixtures:
    simnet_seed      the seed for this test: `--simnet-seed N` if given, else a stable number
                     derived from the test's node id (the same on every machine and every run)
    simnet_network   a fresh `simnet.Network(seed=simnet_seed)`, its RNG registered with
                     hypothesis; options for it come from `@pytest.mark.simnet(latency=...)`

When a test that used them fails, the report gets a "simnet" section with the seed, the
network's configuration, and the one command that reruns exactly that test with that seed.
"""

from __future__ import annotations

import shlex
import zlib
from collections.abc import Generator
from typing import Any

import pytest

_SEED_KEY = pytest.StashKey[int]()
_CONFIG_KEY = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simnet")
    group.addoption(
        "--simnet-seed",
        type=int,
        default=None,
        help="seed for every simnet_seed / simnet_network fixture (default: derived from the test id)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simnet(**options): keyword options for the simnet_network fixture's Network")


@pytest.fixture
def simnet_seed(request: pytest.FixtureRequest) -> int:
    given = request.config.getoption("--simnet-seed")
    # crc32 of the node id: stable across runs, machines and PYTHONHASHSEED (hash() is not).
    seed = int(given) if given is not None else zlib.crc32(request.node.nodeid.encode())
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture
def simnet_network(request: pytest.FixtureRequest, simnet_seed: int) -> Any:
    from simnet.strategies import registered_network

    marker = request.node.get_closest_marker("simnet")
    options = dict(marker.kwargs) if marker is not None else {}
    request.node.stash[_CONFIG_KEY] = options
    return registered_network(simnet_seed, **options)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed or _SEED_KEY not in item.stash:
        return
    seed = item.stash[_SEED_KEY]
    options = item.stash.get(_CONFIG_KEY, {})
    config = ", ".join(f"{key}={value!r}" for key, value in options.items()) or "defaults"
    command = f"pytest {shlex.quote(item.nodeid)} --simnet-seed={seed}"
    report.sections.append(
        ("simnet", f"seed: {seed}\nnetwork: Network(seed={seed}, {config})\nreproduce: {command}")
    )
