"""The README's simnet.aio example must keep running and printing what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_asyncio_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "import simnet.aio as sa" in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), {"__name__": "readme"})
    reply, lost = out.getvalue().rsplit(" ", 1)
    assert reply == "b'hello\\n'"
    assert int(lost) >= 0
