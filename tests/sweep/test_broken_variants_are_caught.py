"""The strategies catch classic event-loop bugs, and each failure shrinks to files that reproduce it.

A machine variant that ignores partial writes, and one that never registers EPOLLOUT, are run
under `simnet.testing.strategies.run_configs`; hypothesis must find a failing run, shrink it, and
`check_run` must leave a configuration that `simnet run --config` fails on again and a trace that
`simnet replay` replays exactly with the variant and that diverges from the reference machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from simnet.testing import strategies as sst
from simnet.sim.run import RunConfig
from simnet.testing import RunFailed, check_run

ROOT = Path(__file__).resolve().parents[2]


def simnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )


def find_shrunk_failure(machine: str, failures: Path) -> RunFailed:
    @settings(max_examples=300, database=None, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(sst.run_configs(app="http", machine=machine, edge_triggered=False, misbehaving=False))
    def property_holds(config: RunConfig) -> None:
        check_run(config, failures=failures)

    with pytest.raises(RunFailed) as caught:
        property_holds()
    return caught.value


@pytest.mark.parametrize(
    "variant, replay_factory",
    [
        ("IgnoresPartialWrites", "replay_ignores_partial_writes"),
        ("ForgetsEpollout", "replay_forgets_epollout"),
    ],
)
def test_a_broken_machine_is_caught_shrunk_and_reproduced(variant: str, replay_factory: str, tmp_path: Path) -> None:
    failure = find_shrunk_failure(f"tests.sweep.broken:{variant}", tmp_path)
    config = RunConfig.from_json(json.loads(failure.config_path.read_text()))
    # Shrunk: one client, one request is all it takes for either bug.
    assert config.workload.clients == 1 and config.workload.requests == 1, config
    assert "simnet run --config" in str(failure)

    rerun = simnet("run", "--config", str(failure.config_path))
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    assert "FAILED" in rerun.stdout

    exact = simnet("replay", "--machine", f"tests.sweep.broken:{replay_factory}", str(failure.trace_path))
    assert exact.returncode == 0, exact.stdout + exact.stderr
    against_reference = simnet("replay", str(failure.trace_path))
    assert against_reference.returncode == 1, against_reference.stdout
    assert "diverge" in against_reference.stdout.lower()


def test_the_reference_machine_passes_the_same_property(tmp_path: Path) -> None:
    @settings(max_examples=40, database=None, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(sst.run_configs(app="http", misbehaving=False))
    def property_holds(config: RunConfig) -> None:
        check_run(config, failures=tmp_path)

    property_holds()
    assert not list(tmp_path.iterdir())
