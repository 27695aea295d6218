"""The pytest marker: async tests on the simulated loop, swept over seeds, failures with a
command that reruns the failing seed; pytest-asyncio in its default (strict) mode coexists."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import asyncio
import pytest
import simnet.aio as sa


@pytest.mark.simnet(latency=0.01)
async def test_round_trip_is_virtual():
    async def handler(reader, writer):
        writer.write(await reader.readline())
    server = await asyncio.start_server(handler, "0.0.0.0", 80)
    sa.spawn(asyncio.sleep(0), host="client")
    reader, writer = await asyncio.open_connection("main", 80)
    writer.write(b"x\\n")
    assert await reader.readline() == b"x\\n"
    server.close()


@pytest.mark.simnet(schedule="explore")
async def test_racy(simnet_seed):
    order = []

    async def worker(name):
        await asyncio.sleep(1)
        order.append(name)

    await asyncio.gather(worker("a"), worker("b"))
    assert order == ["a", "b"], f"seed {simnet_seed}: {order}"


@pytest.mark.asyncio
async def test_plain_pytest_asyncio_still_works():
    await asyncio.sleep(0)
    assert not isinstance(asyncio.get_running_loop(), sa.SimEventLoop)
"""


def test_marker_runs_async_tests_and_sweeps_seeds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--simnet-seeds", "0-15", "-q")
    outcomes = result.parseoutcomes()
    # 16 seeds of the round trip pass; the race passes for some seeds and fails for others.
    assert outcomes["passed"] >= 16 + 1 + 1
    assert 0 < outcomes.get("failed", 0) < 16
    text = result.stdout.str()
    assert "reproduce: pytest 'test_user.py::test_racy[seed=" not in text  # the rerun names no id
    assert "reproduce: pytest test_user.py::test_racy" in text
    assert "--simnet-seed=" in text


def test_a_reproduce_command_reruns_exactly_the_failing_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=TESTS)
    swept = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--simnet-seeds", "0-15", "-q", "-k", "racy")
    failing = [line for line in swept.stdout.lines if line.startswith("reproduce: ")]
    assert failing
    seed = failing[0].rsplit("--simnet-seed=", 1)[1]
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-k", "racy", f"--simnet-seed={seed}")
    again.assert_outcomes(failed=1)


def test_bad_seed_list_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--simnet-seeds", "5-x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--simnet-seeds: '5-x' is not a seed or a range like 0-99" in result.stderr.str()


def test_the_docs_worked_example_passes_over_seeds(pytester: pytest.Pytester) -> None:
    import pathlib

    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "aio_shop"
    for name in ("shop.py", "test_shop.py"):
        pytester.makepyfile(**{name[:-3]: (example / name).read_text()})
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "--simnet-seeds", "0-19")
    result.assert_outcomes(passed=20)
