"""TCP segments as they cross a simulated link, and the segment log."""

from __future__ import annotations

from typing import NamedTuple

# TCP header flag bits (RFC 793 / include/net/tcp.h TCPHDR_*)
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10

_FLAG_NAMES = ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))

Address = tuple[str, int]


def format_flags(flags: int) -> str:
    """tcpdump's spelling: S, S., ., P., F., R, R. ..."""
    return "".join(name for bit, name in _FLAG_NAMES if flags & bit) or "none"


class Segment:
    """One TCP segment. Slotted and hand-written because it is created on every send (hot path)."""

    __slots__ = ("src", "dst", "flags", "seq", "ack", "window", "data")

    def __init__(
        self, src: Address, dst: Address, flags: int, seq: int, ack: int, window: int, data: bytes = b""
    ) -> None:
        self.src = src
        self.dst = dst
        self.flags = flags
        self.seq = seq
        self.ack = ack
        self.window = window
        self.data = data

    def __repr__(self) -> str:
        return (
            f"Segment({self.src[0]}:{self.src[1]} > {self.dst[0]}:{self.dst[1]} "
            f"[{format_flags(self.flags)}] seq={self.seq} ack={self.ack} win={self.window} len={len(self.data)})"
        )


class LoggedSegment(NamedTuple):
    """A line of the segment log: what tcpdump would show, with virtual time in ns."""

    time_ns: int
    src: str
    dst: str
    flags: str
    seq: int
    ack: int
    window: int
    length: int
    event: str  # "sent", "dropped" (e.g. a SYN to a full accept queue), "lost" (a fault)

    def __str__(self) -> str:
        return (
            f"{self.time_ns / 1e9:12.6f} {self.src:>21} > {self.dst:<21} [{self.flags:<3}] "
            f"seq {self.seq} ack {self.ack} win {self.window} len {self.length}"
            + ("" if self.event == "sent" else f"  ({self.event})")
        )
