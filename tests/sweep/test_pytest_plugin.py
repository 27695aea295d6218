"""The pytest plugin: a seeded network fixture, --simnet-seed, and a reproduce line on failure."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TEST_FILE = """
import pytest

def test_uses_the_network(simnet_network, simnet_seed):
    host = simnet_network.host("10.0.0.1")
    assert simnet_network.seed == simnet_seed
    print("SEED", simnet_seed, "DRAW", simnet_network.rng.getrandbits(32))

@pytest.mark.simnet(latency=0.25)
def test_fails(simnet_network):
    assert simnet_network.host("10.0.0.2") is None
"""


# The inner sessions read no pyproject.toml: give them the setting ours has (pytest-asyncio warns
# about its default loop scope otherwise).
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def test_the_seed_is_stable_per_test_and_overridable(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_seeded=TEST_FILE)
    first = pytester.runpytest("-s", "-k", "uses_the_network")
    second = pytester.runpytest("-s", "-k", "uses_the_network")
    first.assert_outcomes(passed=1)
    def seed_line(result: pytest.RunResult) -> str:
        return next(line[line.index("SEED") :] for line in result.outlines if "SEED" in line)

    assert seed_line(first) == seed_line(second)
    forced = pytester.runpytest("-s", "-k", "uses_the_network", "--simnet-seed=1234")
    assert seed_line(forced).startswith("SEED 1234 ")
    assert seed_line(forced) != seed_line(first)


def test_a_failure_reports_seed_configuration_and_a_reproduce_command(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_seeded=TEST_FILE)
    result = pytester.runpytest("-k", "fails", "--simnet-seed=99")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*simnet*",
            "seed: 99",
            "network: Network(seed=99, latency=0.25)",
            "reproduce: pytest test_seeded.py::test_fails --simnet-seed=99",
        ]
    )
