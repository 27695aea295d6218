"""Testing your own server with simnet: checking whole runs, hypothesis strategies, seed sweeps
(local processes or Dask), and the pytest plugin.

    from simnet.testing import check_run, strategies as sst   # check.py, strategies.py
    simnet sweep ...                                          # sweep.py, sweep_dask.py
    @pytest.mark.simnet(...)                                  # pytest_plugin.py

The names are loaded on first use, so that pytest loading the plugin (an entry point, at every
start) does not load the simulator.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simnet.testing.check import RunFailed, check_run, config_digest

__all__ = ["RunFailed", "check_run", "config_digest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("simnet.testing.check"), name)
    raise AttributeError(f"module 'simnet.testing' has no attribute {name!r}")
