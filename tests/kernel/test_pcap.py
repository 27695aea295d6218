"""The pcap capture (Network.capture, simnet/kernel/pcap.py): headers read back with struct, and
the whole file checked by tshark -- checksums, conversations, follow-stream bytes, and the
retransmissions of lost segments named as such by Wireshark's own analysis."""

from __future__ import annotations

import io
import random
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simnet.faults import FaultSchedule, LinkFaults
from simnet.kernel import Network, Segment
from simnet.kernel.pcap import LINKTYPE_RAW, PCAP_MAGIC_NS, PcapWriter, _payload_sum, window_shift_for
from simnet.kernel.segment import ACK, PSH, SYN

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")


# -- reading a capture back -------------------------------------------------------------------------


def packets(raw: bytes) -> Iterator[tuple[int, bytes]]:
    """(time_ns, IPv4 packet) for each record of a nanosecond pcap file."""
    magic, major, minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from("<IHHiIII", raw)
    assert (magic, major, minor, linktype) == (PCAP_MAGIC_NS, 2, 4, LINKTYPE_RAW)
    offset = 24
    while offset < len(raw):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", raw, offset)
        assert incl == orig
        offset += 16
        yield sec * 1_000_000_000 + nsec, raw[offset : offset + incl]
        offset += incl


def ones_complement_sum(data: bytes) -> int:
    """RFC 1071, the slow and obvious way: the reference the writer's shortcut is checked against."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


def check_packet(packet: bytes) -> dict[str, int | bytes]:
    """The fields of one packet, after asserting both checksums verify."""
    assert packet[0] == 0x45 and packet[9] == 6
    assert ones_complement_sum(packet[:20]) == 0xFFFF, "IP header checksum"
    total_len = struct.unpack_from("!H", packet, 2)[0]
    assert total_len == len(packet)
    tcp = packet[20:]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    assert ones_complement_sum(pseudo + tcp) == 0xFFFF, "TCP checksum"
    sport, dport, seq, ack, offset, flags, window = struct.unpack_from("!HHIIBBH", tcp)
    header = (offset >> 4) * 4
    return {"sport": sport, "dport": dport, "seq": seq, "ack": ack, "flags": flags, "window": window,
            "options": tcp[20:header], "data": tcp[header:]}  # fmt: skip


# -- the writer on its own --------------------------------------------------------------------------


def test_pcap_writes_sequence_numbers_modulo_2_32_and_verifiable_checksums() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, window_shift=7)
    payload = bytes(random.Random(1).getrandbits(8) for _ in range(1001))  # odd length: padded sum
    client, server = ("10.0.0.2", 40000), ("10.0.0.1", 80)
    writer.write(1_500_000_001, Segment(client, server, ACK | PSH, 2**32 + 5, 2**33 + 7, 98304, payload))
    writer.write(2_000_000_000, Segment(("10.0.0.2", 40000), ("10.0.0.1", 80), ACK, 0xFFFFFFFF, 1, 1, b""))
    writer.close()
    (t1, p1), (t2, p2) = packets(out.getvalue())
    assert (t1, t2) == (1_500_000_001, 2_000_000_000)
    first, second = check_packet(p1), check_packet(p2)
    assert (first["seq"], first["ack"], first["data"]) == (5, 7, payload)
    assert first["window"] << 7 == 98304  # scaled by the shift every SYN announced
    assert second["seq"] == 0xFFFFFFFF
    assert second["window"] == 1  # rounded up: a window of one byte does not read as zero


def _reference_payload_sum(data: bytes) -> int:
    """The 16-bit big-endian words summed one by one (odd length: a zero byte after), mod 0xFFFF."""
    if len(data) % 2:
        data += b"\0"
    return sum(word for (word,) in struct.iter_unpack("!H", data)) % 0xFFFF


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.binary(min_size=300, max_size=70_000)))
def test_payload_sum_folds_to_the_word_by_word_sum(payload: bytes) -> None:
    # Odd and even lengths, both sides of the fold threshold, up to loopback's 64 KiB segments.
    assert _payload_sum(payload, len(payload)) == _reference_payload_sum(payload)


@pytest.mark.parametrize("length", [0, 1, 2, 149, 150, 151, 1447, 1448, 1449, 65495, 65536])
def test_payload_sum_at_the_edges_of_its_folds(length: int) -> None:
    for fill in (b"\xff", b"\x00", b"\x01"):  # all-ones words: sums landing on 0xFFFF itself
        payload = (fill * length)[:length]
        assert _payload_sum(payload, length) == _reference_payload_sum(payload)
    noise = random.Random(length).randbytes(length)
    assert _payload_sum(noise, length) == _reference_payload_sum(noise)


def test_syn_carries_the_paths_mss_and_the_window_scale_linux_would_choose() -> None:
    out = io.BytesIO()
    net = Network(seed=3, latency=0.001, pcap=out)
    server, client = net.host("10.0.0.1"), net.host("10.0.0.2")
    ls = server.socket()
    ls.bind(("0.0.0.0", 8080))
    ls.listen(4)
    c = client.socket()
    c.setblocking(False)
    c.connect_ex(("10.0.0.1", 8080))
    local = server.socket()
    local.setblocking(False)
    local.connect_ex(("127.0.0.1", 8080))  # loopback: MTU 65536
    net.run(until=0.01)
    net.stop_capture()
    syns = [check_packet(p) for _, p in packets(out.getvalue())]
    syns = [p for p in syns if p["flags"] & SYN]
    shift = window_shift_for(max(net.sysctl.tcp_rmem[1], 2 * net.sysctl.rmem_max) * 3 // 4)
    assert shift == 7  # the default sysctls: what `ss -i` shows as wscale:7,7 on most machines
    mss_and_scale = [struct.unpack("!BBHBBBB", p["options"]) for p in syns]
    assert sorted(mss_and_scale) == [
        (2, 4, 1460, 1, 3, 3, 7),  # SYN and SYN-ACK on Ethernet
        (2, 4, 1460, 1, 3, 3, 7),
        (2, 4, 65495, 1, 3, 3, 7),  # SYN and SYN-ACK on loopback
        (2, 4, 65495, 1, 3, 3, 7),
    ]
    assert syns[0]["window"] == 64240  # unscaled in a SYN, as Linux's on Ethernet


def test_lost_segments_are_captured_where_they_were_sent() -> None:
    out = io.BytesIO()
    net = Network(seed=5, latency=0.001, log_segments=True, faults=FaultSchedule(links=(LinkFaults(loss=0.2),)))
    net.capture(out)
    _exchange(net, 3, 20_000)
    net.stop_capture()
    captured = list(packets(out.getvalue()))
    assert net.counters["lost"] > 0
    assert len(captured) == net.counters["segments"]  # every segment sent, lost or not
    lost = [(line.time_ns, line.seq % 2**32) for line in net.segment_log if line.event == "lost"]
    seen = {(t, check_packet(p)["seq"]) for t, p in captured}
    assert set(lost) <= seen


def test_capture_costs_one_test_when_off_and_refuses_a_second_capture(tmp_path: Path) -> None:
    net = Network()
    assert net.tap is None and net.pcap is None
    writer = net.capture(tmp_path / "a.pcap")
    with pytest.raises(RuntimeError, match="already capturing"):
        net.capture(tmp_path / "b.pcap")
    net.stop_capture()
    assert net.tap is None and writer.file.closed
    assert (tmp_path / "a.pcap").read_bytes()[:4] == struct.pack("<I", PCAP_MAGIC_NS)


# -- a scenario with known bytes --------------------------------------------------------------------


def _exchange(net: Network, connections: int, size: int) -> list[tuple[bytes, bytes]]:
    """`connections` clients each send `size` random bytes and get `size` others back; returns
    (client's bytes, server's bytes) per connection, in connection order."""
    rng = random.Random(11)
    server = net.host("10.0.0.1")
    ls = server.socket()
    ls.bind(("10.0.0.1", 9000))
    ls.listen(16)
    ls.setblocking(False)
    clients = []
    for i in range(connections):
        c = net.host(f"10.0.1.{i + 1}").socket()
        c.setblocking(False)
        c.connect_ex(("10.0.0.1", 9000))
        clients.append(c)
        net.run(until=net.now + 0.01)
    accepted = []
    while len(accepted) < connections:
        net.run(until=net.now + 0.5)
        try:
            while True:
                accepted.append(ls.accept()[0])
        except BlockingIOError:
            pass
    for s in accepted:
        s.setblocking(False)
    by_port = {s.getpeername()[1]: s for s in accepted}
    pairs = [(c, by_port[c.getsockname()[1]]) for c in clients]
    payloads = [(rng.randbytes(size), rng.randbytes(size)) for _ in pairs]
    pending = [[a, b] for a, b in payloads]
    received = [[b"", b""] for _ in pairs]
    deadline = net.now + 600
    while any(len(r[0]) < size or len(r[1]) < size for r in received) and net.now < deadline:
        for i, (c, s) in enumerate(pairs):
            for j, (sock, peer_index) in enumerate(((c, 1), (s, 0))):
                if pending[i][j]:
                    try:
                        n = sock.send(pending[i][j])
                        pending[i][j] = pending[i][j][n:]
                    except BlockingIOError:
                        pass
                try:
                    received[i][peer_index] += sock.recv(1 << 20)
                except BlockingIOError:
                    pass
        net.run(until=net.now + 0.05)
    for c, s in pairs:
        c.close()
        s.close()
    net.run(until=net.now + 300)
    assert [(r[0], r[1]) for r in received] == payloads  # the server got a, the client got b
    return payloads


# -- tshark -------------------------------------------------------------------------------------------


def tshark(path: Path, *args: str) -> str:
    assert TSHARK is not None
    result = subprocess.run(
        # The HTTP dissector is off: the echo app's payload on port 80 is not HTTP, and what is
        # checked here is the capture's IP and TCP, not the apps' bytes (follow gives those back).
        [TSHARK, "-n", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE",
         "--disable-protocol", "http", *args],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


# Warnings Wireshark's TCP analysis raises about flow control the model really does: a sender
# filling the receiver's window, and a receiver advertising zero. Anything else is a defect.
FLOW_CONTROL_WARNINGS = {"TCP window specified by the receiver is now completely full", "TCP Zero Window segment"}


def check_file_is_clean(path: Path, packet_count: int) -> None:
    statuses = tshark(path, "-T", "fields", "-e", "ip.checksum.status", "-e", "tcp.checksum.status").split("\n")
    statuses = [line for line in statuses if line]
    assert len(statuses) == packet_count
    assert set(statuses) == {"1\t1"}, "every IP and TCP checksum verifies (1 = good)"
    bad = tshark(path, "-Y", "_ws.malformed || _ws.expert.severity >= error", "-T", "fields", "-e", "frame.number")
    assert bad.strip() == "", f"malformed or erroneous frames: {bad.split()[:10]}"
    warnings = tshark(path, "-Y", "_ws.expert.severity == warning", "-T", "fields", "-e", "_ws.expert.message")
    messages = {m for line in warnings.splitlines() for m in line.split(",") if m}
    assert messages <= FLOW_CONTROL_WARNINGS | {"Connection reset (RST)"}, messages


def conversations(path: Path) -> list[str]:
    out = tshark(path, "-q", "-z", "conv,tcp")
    return [line for line in out.splitlines() if "<->" in line]


def follow(path: Path, stream: int) -> tuple[bytes, bytes]:
    """`-z follow,tcp,raw,N`: the bytes each way, client (the first sender) first."""
    out = tshark(path, "-q", "-z", f"follow,tcp,raw,{stream}")
    first, second = b"", b""
    for line in out.splitlines():
        if not line.strip() or line.startswith(("=", "Follow:", "Filter:", "Node ")):
            continue
        if line.startswith("\t"):
            second += bytes.fromhex(line.strip())
        else:
            first += bytes.fromhex(line.strip())
    return first, second


@needs_tshark
def test_tshark_finds_clean_packets_one_conversation_each_and_the_exact_bytes_under_loss(tmp_path: Path) -> None:
    path = tmp_path / "loss.pcap"
    net = Network(seed=9, latency=0.002, log_segments=True, faults=FaultSchedule(links=(LinkFaults(loss=0.05),)))
    net.capture(path)
    payloads = _exchange(net, 3, 30_000)
    net.stop_capture()
    assert net.counters["lost"] > 0 and net.counters["retransmits"] + net.counters["fast_retransmits"] > 0
    check_file_is_clean(path, net.counters["segments"])
    assert len(conversations(path)) == 3
    streams = sorted(follow(path, n) for n in range(3))
    assert streams == sorted(payloads)
    # Each lost data segment comes back later, and Wireshark's analysis calls that frame a
    # retransmission (plain or fast): the capture point is before the loss, as on a sender.
    lost = {
        (line.src, line.seq % 2**32)
        for line in net.segment_log
        if line.event == "lost" and line.length and not line.flags.startswith("S")
    }
    assert lost
    retrans = tshark(
        path, "-Y", "tcp.analysis.retransmission || tcp.analysis.fast_retransmission",
        "-T", "fields", "-e", "ip.src", "-e", "tcp.srcport", "-e", "tcp.seq_raw",
    )  # fmt: skip
    named = {(f"{ip}:{port}", int(seq)) for ip, port, seq in (line.split("\t") for line in retrans.splitlines())}
    assert lost <= named, sorted(lost - named)[:5]


@needs_tshark
def test_simnet_run_pcap_opens_in_tshark_with_a_conversation_per_connection(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    result = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "run", "--app", "echo", "--clients", "8", "--requests", "5",
         "--request-size", "3000", "--rcvbuf", "4096", "--loss", "0.03", "--seed", "4", "--pcap", str(path)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    segments = int(next(line.split()[1] for line in result.stdout.splitlines() if line.startswith("segments")))
    check_file_is_clean(path, segments)
    assert len(conversations(path)) == 8
    for stream in range(8):
        sent, echoed = follow(path, stream)
        assert sent == echoed and len(sent) == 5 * 3000  # the echo app sent back what it read


def test_simnet_run_refuses_an_unwritable_pcap_path_before_running(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "run.pcap"
    result = subprocess.run(
        [sys.executable, "-m", "simnet.cli", "run", "--clients", "2", "--pcap", str(missing)],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"simnet run: --pcap {missing}: No such file or directory\n"
    assert result.stdout == ""



