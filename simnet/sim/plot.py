"""Pictures of a simulated run (matplotlib, Agg): a sequence diagram per connection, and the
socket queues over simulated time.

`simnet run --plot DIR` attaches a RunRecorder to the run's network before anything runs:

* the segment log (Network(log_segments=True)): every segment where it was sent, plus a line
  for each one a fault lost -- the sequence diagrams are drawn from it;
* the queue observer (Network.watch_queues): the kernel calls it whenever a socket's receive
  queue, send queue or a listener's accept queue changes size, so the queue plot holds each
  change at the virtual time it happened, not samples of a poll.

Both cost nothing in a run that does not plot (the kernel tests `is None` once per change).

A sequence diagram draws time going down and one arrow per segment, from the sender's line at
the time it was sent to the receiver's at the time it arrived (sent + the path's latency; the
extra delay of jitter and reordering faults is not drawn). Sequence and acknowledgement numbers
are relative to each side's ISN, as Wireshark shows them; a segment that starts below the
highest sequence number its side has sent is a retransmission and is drawn in its own colour;
a lost segment is a dashed arrow that stops half way with a cross.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from simnet.kernel import LoggedSegment, Network, TcpSocket

MAX_ARROWS = 80  # a diagram with more segments draws the first ones and says so
DEFAULT_CONNECTIONS = 3

# Colours by kind of segment (matplotlib's tab palette, readable on white and in grey print).
COLOURS = {
    "handshake": "tab:green",
    "data": "tab:blue",
    "ack": "0.45",
    "fin": "tab:purple",
    "rst": "tab:red",
    "retransmission": "tab:orange",
}
LABELS = {
    "handshake": "SYN / SYN-ACK",
    "data": "data (relative seq, length)",
    "ack": "ACK (relative ack, window)",
    "fin": "FIN",
    "rst": "RST",
    "retransmission": "retransmission",
}


@attrs.frozen(kw_only=True)
class Arrow:
    """One segment of a connection as the diagram draws it."""

    sent_ns: int
    arrived_ns: int
    from_client: bool
    kind: str
    label: str
    lost: bool


@attrs.define
class Connection:
    """A connection seen in the segment log: its 4-tuple (client first) and its segments."""

    number: int  # 1 = the first connection whose SYN was sent
    client: str  # "ip:port"
    server: str
    segments: list[tuple[LoggedSegment, bool]] = attrs.field(factory=list)  # (segment, lost)


def _kind(flags: str, length: int) -> str:
    if "R" in flags:
        return "rst"
    if "S" in flags:
        return "handshake"
    if "F" in flags:
        return "fin"
    return "data" if length else "ack"


def connections_from_log(log: Iterable[LoggedSegment]) -> list[Connection]:
    """The connections of a segment log, in the order of their first SYN, each with its
    segments in the order sent; a "lost" line marks the segment sent just before it as lost."""
    by_pair: dict[tuple[str, str], Connection] = {}
    ordered: list[Connection] = []
    last_sent: dict[tuple[int, str, str, int], int] = {}  # (time, src, dst, seq) -> index
    for line in log:
        event = line.event
        if event.startswith("lost") or event == "partition":
            conn = by_pair.get((line.src, line.dst)) or by_pair.get((line.dst, line.src))
            index = last_sent.get((line.time_ns, line.src, line.dst, line.seq))
            if conn is not None and index is not None:
                seg, _ = conn.segments[index]
                conn.segments[index] = (seg, True)
            continue
        if event not in ("sent", "injected"):
            continue  # held, released, reordered, duplicated, dropped: drawn as sent
        conn = by_pair.get((line.src, line.dst)) or by_pair.get((line.dst, line.src))
        if conn is None:
            if line.flags != "S":
                continue  # a stray RST or ACK to nothing: not a connection
            conn = Connection(number=len(ordered) + 1, client=line.src, server=line.dst)
            by_pair[(line.src, line.dst)] = conn
            ordered.append(conn)
        last_sent[(line.time_ns, line.src, line.dst, line.seq)] = len(conn.segments)
        conn.segments.append((line, False))
    return ordered


def arrows(conn: Connection, latency_ns: Callable[[str, str], int]) -> list[Arrow]:
    """The diagram's arrows: relative numbers, kinds, retransmissions found as Wireshark does."""
    isn: dict[bool, int] = {}
    highest: dict[bool, int] = {}
    out = []
    for seg, lost in conn.segments:
        from_client = seg.src == conn.client
        kind = _kind(seg.flags, seg.length)
        if "S" in seg.flags and from_client not in isn:
            isn[from_client] = seg.seq
        base = isn.get(from_client, seg.seq)
        rel_seq = seg.seq - base
        end = rel_seq + seg.length + (1 if "S" in seg.flags or "F" in seg.flags else 0)
        if kind != "ack" and kind != "rst" and from_client in highest and rel_seq < highest[from_client]:
            kind = "retransmission"
        if end > highest.get(from_client, -1):
            highest[from_client] = end
        rel_ack = seg.ack - isn[not from_client] if (not from_client) in isn and "." in seg.flags else None
        flags = seg.flags.replace(".", "ACK").replace("S", "SYN,").replace("F", "FIN,").replace("R", "RST,")
        flags = flags.replace("P", "PSH,").rstrip(",")
        parts = [flags or "none", f"seq={rel_seq}"]
        if seg.length:
            parts.append(f"len={seg.length}")
        if rel_ack is not None:
            parts.append(f"ack={rel_ack}")
        if "R" not in seg.flags:
            parts.append(f"win={seg.window}")
        if seg.event == "injected":
            parts.append("(injected)")
        src_ip, dst_ip = seg.src.rsplit(":", 1)[0], seg.dst.rsplit(":", 1)[0]
        delay = 0 if seg.event == "injected" else latency_ns(src_ip, dst_ip)
        out.append(
            Arrow(
                sent_ns=seg.time_ns,
                arrived_ns=seg.time_ns + delay,
                from_client=from_client,
                kind=kind,
                label=" ".join(parts),
                lost=lost,
            )
        )
    return out


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, same pixels on every machine
    import matplotlib.pyplot as plt

    return plt


def _rows(shown: Sequence[Arrow]) -> tuple[list[tuple[int, int]], list[int]]:
    """Each send and each arrival gets a row of its own, in time order (at one instant, arrivals
    before sends, since a segment sent then may answer one that arrived then): (send row,
    arrival row) per arrow, and the time of each row. Rows, not a linear clock, so that a 200 ms
    retransmission timeout does not squeeze a whole exchange into one line, and segments sent
    in the same instant are drawn apart; the axis labels carry the true times."""
    events = []
    for i, arrow in enumerate(shown):
        events.append((arrow.sent_ns, 1, i, 0))
        events.append((arrow.arrived_ns, 0, i, 1))
    events.sort()
    placed = [[0, 0] for _ in shown]
    times = []
    for row, (time_ns, _order, index, which) in enumerate(events):
        placed[index][which] = row
        times.append(time_ns)
    return [(a, b) for a, b in placed], times


def draw_sequence(conn: Connection, items: Sequence[Arrow], path: str, *, title: str = "") -> None:
    """A PNG of one connection: client on the left, server on the right, time going down."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    shown = list(items[:MAX_ARROWS])
    rows, times = _rows(shown)
    n_rows = max(len(times), 1)
    fig_height = min(3.5 + 0.2 * n_rows, 40)
    fig, ax = plt.subplots(figsize=(10, fig_height), dpi=100)
    start = times[0] if times else 0
    for x in (0.0, 1.0):
        ax.axvline(x, color="0.2", linewidth=1.5)
    for arrow, (r0, r1) in zip(shown, rows, strict=True):
        x0, x1 = (0.0, 1.0) if arrow.from_client else (1.0, 0.0)
        colour = COLOURS[arrow.kind]
        if arrow.lost:
            xm, rm = (x0 + x1) / 2, (r0 + r1) / 2
            ax.plot([x0, xm], [r0, rm], color=colour, linestyle="--", linewidth=1.2)
            ax.plot([xm], [rm], marker="x", color="tab:red", markersize=9, markeredgewidth=2)
        else:
            ax.annotate(
                "", xy=(x1, r1), xytext=(x0, r0),
                arrowprops={"arrowstyle": "-|>", "color": colour, "linewidth": 1.2, "shrinkA": 0, "shrinkB": 0},
            )  # fmt: skip
        # The label sits over the sender's end of the arrow, on the sender's side.
        lx = 0.03 if arrow.from_client else 0.97
        ax.text(lx, r0 - 0.15, arrow.label + ("  LOST" if arrow.lost else ""), fontsize=7.5, color=colour,
                ha="left" if arrow.from_client else "right", va="bottom")  # fmt: skip
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(n_rows - 0.5, -1.0)  # time goes down
    ticks = [row for row, t in enumerate(times) if row == 0 or t != times[row - 1]]
    ax.set_yticks(ticks, [f"{(times[row] - start) / 1e6:.3f}" for row in ticks], fontsize=7)
    ax.set_xticks([0.0, 1.0], [f"client\n{conn.client}", f"server\n{conn.server}"])
    ax.xaxis.tick_top()
    ax.set_ylabel(f"simulated time (ms since t0 = {start / 1e9:.6f} s; a row per send and per arrival)")
    ax.grid(axis="y", color="0.93")
    handles = [Line2D([], [], color=COLOURS[k], linewidth=2, label=LABELS[k]) for k in COLOURS]
    lost = Line2D([], [], color="0.3", linestyle="--", marker="x", markeredgecolor="tab:red", label="lost (fault)")
    handles.append(lost)
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    more = f" (first {MAX_ARROWS} of {len(items)} segments)" if len(items) > MAX_ARROWS else f" ({len(items)} segments)"
    ax.set_title((title or f"connection {conn.number}") + more, pad=12)
    fig.tight_layout(rect=(0, 0.9 / fig_height, 1, 1))
    fig.savefig(path)
    plt.close(fig)


@attrs.define
class RunRecorder:
    """Collects what the pictures need while a run runs; attach() it to the Network first."""

    net: Network | None = None
    # Per socket (4-tuple "local>remote"): (time_ns, recv-q bytes, send-q bytes) at each change.
    queues: dict[str, list[tuple[int, int, int]]] = attrs.field(factory=dict)
    # Per listener ("ip:port"): (time_ns, connections in the accept queue) at each change.
    accept_queues: dict[str, list[tuple[int, int]]] = attrs.field(factory=dict)

    def attach(self, net: Network) -> None:
        self.net = net
        net.log_segments = True
        net.watch_queues(self._changed)

    def _changed(self, sock: TcpSocket) -> None:
        now = sock.net.now_ns
        local, remote = sock.local, sock.remote
        if local is None:
            return
        if remote is None:
            if sock.state == "LISTEN":
                self.accept_queues.setdefault(f"{local[0]}:{local[1]}", []).append((now, len(sock.accept_queue)))
            return
        key = f"{local[0]}:{local[1]}>{remote[0]}:{remote[1]}"
        self.queues.setdefault(key, []).append((now, len(sock.rcvq), len(sock.sndq)))

    def connections(self) -> list[Connection]:
        assert self.net is not None, "attach() the recorder to a network first"
        return connections_from_log(self.net.segment_log)

    def write_pngs(self, directory: str, *, conns: Sequence[int] | None = None) -> list[str]:
        """Sequence diagrams of the chosen connections (numbers from 1; default the first 3)
        and the queue plot; returns the paths written."""
        assert self.net is not None, "attach() the recorder to a network first"
        net = self.net
        found = self.connections()
        wanted = list(conns) if conns else list(range(1, min(DEFAULT_CONNECTIONS, len(found)) + 1))
        chosen = [found[n - 1] for n in wanted if 1 <= n <= len(found)]
        written = []

        def latency(src: str, dst: str) -> int:
            return net.path(src, dst).latency_ns

        for conn in chosen:
            path = os.path.join(directory, f"conn-{conn.number}.png")
            draw_sequence(conn, arrows(conn, latency), path,
                          title=f"connection {conn.number}: {conn.client} -> {conn.server}")  # fmt: skip
            written.append(path)
        path = os.path.join(directory, "queues.png")
        self.draw_queues(chosen, path)
        written.append(path)
        return written

    def draw_queues(self, chosen: Sequence[Connection], path: str) -> None:
        """Receive and send queue bytes of both ends of each chosen connection, and every
        listener's accept queue, over simulated time (steps: each change as it happened)."""
        plt = _pyplot()
        fig, (ax_rcv, ax_snd, ax_acc) = plt.subplots(3, 1, figsize=(10, 10), dpi=100)
        ax_snd.sharex(ax_rcv)
        for conn in chosen:
            for local, remote, who in ((conn.client, conn.server, "client"), (conn.server, conn.client, "server")):
                samples = self.queues.get(f"{local}>{remote}")
                if not samples:
                    continue
                times = [t / 1e6 for t, _, _ in samples]
                label = f"conn {conn.number} {who} {local}"
                (line,) = ax_rcv.step(times, [r for _, r, _ in samples], where="post", label=label)
                ax_snd.step(times, [s for _, _, s in samples], where="post", label=label, color=line.get_color())
        for listener, accepts in self.accept_queues.items():
            ax_acc.step([t / 1e6 for t, _ in accepts], [n for _, n in accepts], where="post",
                        label=f"listener {listener}")  # fmt: skip
        ax_rcv.set_ylabel("receive queue (bytes)")
        ax_snd.set_ylabel("send queue (bytes)")
        ax_acc.set_ylabel("accept queue\n(connections)")
        ax_snd.set_xlabel("simulated time (ms), the chosen connections' lifetimes")
        ax_acc.set_xlabel("simulated time (ms), the whole run")
        ax_acc.yaxis.get_major_locator().set_params(integer=True)
        ax_rcv.set_title("socket queues over simulated time, at each change (Recv-Q / Send-Q as ss shows them)")
        for ax in (ax_rcv, ax_snd, ax_acc):
            ax.grid(color="0.9")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
