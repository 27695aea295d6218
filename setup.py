"""Compile simnet's hot paths with mypyc (simnet/_build.py lists them); pure Python if that fails.

Everything else about the package is in pyproject.toml. The build needs mypy (pyproject's
build-system requires it) and a C compiler with Python's headers; without them, or with
SIMNET_PURE_PYTHON=1, the same package installs as pure Python, slower and otherwise the same.
"""

from __future__ import annotations

import os
import runpy
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

build = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "simnet", "_build.py"))


def warn(message: str) -> None:
    print(f"simnet setup.py: {message}; installing pure Python (slower, the same behaviour)", file=sys.stderr)


def ext_modules() -> list[Any]:
    if build["pure_requested"]():
        print(f"simnet setup.py: {build['PURE_ENV']} is set: not compiling", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        warn(f"mypyc is not importable ({exc})")
        return []
    try:
        return list(mypycify(list(build["COMPILED_PATHS"]), opt_level="3", group_name=build["GROUP_NAME"]))
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error in the sources
        warn(f"mypyc could not translate the sources ({exc!r})")
        return []


class AllOrNothing(build_ext):
    """Build every extension or none: a compiled base class under a Python subclass fails at import."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no Python.h, ...
            for output in self.get_outputs():
                if os.path.exists(output):
                    os.remove(output)
            warn(f"compiling failed ({exc})")


setup(ext_modules=ext_modules(), cmdclass={"build_ext": AllOrNothing})
