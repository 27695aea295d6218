"""Faults: seeded, deterministic misbehaviour of links, hosts and syscalls (docs/faults.md).

A `FaultSchedule` is a value: per-link faults (loss, duplication, reordering, jitter), timed
events (partitions, holds, injected RSTs, host crashes) and short I/O on one host's sockets.
`Network(seed, faults=schedule)` applies it; `RunConfig(faults=schedule)` and `simnet run
--faults FILE` build one. Every fault decision draws from the network's *fault* RNG -- a
`random.Random` derived from the seed, separate from the network's own -- so a run without
faults draws nothing extra and stays byte-identical to a run before faults existed, and a run
with faults is the same every time.

Times are virtual seconds from the start of the run; rates are probabilities per segment (link
faults) or per call (short I/O).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from simnet.units import parse_duration

DISTRIBUTIONS = {
    # name -> the parameters it takes (seconds); each draw is clamped at 0.
    "none": (),
    "constant": ("value",),
    "uniform": ("low", "high"),
    "exponential": ("mean",),
    "normal": ("mean", "stddev"),
}


def _rate(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 or math.isnan(value):
        raise ValueError(f"{attribute.name}: a probability between 0 and 1, not {value!r}")


def _below_one(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    _rate(instance, attribute, value)
    if value >= 1:
        raise ValueError(f"{attribute.name}: must be below 1 (a call must be able to succeed), not {value!r}")


def _time(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None and attribute.name in ("end", "restart_after"):
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{attribute.name}: a time in seconds >= 0, not {value!r}")


def _ip(instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    import ipaddress

    try:
        ipaddress.IPv4Address(value)
    except (ValueError, TypeError):
        raise ValueError(f"{attribute.name}: not an IPv4 address: {value!r}") from None


# Tuple fields take any iterable. attrs' mypy plugin types an __init__ argument by its
# converter's parameter and cannot solve a generic one (converter=tuple gives Iterable[_T_co]),
# so each item type has a named converter of its own.
def _floats(items: Iterable[float]) -> tuple[float, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class Jitter:
    """Extra one-way delay per segment, drawn from a named distribution (seconds)."""

    distribution: str = "none"
    params: tuple[float, ...] = attrs.field(default=(), converter=_floats)

    def __attrs_post_init__(self) -> None:
        names = DISTRIBUTIONS.get(self.distribution)
        if names is None:
            raise ValueError(f"jitter: unknown distribution {self.distribution!r} (one of {', '.join(DISTRIBUTIONS)})")
        if len(self.params) != len(names):
            takes = ", ".join(names) or "none"
            raise ValueError(f"jitter: {self.distribution} takes {len(names)} parameters ({takes})")
        for name, value in zip(names, self.params):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
                raise ValueError(f"jitter: {name} must be a number of seconds >= 0, not {value!r}")
        if self.distribution == "uniform" and self.params[0] > self.params[1]:
            raise ValueError("jitter: uniform needs low <= high")

    def draw_ns(self, rng: random.Random) -> int:
        d, p = self.distribution, self.params
        if d == "none":
            return 0
        if d == "constant":
            value = p[0]
        elif d == "uniform":
            value = rng.uniform(p[0], p[1])
        elif d == "exponential":
            value = rng.expovariate(1 / p[0]) if p[0] > 0 else 0.0
        else:
            value = rng.gauss(p[0], p[1])
        return max(0, round(value * 1_000_000_000))


@attrs.frozen(kw_only=True)
class LinkFaults:
    """Faults on the links from host `src` to host `dst` (None: any host). Loopback and a host
    talking to itself are never faulted."""

    src: str | None = attrs.field(default=None, validator=_ip)
    dst: str | None = attrs.field(default=None, validator=_ip)
    both_ways: bool = True  # also the links from dst to src
    loss: float = attrs.field(default=0.0, validator=_rate)
    duplicate: float = attrs.field(default=0.0, validator=_rate)
    reorder: float = attrs.field(default=0.0, validator=_rate)
    # A reordered segment is held back this long (seconds), so later ones overtake it.
    reorder_delay: float = attrs.field(default=0.005, validator=_time)
    jitter: Jitter = attrs.field(factory=Jitter)

    def matches(self, src: str, dst: str) -> bool:
        if (self.src is None or self.src == src) and (self.dst is None or self.dst == dst):
            return True
        return self.both_ways and (self.src is None or self.src == dst) and (self.dst is None or self.dst == src)


@attrs.frozen(kw_only=True)
class Partition:
    """From `start` to `end` (None: for ever) no segment from a to b -- nor b to a, unless
    one_way -- gets through: each is logged as lost."""

    a: str = attrs.field(validator=_ip)
    b: str = attrs.field(validator=_ip)
    start: float = attrs.field(default=0.0, validator=_time)
    end: float | None = attrs.field(default=None, validator=_time)
    one_way: bool = False

    def __attrs_post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ValueError("end: before start")

    def cuts(self, src: str, dst: str) -> bool:
        return (src == self.a and dst == self.b) or (not self.one_way and src == self.b and dst == self.a)


@attrs.frozen(kw_only=True)
class Hold:
    """From `start` to `end` the segments from a to b (and b to a unless one_way) are held, not
    lost: at `end` they go on, in the order they were sent."""

    a: str = attrs.field(validator=_ip)
    b: str = attrs.field(validator=_ip)
    start: float = attrs.field(default=0.0, validator=_time)
    end: float = attrs.field(validator=_time)
    one_way: bool = False

    def __attrs_post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("end: before start")

    def cuts(self, src: str, dst: str) -> bool:
        return (src == self.a and dst == self.b) or (not self.one_way and src == self.b and dst == self.a)


@attrs.frozen(kw_only=True)
class InjectRst:
    """At `at`, a forged RST (a middlebox's) resets the `nth` connection (1-based, in the order
    they were made) of `host`, and -- unless one_sided -- its peer's end too."""

    at: float = attrs.field(validator=_time)
    host: str = attrs.field(validator=_ip)
    nth: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    one_sided: bool = False


@attrs.frozen(kw_only=True)
class Crash:
    """At `at`, `host` crashes: its sockets vanish without a segment, and it answers nothing.
    After `restart_after` seconds (None: never) it is back, with no sockets, and answers
    segments for its old connections with RST."""

    host: str = attrs.field(validator=_ip)
    at: float = attrs.field(validator=_time)
    restart_after: float | None = attrs.field(default=None, validator=_time)


@attrs.frozen(kw_only=True)
class ShortIO:
    """FoundationDB-style short I/O on `host`'s sockets and epolls (None: the server's in a
    run). Rates are per call: recv returns a shorter prefix (>= 1 byte) of what it would have
    returned; send accepts fewer bytes (>= 1) than fit; epoll_wait wakes up with no events."""

    host: str | None = attrs.field(default=None, validator=_ip)
    recv: float = attrs.field(default=0.0, validator=_below_one)
    send: float = attrs.field(default=0.0, validator=_below_one)
    spurious_wakeup: float = attrs.field(default=0.0, validator=_below_one)


def _links(items: Iterable[LinkFaults]) -> tuple[LinkFaults, ...]:
    return tuple(items)


def _partitions(items: Iterable[Partition]) -> tuple[Partition, ...]:
    return tuple(items)


def _holds(items: Iterable[Hold]) -> tuple[Hold, ...]:
    return tuple(items)


def _rsts(items: Iterable[InjectRst]) -> tuple[InjectRst, ...]:
    return tuple(items)


def _crashes(items: Iterable[Crash]) -> tuple[Crash, ...]:
    return tuple(items)


def _short_ios(items: Iterable[ShortIO]) -> tuple[ShortIO, ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class FaultSchedule:
    links: tuple[LinkFaults, ...] = attrs.field(default=(), converter=_links)
    partitions: tuple[Partition, ...] = attrs.field(default=(), converter=_partitions)
    holds: tuple[Hold, ...] = attrs.field(default=(), converter=_holds)
    rsts: tuple[InjectRst, ...] = attrs.field(default=(), converter=_rsts)
    crashes: tuple[Crash, ...] = attrs.field(default=(), converter=_crashes)
    short_io: tuple[ShortIO, ...] = attrs.field(default=(), converter=_short_ios)

    @property
    def empty(self) -> bool:
        return not (self.links or self.partitions or self.holds or self.rsts or self.crashes or self.short_io)

    def to_json(self) -> dict[str, Any]:
        """The plain form `from_json` reads back; fields at their defaults are left out."""
        out: dict[str, Any] = {}
        for section, _cls in _SECTIONS.items():
            items = getattr(self, section)
            if items:
                out[section] = [_item_json(item) for item in items]
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "faults") -> FaultSchedule:
        """Build from `to_json`'s form (also a TOML document's); ValueError `where: field: problem`."""
        if not isinstance(obj, dict):
            raise ValueError(f"{where}: a fault schedule is a table/object")
        unknown = sorted(set(obj) - set(_SECTIONS))
        if unknown:
            raise ValueError(f"{where}: unknown section {unknown[0]!r} (sections: {', '.join(_SECTIONS)})")
        sections: dict[str, Any] = {}
        for section, item_cls in _SECTIONS.items():
            items = obj.get(section, [])
            if isinstance(items, dict):
                items = [items]
            if not isinstance(items, list):
                raise ValueError(f"{where}: {section}: a list of tables")
            sections[section] = [_item_from(item_cls, item, f"{where}: {section}[{i}]") for i, item in enumerate(items)]
        return cls(**sections)


_SECTIONS: dict[str, type] = {
    "links": LinkFaults,
    "partitions": Partition,
    "holds": Hold,
    "rsts": InjectRst,
    "crashes": Crash,
    "short_io": ShortIO,
}


def _item_json(item: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in attrs.fields(type(item)):
        value = getattr(item, field.name)
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if value == default:
            continue
        if isinstance(value, Jitter):
            value = [value.distribution, *value.params]
        out[field.name] = value
    return out


def _item_from(item_cls: type, obj: Any, where: str) -> Any:
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a table/object")
    known = [field.name for field in attrs.fields(item_cls)]
    for name in obj:
        if name not in known:
            raise ValueError(f"{where}: unknown field {name!r} (fields: {', '.join(known)})")
    fields = dict(obj)
    if "jitter" in fields:
        fields["jitter"] = parse_jitter(fields["jitter"], f"{where}: jitter")
    try:
        return item_cls(**fields)
    except TypeError as exc:
        message = str(exc)
        if "missing" in message:
            missing = message.split("argument:")[-1].split("arguments:")[-1].strip()
            raise ValueError(f"{where}: missing {missing}") from None
        raise ValueError(f"{where}: {message}") from None
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def parse_jitter(value: Any, where: str = "jitter") -> Jitter:
    """`["uniform", 0, 0.002]`, `{"distribution": "normal", "params": [0.001, 0.0005]}`, or the
    command line's `uniform:0:2ms` (durations in seconds unless a unit is given)."""
    try:
        if isinstance(value, Jitter):
            return value
        if isinstance(value, str):
            name, *rest = value.split(":")
            return Jitter(distribution=name, params=tuple(parse_duration(p) for p in rest))
        if isinstance(value, list) and value and isinstance(value[0], str):
            return Jitter(distribution=value[0], params=tuple(value[1:]))
        if isinstance(value, dict):
            return Jitter(**value)
    except (ValueError, TypeError) as exc:
        message = str(exc)
        raise ValueError(f"{where}: {message.removeprefix('jitter: ')}") from None
    raise ValueError(f"{where}: expected [\"distribution\", params...], not {value!r}")


def load_schedule(path: str | Path) -> FaultSchedule:
    """Read a schedule from a .toml or .json file; ValueError `file:line: problem` for a syntax
    error and `file: section[i]: field: problem` for a bad value."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or exc}") from None
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: {exc.msg}") from None
    else:
        import tomllib

        try:
            obj = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = str(exc)
            line = getattr(exc, "lineno", None)
            if line is None and "(at line " in message:
                line = message.rsplit("(at line ", 1)[1].split(",")[0]
                message = message.rsplit(" (at line ", 1)[0]
            raise ValueError(f"{path}:{line or 1}: {message}") from None
    return FaultSchedule.from_json(obj, str(path))
