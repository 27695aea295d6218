"""The ``backend`` fixture: every conformance scenario runs once on each backend.

The interface and the helpers live in ``_harness.py`` (see its docstring for the rules they
follow); this file only parametrises.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._harness import Backend, RealBackend, SimBackend, load_simnet


@pytest.fixture(params=["real", "sim"])
def backend(request: pytest.FixtureRequest) -> Any:
    if request.param == "real":
        b: Backend = RealBackend()
    else:
        b = SimBackend(load_simnet())
    try:
        yield b
    finally:
        b.close_all()
