"""Comparing what a simulated server sent each client with what the recording holds: equal, a
prefix (the connection was cut), or different from a byte on; the report of a re-simulation."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from simnet.sim.resim.extract import EXCERPT, NS, RecordedClient

EQUAL = "equal"
RESET_PREFIX = "reset (prefix matches)"
DIFFERS = "DIFFERS"


@attrs.frozen(kw_only=True)
class ConnectionResult:
    """One recorded connection against its re-simulation."""

    index: int
    peer: tuple[str, int]  # as recorded
    ending: str  # the recorded client's ending
    recorded_bytes: int
    simulated_bytes: int  # what the simulated server sent on this connection
    received_bytes: int  # what the simulated client read
    status: str  # EQUAL, RESET_PREFIX or DIFFERS
    first_difference: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != DIFFERS

    def format(self) -> str:
        host, port = self.peer
        head = f"#{self.index} {host}:{port} ({self.ending})"
        if self.status == EQUAL:
            return f"{head}: {self.recorded_bytes} bytes, equal"
        if self.status == RESET_PREFIX:
            return (
                f"{head}: reset (prefix matches): {self.recorded_bytes} bytes recorded, "
                f"{self.simulated_bytes} simulated"
            )
        return f"{head}: DIFFERS: {self.detail}"


@attrs.frozen(kw_only=True)
class ResimReport:
    path: str
    seed: int
    latency_ns: int
    rcvbuf: int | None
    sndbuf: int | None
    timing: str
    connections: tuple[ConnectionResult, ...]
    accept_errors: dict[str, int]  # connections reset before the recorded server accepted them
    finished: bool  # the simulated server exited
    server_exit: str | None
    sim_time_ns: int
    syscalls: int
    trace_out: str | None = None

    @property
    def ok(self) -> bool:
        """Every connection's response stream equals the recorded one (or, for a connection that
        was reset, one is a prefix of the other)."""
        return all(c.ok for c in self.connections)

    def lines(self) -> list[str]:
        perturb = f"seed {self.seed}, latency {self.latency_ns / 1e6:g}ms"
        if self.rcvbuf is not None:
            perturb += f", rcvbuf {self.rcvbuf}"
        if self.sndbuf is not None:
            perturb += f", sndbuf {self.sndbuf}"
        if self.timing != "recorded":
            perturb += f", timing {self.timing}"
        out = [c.format() for c in self.connections]
        out.extend(total_lines(self.connections, perturb, self.accept_errors))
        if not self.finished:
            seconds = self.sim_time_ns / NS
            out.append(f"note: the simulated server did not exit (after {seconds:.3f} s of virtual time)")
        if self.trace_out is not None:
            out.append(f"simulated trace: {self.trace_out} ({self.syscalls} syscalls)")
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


def compare(
    recorded: RecordedClient, simulated: bytes, received: bytes, sim_reset: bool, note: str = ""
) -> ConnectionResult:
    """Judge one connection: the recorded response stream against the simulated server's.

    Equal streams pass. A connection the recorded client reset (or closed while the response
    was still coming) passes when one stream is a prefix of the other: where the cut falls
    depends on timing, which is exactly what a re-simulation changes. Anything else fails --
    including a cut stream when only the simulation saw a reset -- and so does a simulated
    client that read other bytes than its server sent (that would be the kernel model's bug).
    """
    rec = recorded.response
    first = _first_difference(rec, simulated)
    status, detail = EQUAL, ""
    if first is None:
        if recorded.reset:
            status = RESET_PREFIX
        elif not sim_reset and received != simulated:
            status = DIFFERS
            detail = (
                f"the simulated client read {len(received)} bytes but its server sent {len(simulated)} "
                f"(first difference at byte {_first_difference(simulated, received)})"
            )
    elif first in (len(rec), len(simulated)) and (recorded.reset or sim_reset):
        if recorded.reset:
            status = RESET_PREFIX
        else:
            status = DIFFERS
            detail = f"reset in the simulation only ({len(rec)} bytes recorded, {len(simulated)} simulated)"
    else:
        status = DIFFERS
        detail = (
            f"first difference at byte {first} ({len(rec)} bytes recorded, {len(simulated)} simulated): "
            f"recorded {_excerpt(rec, first)}, simulated {_excerpt(simulated, first)}"
        )
    if note and status == DIFFERS:
        detail += f"; {note}"
    return ConnectionResult(
        index=recorded.index,
        peer=recorded.peer,
        ending=recorded.ending,
        recorded_bytes=len(rec),
        simulated_bytes=len(simulated),
        received_bytes=len(received),
        status=status,
        first_difference=first,
        detail=detail,
    )


def _first_difference(a: bytes, b: bytes) -> int | None:
    """The first offset where a and b differ (len of the shorter if one is a prefix); None if equal."""
    if a == b:
        return None
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo], a[:hi] != b[:hi]: bisect on slices, C-speed comparisons
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _excerpt(data: bytes, at: int) -> str:
    if at >= len(data):
        return "(ends here)"
    start = max(0, at - EXCERPT)
    before, after = data[start:at], data[at : at + EXCERPT]
    return f"{'...' if start else ''}{before!r} | {after!r}{'...' if at + EXCERPT < len(data) else ''}"


# ------------------------------------------------------------------------------------------------
# Simulated clients
# ------------------------------------------------------------------------------------------------


def compare_clients(clients: Iterable[Any], accepted: Iterable[Any], server: str) -> tuple[ConnectionResult, ...]:
    """Match each replayed client (ReplayingClient) with the simulated server's connection from
    its address -- in order of accept, since an address comes back for a later connection only
    after the earlier one is gone -- and compare what the server sent with what was recorded.
    `accepted`: the server's connections (`peer`, `response`, `reset_ns`); `server` names it in
    the note of a client it never accepted ("server", "program")."""
    by_addr: dict[tuple[str, int], collections.deque[Any]] = {}
    for conn in accepted:
        by_addr.setdefault(tuple(conn.peer), collections.deque()).append(conn)
    results = []
    for client in clients:
        queue = by_addr.get(client.address) if client.address is not None else None
        conn = queue.popleft() if queue else None
        note = f"the simulated client saw {client.error}" if client.error else ""
        if conn is None:
            note = f"the simulated {server} never accepted it" + (f" ({note})" if note else "")
            results.append(compare(client.recorded, b"", bytes(client.received), False, note))
        else:
            simulated, sim_reset = bytes(conn.response), conn.reset_ns is not None
            results.append(compare(client.recorded, simulated, bytes(client.received), sim_reset, note))
    return tuple(results)


def total_lines(
    connections: Sequence[ConnectionResult], description: str, accept_errors: Mapping[str, int]
) -> list[str]:
    """A report's totals: the counts of each verdict, the bytes, how it was run, and the
    connections left out because the recorded accept() failed on them."""
    counts = collections.Counter(c.status for c in connections)
    rec = sum(c.recorded_bytes for c in connections)
    sim = sum(c.simulated_bytes for c in connections)
    out = [
        f"total: {len(connections)} connections: {counts[EQUAL]} equal, "
        f"{counts[RESET_PREFIX]} reset (prefix matches), {counts[DIFFERS]} differ; "
        f"{rec} response bytes recorded, {sim} simulated ({description})"
    ]
    if accept_errors:
        errors = ", ".join(f"{name} {n}" for name, n in accept_errors.items())
        out.append(f"note: not re-simulated: connections the recorded accept() failed on ({errors})")
    return out
