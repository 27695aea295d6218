"""Make `import realnet` mean the package, not this directory.

Other test directories are packages without a `tests/__init__.py`, so pytest (prepend import mode)
puts `tests/` itself on sys.path; `tests/realnet/` then looks like a namespace package `realnet`
and shadows the real one whenever the repository root is not on sys.path (`.venv/bin/pytest`,
unlike `python -m pytest`, does not add the current directory). Putting the root first is what
`python -m pytest` from the root does anyway.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if sys.path[:1] != [_ROOT]:
    sys.path.insert(0, _ROOT)
_stale = sys.modules.get("realnet")
if _stale is not None and getattr(_stale, "__file__", None) is None:  # the namespace impostor
    del sys.modules["realnet"]
