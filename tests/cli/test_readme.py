"""The README's paste-able example must keep working and keep saying what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs_and_shows_what_its_comments_promise() -> None:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    example = next(b for b in blocks if "simnet.Network" in b)
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(README), "exec"), namespace)
    printed = out.getvalue()
    assert "[S  ]" in printed and "[S. ]" in printed  # the handshake in the segment log
    assert "EAGAIN True" in printed
    assert "CLOSE-WAIT" in printed and "FIN-WAIT-2" in printed
    s, ep = namespace["s"], namespace["ep"]
    assert ep.poll(0) == [(s.fileno(), 4)]  # EPOLLOUT, as the comment says
