"""Checking whole runs in users' tests, with failures saved as files one command reproduces.

    from hypothesis import given
    from simnet.testing import strategies as sst
    from simnet.testing import check_run

    @given(sst.run_configs())
    def test_my_server_survives(config):
        check_run(config)       # AssertionError naming the problems and the reproduce commands

When a run fails, its syscall trace and its configuration are written to the failures folder
(default `traces/failures/`, or `$SIMNET_FAILURES`), named by a digest of the configuration.
Hypothesis runs the shrunk example last, so the files it leaves named in the final error are the
smallest failing case:

    simnet run --config traces/failures/run-<digest>.json   # re-runs it: the same failure
    simnet replay traces/failures/run-<digest>.jsonl        # exact replay against the reference
                                                            # machine: where a variant diverged
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
from pathlib import Path

from simnet.sim.run import RunConfig, RunSummary, simulate

DEFAULT_FAILURES = "traces/failures"


class RunFailed(AssertionError):
    """A simulated run broke one of its properties; the message says how to reproduce it."""

    def __init__(self, message: str, summary: RunSummary, config_path: Path, trace_path: Path) -> None:
        super().__init__(message)
        self.summary = summary
        self.config_path = config_path
        self.trace_path = trace_path


def config_digest(config: RunConfig) -> str:
    canonical = json.dumps(config.to_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def check_run(config: RunConfig, *, failures: str | os.PathLike[str] | None = None) -> RunSummary:
    """Simulate `config`; return its summary if every property held, else save the trace and the
    configuration under `failures` and raise `RunFailed` with the commands that reproduce it."""
    folder = Path(failures if failures is not None else os.environ.get("SIMNET_FAILURES", DEFAULT_FAILURES))
    with tempfile.TemporaryDirectory() as scratch:
        scratch_trace = Path(scratch) / "run.jsonl"
        summary = simulate(config, trace=scratch_trace)
        if summary.ok:
            return summary
        folder.mkdir(parents=True, exist_ok=True)
        name = f"run-{config_digest(config)}"
        trace_path, config_path = folder / f"{name}.jsonl", folder / f"{name}.json"
        trace_path.write_bytes(scratch_trace.read_bytes())
    config_path.write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n")
    message = "\n".join(
        [
            f"simulated run failed (seed {config.seed}): " + "; ".join(summary.problems()),
            *(f"  {line}" for line in summary.lines()),
            f"reproduce:  simnet run --config {shlex.quote(str(config_path))}",
            f"trace:      simnet show {shlex.quote(str(trace_path))}",
            f"            simnet replay {shlex.quote(str(trace_path))}",
        ]
    )
    raise RunFailed(message, summary, config_path, trace_path)
