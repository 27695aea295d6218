"""`simnet demo`: the socket mechanics, step by step, on two simulated hosts."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("demo", help="watch a handshake, a partial write, EAGAIN, EPOLLOUT and FIN")
    p.add_argument("--seed", type=int, default=7)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from simnet.sim.demo import run_demo

    run_demo(seed=args.seed)
    return 0
