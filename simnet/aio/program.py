"""What `simnet record` and `simnet replay -- program` share: naming the program and running it.

A program is given as it would be to Python: `app.py args...` or `-m module args...` (a leading
`python`/`python3` is accepted and dropped). It runs in this process through runpy, with
`sys.argv` as it would see it, so that the recording or replaying layer installed around it
catches every call.
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
from typing import Any

import attrs


class ProgramError(Exception):
    """The program cannot be run (it does not exist): one line for the user, exit status 2."""


@attrs.frozen(kw_only=True)
class Program:
    run: str  # "path" or "module"
    target: str  # the script's path or the module's name
    args: tuple[str, ...]

    @property
    def argv(self) -> list[str]:
        """sys.argv as the program sees it."""
        return [self.target, *self.args]

    @property
    def name(self) -> str:
        """What identifies the program across runs: the script's file name, or the module."""
        return os.path.basename(self.target) if self.run == "path" else self.target

    def describe(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "run": self.run,
            "target": self.target,
            "python": ".".join(str(p) for p in sys.version_info[:3]),
            "hash_seed": os.environ.get("PYTHONHASHSEED", ""),
            "cwd": os.getcwd(),
        }

    def check(self) -> None:
        """Raise ProgramError if there is nothing to run."""
        if self.run == "path":
            if not os.path.isfile(self.target):
                raise ProgramError(f"{self.target}: no such program (not a file)")
        else:
            try:
                spec = importlib.util.find_spec(self.target)
            except (ImportError, ValueError) as exc:
                raise ProgramError(f"-m {self.target}: cannot find the module ({exc})") from None
            if spec is None:
                raise ProgramError(f"-m {self.target}: no module named {self.target!r}")


def parse_program(words: list[str]) -> Program:
    """`[python] app.py args...` or `[python] -m module args...` -> Program; ProgramError if empty."""
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if words and os.path.basename(words[0]).startswith("python") and not words[0].endswith(".py"):
        words = words[1:]
    if not words:
        raise ProgramError("no program given: expected -- python app.py [args] or -- python -m module [args]")
    if words[0] == "-m":
        if len(words) < 2:
            raise ProgramError("-m needs a module name")
        return Program(run="module", target=words[1], args=tuple(words[2:]))
    if words[0].startswith("-"):
        raise ProgramError(f"{words[0]}: only a script or -m module can be run (no other Python options)")
    return Program(run="path", target=words[0], args=tuple(words[1:]))


def run_program(program: Program) -> None:
    """Run the program here, as `python app.py args` would (its __main__ is __main__)."""
    sys.argv = program.argv
    if program.run == "module":
        runpy.run_module(program.target, run_name="__main__", alter_sys=True)
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(program.target)))
        runpy.run_path(program.target, run_name="__main__")


def exit_status(exc: BaseException | None) -> int:
    """The status Python would exit with after the program raised `exc` (None: returned)."""
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        return 1
    return 1
