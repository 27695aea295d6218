"""simnet's pytest plugin (entry point `pytest11`): seeded networks and reproducible failures.

Fixtures:
    simnet_seed      the seed for this test: `--simnet-seed N` if given, else a stable number
                     derived from the test's node id (the same on every machine and every run)
    simnet_network   a fresh `simnet.Network(seed=simnet_seed)`, its RNG registered with
                     hypothesis; options for it come from `@pytest.mark.simnet(latency=...)`

An `async def` test marked `@pytest.mark.simnet(seed=..., loss=..., ...)` runs on the
simulated event loop (`simnet.aio.run`, with the marker's options); its seed is the marker's,
else `--simnet-seed`, else derived from the test id. `--simnet-seeds 0-99` (or `3,5,8`) runs
each such test once per seed. pytest-asyncio (strict mode) leaves these tests to this plugin.

When a test that used them fails, the report gets a "simnet" section with the seed, the
network's configuration, and the one command that reruns exactly that test with that seed.
"""

from __future__ import annotations

import inspect
import shlex
import zlib
from collections.abc import Generator
from typing import Any

import pytest

_SEED_KEY = pytest.StashKey[int]()
_CONFIG_KEY = pytest.StashKey[dict[str, Any]]()
_SEEDS_KEY = pytest.StashKey[list[int]]()  # --simnet-seeds, parsed once


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simnet")
    group.addoption(
        "--simnet-seed",
        type=int,
        default=None,
        help="seed for every simnet_seed / simnet_network fixture (default: derived from the test id)",
    )
    group.addoption(
        "--simnet-seeds",
        default=None,
        metavar="SEEDS",
        help="run each @pytest.mark.simnet async test once per seed: a range 0-99, or a list 1,5,9",
    )


def parse_seeds(text: str) -> list[int]:
    """`0-99` -> 0..99; `1,5,9` -> those; `0-9,20` -> both kinds. ValueError with the bad part."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part.lstrip("-"):
                low, high = part.split("-", 1)
                first, last = int(low), int(high)
                if last < first:
                    raise ValueError
                seeds.extend(range(first, last + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--simnet-seeds: {part!r} is not a seed or a range like 0-99") from None
    return seeds


def _is_simulated_test(function: Any, marker: Any) -> bool:
    return marker is not None and inspect.iscoroutinefunction(function)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    seeds = metafunc.config.stash.get(_SEEDS_KEY, None)
    marker = metafunc.definition.get_closest_marker("simnet")
    if seeds is None or not _is_simulated_test(metafunc.function, marker):
        return
    if "simnet_seed" not in metafunc.fixturenames:
        metafunc.fixturenames.append("simnet_seed")
    metafunc.parametrize("simnet_seed", seeds, indirect=True, ids=[f"seed={seed}" for seed in seeds])


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marker = pyfuncitem.get_closest_marker("simnet")
    if not _is_simulated_test(pyfuncitem.obj, marker):
        return None
    import simnet.aio

    options = dict(marker.kwargs)  # type: ignore[union-attr]
    seed = options.pop("seed", None)
    if "simnet_seed" in pyfuncitem.funcargs:
        seed = pyfuncitem.funcargs["simnet_seed"]
    elif seed is None:
        seed = _seed_for(pyfuncitem.config, pyfuncitem.nodeid)
    pyfuncitem.stash[_SEED_KEY] = seed
    pyfuncitem.stash[_CONFIG_KEY] = options
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    simnet.aio.run(pyfuncitem.obj(**kwargs), seed=seed, **options)
    return True


def _without_seed_id(nodeid: str) -> str:
    """The node id without the `seed=N` part --simnet-seeds added, so that the command reruns
    the test with --simnet-seed alone: `t.py::test[seed=3]` -> `t.py::test`."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    base, params = nodeid[:-1].split("[", 1)
    kept = [part for part in params.split("-") if not (part.startswith("seed=") and part[5:].isdigit())]
    return f"{base}[{'-'.join(kept)}]" if kept else base


def _seed_for(config: pytest.Config, nodeid: str) -> int:
    given = config.getoption("--simnet-seed")
    # crc32 of the node id: stable across runs, machines and PYTHONHASHSEED (hash() is not).
    return int(given) if given is not None else zlib.crc32(nodeid.encode())


def pytest_configure(config: pytest.Config) -> None:
    text = config.getoption("--simnet-seeds", None)
    if text is not None:
        try:
            config.stash[_SEEDS_KEY] = parse_seeds(text)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    config.addinivalue_line(
        "markers",
        "simnet(**options): options for the simnet_network fixture's Network; on an async def test, "
        "runs it on simnet.aio's simulated loop with these simnet.aio.run options",
    )


@pytest.fixture
def simnet_seed(request: pytest.FixtureRequest) -> int:
    param = getattr(request, "param", None)  # --simnet-seeds parametrises this fixture
    seed = param if param is not None else _seed_for(request.config, request.node.nodeid)
    request.node.stash[_SEED_KEY] = seed
    return seed


@pytest.fixture
def simnet_network(request: pytest.FixtureRequest, simnet_seed: int) -> Any:
    from simnet.testing.strategies import registered_network

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
    command = f"pytest {shlex.quote(_without_seed_id(item.nodeid))} --simnet-seed={seed}"
    report.sections.append(
        ("simnet", f"seed: {seed}\nnetwork: Network(seed={seed}, {config})\nreproduce: {command}")
    )
