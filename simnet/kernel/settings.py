"""The settings a simulated network obeys: its sysctls and the paths between hosts.

The defaults are those LINUX.md measured on this kind of machine.
"""

from __future__ import annotations

import functools

import attrs

# Real fds stay below fs.nr_open (2**20 by default, LINUX.md), so simulated ones start above it:
# with Network(distinct_fds=True), the n-th host numbers its fds from DISTINCT_FD_BASE + n * FDS_PER_HOST.
DISTINCT_FD_BASE = 1 << 30
FDS_PER_HOST = 1 << 16


@attrs.frozen(kw_only=True)
class Sysctl:
    """The kernel settings the model obeys; defaults are those measured in LINUX.md."""

    somaxconn: int = 4096
    tcp_rmem: tuple[int, int, int] = (4096, 131072, 33554432)
    tcp_wmem: tuple[int, int, int] = (4096, 16384, 4194304)
    rmem_max: int = 4194304
    wmem_max: int = 4194304
    tcp_syn_retries: int = 6
    # Linux >= 6.17 keeps the 1 s SYN RTO for this many timeouts before doubling it, and gives
    # up after tcp_syn_retries + tcp_syn_linear_timeouts retransmits: SYNs at 0, 1, 2, 3, 4, 5,
    # 7, 11, 19, 35, 67 s and ETIMEDOUT at 131 s on the measured machine (0 gives the classic
    # 1, 3, 7, 15, 31, 63 -> 127 s).
    tcp_syn_linear_timeouts: int = 4
    tcp_synack_retries: int = 5
    tcp_fin_timeout: int = 60
    tcp_abort_on_overflow: bool = False
    # SOCK_MIN_RCVBUF = 2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff)) on this kernel; SNDBUF twice that.
    sock_min_rcvbuf: int = 2304
    sock_min_sndbuf: int = 4608
    ip_local_port_range: tuple[int, int] = (32768, 60999)


@attrs.frozen(kw_only=True)
class LinkConfig:
    """One direction of the path between two hosts."""

    latency_ns: int = 0
    mtu: int = 1500


# Loopback's MTU is 65536.
LOOPBACK = LinkConfig(latency_ns=0, mtu=65536)


@functools.cache  # one int object per MTU, not one per socket (docs/benchmarks.md, P6)
def mss_for_mtu(mtu: int) -> int:
    """The MSS of a segment on a path: an IP packet is at most 65535 bytes, less 40 for the IP
    and TCP headers and 12 for the timestamp option Linux puts in every segment. On loopback
    that is 65483 (the SYN's MSS option says 65495, before the timestamps are agreed)."""
    return min(mtu, 65535) - 40 - 12
