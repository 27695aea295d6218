"""Segments as pcap: what a capture on the simulated wire would hold, for Wireshark and tshark.

A PcapWriter is the capture hook of a Network (`Network.capture`, `Network(pcap=...)`): the
network hands it each segment where Network.transmit puts it on the wire -- before any fault
decides its fate, as on a sender's interface, so a lost segment is in the file and its
retransmission follows it. The file is classic pcap with nanosecond timestamps (magic
0xa1b23c4d) and LINKTYPE_RAW: each record is an IPv4 packet, no link-layer header.

What the headers say, and how each field follows the model:

* Timestamps are the network's virtual clock (Network.now_ns), from 0 at the network's birth.
* IPv4: version 4, IHL 5, DF set (Linux sets it on TCP with path-MTU discovery), TTL 64,
  an identification counter per capture, a correct header checksum.
* TCP: the ports, the model's own sequence and acknowledgement numbers modulo 2**32 (its ISNs
  are 32-bit, and its sequence numbers do not wrap, so they can pass 2**32 on a long
  connection), the flags, a correct checksum over the pseudo-header, and the payload.
* SYN and SYN-ACK carry the options the model negotiates implicitly: MSS (the path's MTU less
  40, as Linux's SYN says: 1460 on Ethernet, 65495 on loopback) and window scale.
* Window: the model does no window scaling on its own, yet advertises up to 3/4 of SO_RCVBUF,
  which can be far above the 16-bit field's 65535. So the capture does what Linux does: every
  SYN and SYN-ACK says "window scale `window_shift`", the shift Linux's tcp_select_initial_window
  would choose for the largest window the model can advertise (7 with the default sysctls, as
  on most Linux machines), and every later segment's field is the model's window divided by
  2**shift, rounded up, so that a non-zero window never reads as zero (Linux's
  __tcp_select_window rounds up for the same reason). Wireshark shows the product as "calculated
  window size", within 2**shift - 1 bytes of the model's. Windows in SYNs are never scaled.
* Not written: timestamps, SACK (the model has neither), link-layer headers.

Writing is streaming: records go into a 1 MiB buffered file, so a run pays one write(2) per
megabyte; close() (or Network.stop_capture) flushes the rest.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import IO, Self

from simnet.kernel.segment import SYN, Segment

PCAP_MAGIC_NS = 0xA1B23C4D  # classic pcap, nanosecond timestamps
LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link-layer header
SNAPLEN = 262144
_BUFFER = 1 << 20

_FILE_HEADER = struct.Struct("<IHHiIII")
# The pcap record header (little-endian, as the file header says) and the IPv4 and TCP headers
# (network order) of one packet, packed in one call per segment.
_RECORD = struct.Struct("<IIII")
_IP_TCP = struct.Struct("!BBHHHBBH4s4sHHIIBBHHH")
# SYN options: MSS (kind 2, length 4), NOP, window scale (kind 3, length 3).
_SYN_OPTIONS = struct.Struct("!BBHBBBB")

MAX_WSCALE = 14  # RFC 7323


def window_shift_for(max_window: int) -> int:
    """The smallest window scale that lets a 16-bit field express `max_window` bytes."""
    shift = 0
    while (0xFFFF << shift) < max_window and shift < MAX_WSCALE:
        shift += 1
    return shift


def _ones_complement_fold(total: int) -> int:
    """The one's-complement checksum of words that sum to `total`: a 16-bit one's-complement
    sum is the plain sum mod 0xFFFF (2**16 == 1 mod 0xFFFF), reading 0 as 0xFFFF -- the sum of
    words that are not all zero is never 0x0000 in one's complement. The checksum is its
    complement."""
    folded = total % 0xFFFF or 0xFFFF
    return 0xFFFF - folded


# Where _payload_sum folds a payload of each (even) length: (shift, mask) pairs, worked out once;
# the masks are shared between lengths (few shifts occur: a 64 KiB payload folds at 7).
_FOLDS: dict[int, tuple[tuple[int, int], ...]] = {}
_MASKS: dict[int, int] = {}
# A fold shift is a multiple of 240 bits: of 16, so that 2**shift == 1 mod 0xFFFF, and of 30,
# CPython's digit, so that the shift and the mask move whole digits (no bit shuffling).
_FOLD_UNIT = 240
# Below this many bits one `% 0xFFFF` is cheaper than another fold.
_FOLD_ABOVE = 1200


def _fold_plan(length: int) -> tuple[tuple[int, int], ...]:
    plan = []
    bits = 8 * length
    while bits > _FOLD_ABOVE:
        shift = _FOLD_UNIT * ((bits // 2 + _FOLD_UNIT - 1) // _FOLD_UNIT)
        mask = _MASKS.get(shift)
        if mask is None:
            mask = _MASKS[shift] = (1 << shift) - 1
        plan.append((shift, mask))
        bits = shift + 1
    return tuple(plan)


def _payload_sum(data: bytes, length: int) -> int:
    """The payload's 16-bit big-endian words summed, mod 0xFFFF (a trailing odd byte padded).

    This is most of what a capture costs (docs/benchmarks.md, "pcap"). int.from_bytes reads the
    bytes at C speed into one number whose base-2**16 digits are the words; its remainder mod
    0xFFFF is their sum mod 0xFFFF (2**16 == 1 mod 0xFFFF). CPython's `%` by a one-digit divisor
    costs a hardware division per 30-bit digit (~2 us for 1448 bytes), so the number is first
    folded: x = hi * 2**s + lo is congruent to hi + lo when 16 divides s, and with s a multiple
    of 240 the shift and the mask are digit moves. Halving until ~1200 bits are left, then one
    `%`: 1448 bytes cost 1.9 us instead of 2.3 us (quarters summed) and 2.8 us (one `%`). The
    stdlib's C-speed sums were slower still: sum(array.array("H")) 10.8 us, of "I" words 7.2 us
    (RFC 1071's byte-order trick is right, but sum() makes an int object per word)."""
    if length & 1:
        data = data + b"\0"
        length += 1
    value = int.from_bytes(data, "big")
    if length > _FOLD_ABOVE // 8:
        plan = _FOLDS.get(length)
        if plan is None:
            plan = _FOLDS[length] = _fold_plan(length)
        for shift, mask in plan:
            value = (value >> shift) + (value & mask)
    return value % 0xFFFF


class PcapWriter:
    """Writes segments to a classic pcap file (path or binary file object), one call each.

    `syn_mss(src_ip, dst_ip)` gives the MSS option of a SYN on that path (default 1460);
    `window_shift` is the window scale every SYN announces (see the module docstring)."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        window_shift: int = 0,
        syn_mss: Callable[[str, str], int] | None = None,
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self.file: IO[bytes] = open(target, "wb", buffering=_BUFFER)  # noqa: SIM115 (closed by close())
            self._owns_file = True
        else:
            self.file = target
            self._owns_file = False
        self.name = str(target) if isinstance(target, (str, os.PathLike)) else getattr(target, "name", "<file>")
        self.window_shift = window_shift
        self._round = (1 << window_shift) - 1
        self.syn_mss = syn_mss or (lambda src, dst: 1460)
        self.packets = 0
        self._ip_id = 0
        # Per (src, dst) address pair: the part of the IP and TCP checksums that only the
        # addresses make, and the packed addresses (a connection sends many segments).
        self._pairs: dict[tuple[tuple[str, int], tuple[str, int]], tuple[int, int, bytes, bytes]] = {}
        self._write = self.file.write
        self._write(_FILE_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW))

    def _pair(self, src: tuple[str, int], dst: tuple[str, int]) -> tuple[int, int, bytes, bytes]:
        src_ip = bytes(int(part) for part in src[0].split("."))
        dst_ip = bytes(int(part) for part in dst[0].split("."))
        addr_sum = sum(struct.unpack("!HHHH", src_ip + dst_ip))
        # IP: version/IHL/TOS, DF, TTL/protocol, addresses. TCP pseudo-header: addresses and
        # protocol; TCP header: the ports.
        ip_sum = 0x4500 + 0x4000 + 0x4006 + addr_sum
        tcp_sum = addr_sum + 6 + src[1] + dst[1]
        entry = (ip_sum, tcp_sum, src_ip, dst_ip)
        self._pairs[(src, dst)] = entry
        return entry

    def write(self, time_ns: int, seg: Segment) -> None:
        """One segment, seen on the wire at virtual time `time_ns`."""
        key = (seg.src, seg.dst)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._pair(seg.src, seg.dst)
        ip_sum, tcp_sum, src_ip, dst_ip = pair
        data = seg.data
        length = len(data)
        flags = seg.flags
        window = seg.window
        if flags & SYN:
            mss = self.syn_mss(seg.src[0], seg.dst[0])
            options = _SYN_OPTIONS.pack(2, 4, mss, 1, 3, 3, self.window_shift)
            options_sum = 0x0204 + mss + 0x0103 + 0x0300 + self.window_shift
            header_words = 7
            window = min(window, 0xFFFF)
        else:
            options = b""
            options_sum = 0
            header_words = 5
            window = min((window + self._round) >> self.window_shift, 0xFFFF)
        tcp_len = header_words * 4 + length
        seq = seg.seq & 0xFFFFFFFF
        ack = seg.ack & 0xFFFFFFFF
        offset_flags = (header_words << 12) | flags
        total = tcp_sum + tcp_len + (seq >> 16) + (seq & 0xFFFF) + (ack >> 16) + (ack & 0xFFFF)
        total += offset_flags + window + options_sum
        if length:
            total += _payload_sum(data, length)
        tcp_checksum = 0xFFFF - (total % 0xFFFF or 0xFFFF)  # _ones_complement_fold, inlined
        ip_len = 20 + tcp_len
        ip_id = self._ip_id
        self._ip_id = (ip_id + 1) & 0xFFFF
        ip_checksum = 0xFFFF - ((ip_sum + ip_len + ip_id) % 0xFFFF or 0xFFFF)
        sec, nsec = divmod(time_ns, 1_000_000_000)
        # One write per packet: the concatenation copies the payload once, cheaper than two
        # more calls into the buffered file.
        # fmt: off
        self._write(
            _RECORD.pack(sec, nsec, ip_len, ip_len)
            + _IP_TCP.pack(
                0x45, 0, ip_len, ip_id, 0x4000, 64, 6, ip_checksum, src_ip, dst_ip,
                seg.src[1], seg.dst[1], seq, ack, header_words << 4, flags, window, tcp_checksum, 0,
            )
            + options
            + data
        )
        # fmt: on
        self.packets += 1

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        """Flush; close the file if this writer opened it."""
        if self._owns_file:
            self.file.close()
        else:
            self.file.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["LINKTYPE_RAW", "PCAP_MAGIC_NS", "PcapWriter", "window_shift_for"]
