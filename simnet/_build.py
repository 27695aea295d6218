"""Which modules setup.py compiles with mypyc, and how to run them as plain Python instead.

The per-segment, per-syscall and per-step paths: the TCP model, epoll, the host's fd table, the
network's delivery and fault injection, the server machine and the loop and executor that drive
it. Compiled, they run 1.3-1.6x as fast (docs/benchmarks.md); everything else stays Python, and
so does every module here when the compiler is missing (setup.py then installs pure Python and
says so).

`SIMNET_PURE_PYTHON=1` in the environment runs the Python sources even where the compiled
modules are installed -- for a debugger, coverage or a traceback with source lines, and for the
test suite's second pass (Makefile: the suite runs both ways). This module must import nothing
of simnet's: setup.py reads it before simnet is built, and simnet/__init__.py runs it first.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

# Paths relative to the project root, as mypycify takes them. A class in one of these modules
# may only be subclassed by Python code if it says so (mypyc_attr(allow_interpreted_subclasses)),
# and the set is compiled as one group: a partial build would leave compiled base classes under
# Python subclasses, so setup.py builds all of it or none.
COMPILED_PATHS = (
    "simnet/kernel/segment.py",
    "simnet/kernel/errors.py",
    "simnet/kernel/faulty.py",
    "simnet/kernel/network.py",
    "simnet/kernel/tcp/constants.py",
    "simnet/kernel/tcp/base.py",
    "simnet/kernel/tcp/output.py",
    "simnet/kernel/tcp/input.py",
    "simnet/kernel/tcp/listen.py",
    "simnet/kernel/tcp/api.py",
    "simnet/kernel/tcp/sendrecv.py",
    "simnet/kernel/tcp/socket.py",
    "simnet/kernel/epoll.py",
    "simnet/kernel/host.py",
    "simnet/kernel/poll.py",
    "simnet/server/machine.py",
    "simnet/drivers/executor.py",
    "simnet/drivers/loop.py",
)
COMPILED_MODULES = tuple(path.removesuffix(".py").replace("/", ".") for path in COMPILED_PATHS)
# mypyc's runtime support for the group, one extension inside the package (an editable install's
# finder maps only the packages, so a top-level module would not be found).
GROUP_NAME = "simnet.hot"
PURE_ENV = "SIMNET_PURE_PYTHON"


def pure_requested() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


class _PythonSources:
    """A meta path finder: the compiled modules' .py files ahead of their extensions.

    (Not an importlib.abc.MetaPathFinder subclass: importlib.abc loads tempfile and random,
    which the pure parts must not load -- tests/test_layers.py.)
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES or not path:
            return None
        source = os.path.join(path[0], fullname.rpartition(".")[2] + ".py")
        if not os.path.exists(source):
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def use_python_sources() -> None:
    """Import the compiled modules from their Python sources from now on (idempotent)."""
    if not any(isinstance(finder, _PythonSources) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PythonSources())


def compiled() -> bool:
    """Whether this process runs the mypyc-compiled modules (False: all of simnet is Python)."""
    module = importlib.import_module(COMPILED_MODULES[0])
    return not (module.__file__ or "").endswith(".py")
