"""The layers as a test: which part of simnet may import which (docs/architecture.md).

Two kinds of check:

- In a fresh interpreter, importing the pure parts (`simnet.server`, `simnet.trace`) and
  `realnet` loads neither simpy nor the simulated kernel, and the pure parts load none of
  `socket`, `select`, `time`, `random` beyond what a bare interpreter has already loaded.
- Walking every module's import statements with `ast` -- at module level, inside functions and
  under `if TYPE_CHECKING:` alike, because an import inside a function is still a dependency --
  each arrow between two parts must be in `ALLOWED`. The arrows that still point up are listed
  in `KNOWN_VIOLATIONS`, and the test asserts that each one still exists: fixing one fails the
  test until it is taken off the list, so the list only shrinks.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# -- the parts ------------------------------------------------------------------------------------

# Module name (or prefix) -> part. The longest matching prefix wins.
PARTS: dict[str, str] = {
    "simnet": "api",  # simnet/__init__.py: the public names, loaded lazily from the kernel
    "simnet.units": "units",
    "simnet._build": "build",  # which modules are compiled; the switch back to their sources
    "simnet.server": "server",
    "simnet.trace": "trace",
    "simnet.faults": "faults",
    "simnet.kernel": "kernel",
    "simnet.drivers": "drivers",
    "simnet.sim": "sim",
    "simnet.aio": "aio",
    "simnet.testing": "testing",
    "simnet.cli": "cli",
    "realnet": "realnet",
}

# Part -> the parts it may import (besides itself). Arrows point down only:
#
#   cli                         realnet
#    |  \                        |
#   testing  aio                 |
#    |    \ / |                  |
#   sim    \  |                  |
#    |      \ |                  |
#   drivers --+------------------+
#    |    \
#   kernel  \
#    |       server   trace (-> server)
#   faults
#        all -> units (pure parsing and printing; imports nothing of ours)
#        api -> build (simnet/_build.py: what is compiled; imports nothing of ours)
_PURE = {"units"}
ALLOWED: dict[str, set[str]] = {
    "units": set(),
    "build": set(),
    # The pure core: the machine and its apps; the trace format (which speaks server syscalls).
    "server": set(_PURE),
    "trace": _PURE | {"server"},
    # A fault schedule is data the kernel consumes (Network(faults=...)); it imports nothing of ours.
    "faults": set(_PURE),
    "kernel": _PURE | {"faults"},
    # Drivers execute the machine's syscalls: on the kernel, on recorded results (replay).
    "drivers": _PURE | {"kernel", "server", "trace"},
    # Whole runs: clients (workload), a server, a recorder, faults; resim rebuilds clients from a trace.
    "sim": _PURE | {"drivers", "kernel", "server", "trace", "faults"},
    # Users' asyncio programs on the simulated kernel. A recorded program's re-simulation
    # (simnet/aio/resim.py) replays the clients that sim's resim extracts and scripts.
    "aio": _PURE | {"sim", "drivers", "kernel", "server", "trace", "faults"},
    "testing": _PURE | {"sim", "aio", "drivers", "kernel", "server", "trace", "faults"},
    "cli": _PURE | {"testing", "sim", "aio", "drivers", "kernel", "server", "trace", "faults"},
    # realnet touches real sockets only; it never loads the simulated kernel.
    "realnet": _PURE | {"drivers", "server", "trace"},
    "api": {"kernel", "build"},
}
# `import simnet` loads the kernel's public names (lazily): whoever may import the kernel may import it.
for _allowed in ALLOWED.values():
    if "kernel" in _allowed:
        _allowed.add("api")

# Upward arrows that remain, each (importing module, imported module). The test fails if one is
# fixed and still listed: take it off then.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()  # none left: the command wiring moved to simnet/cli/


def part_of(module: str) -> str | None:
    best = None
    for prefix in PARTS:
        # "simnet" is the package's __init__ alone: a new top-level module must be given its part.
        inside = module.startswith(prefix + ".") and prefix != "simnet"
        if (module == prefix or inside) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else PARTS[best]


# -- walking the imports ----------------------------------------------------------------------------


def _our_modules() -> dict[str, Path]:
    modules = {}
    for package in ("simnet", "realnet"):
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every module of ours that `module` imports, anywhere in its file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from simnet.server import syscalls`: the submodule
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return {name for name in found if name.split(".")[0] in ("simnet", "realnet")}


def import_graph() -> dict[str, set[str]]:
    known = _our_modules()
    return {module: _imports(module, path, known) for module, path in known.items()}


def upward_arrows() -> set[tuple[str, str]]:
    bad = set()
    for module, targets in import_graph().items():
        source = part_of(module)
        assert source is not None, f"{module}: in no part; add it to PARTS in tests/test_layers.py"
        for target in targets:
            dest = part_of(target)
            assert dest is not None, f"{module} imports {target}, which is in no part"
            if dest != source and dest not in ALLOWED[source]:
                bad.add((module, target))
    return bad


def test_every_part_has_its_arrows_stated():
    assert set(PARTS.values()) == set(ALLOWED)


def test_no_module_imports_a_layer_above_it():
    bad = upward_arrows()
    new = sorted(bad - KNOWN_VIOLATIONS)
    assert not new, "imports against the layers (docs/architecture.md):\n" + "\n".join(
        f"  {a} ({part_of(a)}) -> {b} ({part_of(b)})" for a, b in new
    )


def test_known_violations_still_exist():
    fixed = sorted(KNOWN_VIOLATIONS - upward_arrows())
    assert not fixed, f"fixed, so take them off KNOWN_VIOLATIONS: {fixed}"


# -- what a fresh interpreter loads ---------------------------------------------------------------

_PROBE = """
import json, sys
before = set(sys.modules)
import {module}
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def loaded_by(module: str) -> set[str]:
    """The modules that importing `module` adds to a fresh interpreter's sys.modules."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout  # fmt: skip
    return set(json.loads(out))


@pytest.mark.parametrize("module", ["simnet", "simnet.server", "simnet.server.machine", "simnet.trace", "realnet"])
def test_importing_the_pure_parts_and_realnet_loads_no_simpy_and_no_kernel(module):
    loaded = loaded_by(module)
    heavy = sorted(m for m in loaded if m == "simpy" or m.startswith(("simpy.", "simnet.kernel")))
    assert not heavy, f"import {module} loaded {heavy}"


PURE_PACKAGES = ("simnet.server", "simnet.trace")
FORBIDDEN_IN_PURE = ("socket", "select", "time", "random", "threading", "simpy")


@pytest.mark.parametrize("module", ["simnet.server", "simnet.server.machine", "simnet.server.apps", "simnet.trace"])
def test_importing_the_pure_parts_loads_no_io_clock_or_rng(module):
    # threading is left out here: attrs imports it. The AST test below holds our own files to it.
    loaded = loaded_by(module)
    assert not sorted(m for m in loaded if m in ("socket", "select", "time", "random"))


def test_the_pure_parts_import_no_io_clock_or_rng():
    bad = []
    for package in PURE_PACKAGES:
        for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    names = [node.module]
                bad += [
                    f"{path.relative_to(REPO)}:{node.lineno}: {name}"
                    for name in names
                    if name.split(".")[0] in FORBIDDEN_IN_PURE
                ]
    assert not bad, "the pure core imports I/O, a clock or an RNG:\n" + "\n".join(bad)
