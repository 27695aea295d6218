"""Durations and sizes as people type them: `5ms`, `1.5s`, `250us`, `64KiB`, `1m`, `4096`.

Parsed and printed here, once, for every command (`simnet`, `realnet serve`, `simnet replay
--sim`, fault schedules), so that one value can be copied from one to another.

Durations: a decimal number (no sign, no exponent) and an optional unit -- `s`, `ms`, `us` (or
`µs`), `ns`; a bare number is seconds. `parse_duration_ns` is exact (integer arithmetic on the
digits, so `0.3s` is 300,000,000 ns, not a float's nearest neighbour); `parse_duration` gives
float seconds, computed as the commands always computed them (number x unit), so a run
configured with `--latency 250us` is the run it was.

Sizes: a whole number of bytes and an optional binary multiple -- `k`, `m`, `g`, with or without
`iB` (`64k` = `64KiB` = 65,536), any case. Whether 0 is allowed is the option's business: a
payload may be empty, a buffer or a cap may not (`positive=True`).

`format_duration` and `format_size` print what the parsers read back exactly.
Bad input raises ValueError with a message that names the text and shows a good example; the
commands prefix the option's name.
"""

from __future__ import annotations

import re

NS_PER_S = 1_000_000_000

# Unit -> (ns per unit, seconds per unit); the float is what `number * unit` always used.
_DURATION_UNITS: dict[str, tuple[int, float]] = {
    "s": (NS_PER_S, 1.0),
    "ms": (1_000_000, 1e-3),
    "us": (1_000, 1e-6),
    "µs": (1_000, 1e-6),
    "ns": (1, 1e-9),
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|ms|us|µs|ns)?\s*\Z")

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
# "iB" only after a multiple: "4096iB" is a typo, not a size.
_SIZE = re.compile(r"\s*(\d+)\s*(?:([kKmMgG])(?:[iI][bB])?)?\s*\Z")

OFF_WORDS = ("off", "none")  # a timeout or a cap that is disabled


def _duration_match(text: str) -> tuple[str, str | None]:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: expected a number with s, ms, us or ns, e.g. 1ms")
    number, unit = match.groups()
    return number, unit


def parse_duration_ns(text: str, *, positive: bool = False) -> int:
    """`1ms`, `250us`, `0.5s`, `2ns`, `2` (seconds) -> integer ns, exactly (digits beyond the ns
    are dropped); ValueError for anything else, and for 0 if `positive`."""
    number, unit = _duration_match(text)
    scale = _DURATION_UNITS[unit or "s"][0]
    if "." in number:
        whole, _, frac = number.partition(".")
        frac = (frac + "0" * 9)[:9]
        ns = (int(whole or "0") * NS_PER_S + int(frac)) * scale // NS_PER_S
    else:
        ns = int(number) * scale
    if positive and ns <= 0:
        raise ValueError(f"expected a positive duration, not {text!r}")
    return ns


def parse_duration(text: str, *, positive: bool = False) -> float:
    """`1ms`, `250us`, `0.5s`, `2` (seconds) -> float seconds; ValueError as `parse_duration_ns`."""
    number, unit = _duration_match(text)
    seconds = float(number) * _DURATION_UNITS[unit or "s"][1]
    if positive and seconds <= 0:
        raise ValueError(f"expected a positive duration, not {text!r}")
    return seconds


def format_duration(ns: int) -> str:
    """Integer ns -> the shortest text `parse_duration_ns` reads back as the same value, in the
    largest unit it reaches: 1_500_000_000 -> `1.5s`, 250_000 -> `250us`, 7 -> `7ns`."""
    if isinstance(ns, bool) or not isinstance(ns, int) or ns < 0:
        raise ValueError(f"a duration is a number of ns >= 0, not {ns!r}")
    for unit in ("s", "ms", "us"):
        scale = _DURATION_UNITS[unit][0]
        if ns >= scale:
            whole, rest = divmod(ns, scale)
            if not rest:
                return f"{whole}{unit}"
            digits = len(str(scale)) - 1
            return f"{whole}.{str(rest).rjust(digits, '0').rstrip('0')}{unit}"
    return f"{ns}ns"


def parse_size(text: str, *, positive: bool = False) -> int:
    """`4096`, `64k`, `64KiB`, `1m`, `1MiB`, `2g` -> bytes (binary multiples); ValueError for
    anything else, and for 0 if `positive`."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(
            f"{text!r} is not a size in bytes: expected a count with an optional k, m or g, e.g. 4096 or 64k"
        )
    value = int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]
    if positive and value <= 0:
        raise ValueError(f"expected a positive number of bytes, not {text!r}")
    return value


def format_size(n: int) -> str:
    """Bytes -> `64KiB`, `1MiB`, `3GiB` when a binary multiple divides it, else the plain count."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"a size is a number of bytes >= 0, not {n!r}")
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def is_off(text: str) -> bool:
    """`off` or `none` (any case): a timeout or a cap switched off."""
    return text.strip().lower() in OFF_WORDS
