"""Pictures of a run (simnet/sim/plot.py): the queue observer the kernel calls at each change, the
sequence diagrams' reading of the segment log, and `simnet run --plot DIR` end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from simnet.faults import FaultSchedule, LinkFaults
from simnet.kernel import Network, TcpSocket
from simnet.sim.plot import RunRecorder, arrows, connections_from_log

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_kernel_reports_each_queue_change_to_the_watcher() -> None:
    net = Network(seed=1, latency=0.001)
    seen: list[tuple[str, int, int, int]] = []

    def watch(sock: TcpSocket) -> None:
        seen.append((sock.state, len(sock.rcvq), len(sock.sndq), len(sock.accept_queue)))

    net.watch_queues(watch)
    server, client = net.host("10.0.0.1"), net.host("10.0.0.2")
    ls = server.socket()
    ls.bind(("10.0.0.1", 80))
    ls.listen(4)
    ls.setblocking(False)
    c = client.socket()
    c.setblocking(False)
    c.connect_ex(("10.0.0.1", 80))
    net.run(until=0.01)
    assert seen == [("LISTEN", 0, 0, 1)]  # the handshake completed: one in the accept queue
    s, _ = ls.accept()
    assert seen[-1] == ("LISTEN", 0, 0, 0)
    c.send(b"x" * 3000)
    assert seen[-1] == ("ESTAB", 0, 3000, 0)  # queued before anything is sent
    net.run(until=0.02)
    assert ("ESTAB", 0, 0, 0) in seen  # ACKed: the client's send queue emptied
    assert ("ESTAB", 3000, 0, 0) in seen  # and the server's receive queue filled, in two segments
    s.recv(1000)
    assert seen[-1] == ("ESTAB", 2000, 0, 0)
    net.watch_queues(None)
    s.recv(5000)
    assert seen[-1] == ("ESTAB", 2000, 0, 0)  # off: nothing more


def test_sequence_diagram_marks_lost_segments_and_their_retransmissions() -> None:
    net = Network(seed=2, latency=0.001, faults=FaultSchedule(links=(LinkFaults(loss=0.3),)))
    recorder = RunRecorder()
    recorder.attach(net)
    server, client = net.host("10.0.0.1"), net.host("10.0.0.2")
    ls = server.socket()
    ls.bind(("10.0.0.1", 80))
    ls.listen(4)
    c = client.socket()
    c.setblocking(False)
    c.connect_ex(("10.0.0.1", 80))
    net.run(until=10)
    s, _ = ls.accept()
    s.setblocking(False)
    c.send(b"y" * 20_000)
    net.run(until=60)
    conns = recorder.connections()
    assert len(conns) == 1 and conns[0].client.startswith("10.0.0.2:")
    drawn = arrows(conns[0], lambda src, dst: 1_000_000)
    assert drawn[0].label.startswith("SYN seq=0 ")
    lost = [a for a in drawn if a.lost]
    assert lost and net.counters["lost"] == len(lost)
    assert any(a.kind == "retransmission" for a in drawn)
    assert all(a.arrived_ns == a.sent_ns + 1_000_000 for a in drawn)


def test_connections_are_numbered_in_the_order_of_their_syns() -> None:
    net = Network(seed=3, log_segments=True, latency=0.001)
    server = net.host("10.0.0.1")
    ls = server.socket()
    ls.bind(("10.0.0.1", 80))
    ls.listen(8)
    ports = []
    for i in range(3):
        c = net.host(f"10.0.1.{i + 1}").socket()
        c.setblocking(False)
        c.connect_ex(("10.0.0.1", 80))
        ports.append(f"10.0.1.{i + 1}:{c.getsockname()[1]}")
        net.run(until=net.now + 0.01)
    assert [conn.client for conn in connections_from_log(net.segment_log)] == ports


def simnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simnet.cli", *args], check=False, capture_output=True, text=True, timeout=120
    )


def test_simnet_run_plot_writes_a_diagram_per_chosen_connection_and_the_queues(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is simnet's optional 'plot' extra")
    out = tmp_path / "plots"
    result = simnet("run", "--clients", "6", "--requests", "3", "--rcvbuf", "4096", "--loss", "0.05",
                    "--plot", str(out), "--plot-conn", "2", "--plot-conn", "5")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["conn-2.png", "conn-5.png", "queues.png"]
    for png in out.iterdir():
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 10_000


def test_simnet_run_refuses_an_unwritable_plot_directory_before_running(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = simnet("run", "--clients", "2", "--plot", str(blocker / "plots"))
    assert result.returncode == 2
    assert result.stderr == f"simnet run: --plot {blocker / 'plots'}: Not a directory\n"
    assert result.stdout == ""
