"""``eventbus outbox [--drain]``: the events waiting in the local outbox; send them now."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from .._bus import EventBus
from ._common import Failure, Progress, config, positive_float, spec, where


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "outbox",
        parents=[common],
        help="show or drain the local outbox",
        description="Show how many events wait in the local outbox (kept "
        "while the broker was unreachable); --drain sends them now, with "
        "progress.",
    )
    p.add_argument("--drain", action="store_true", help="send the waiting events now")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        metavar="SECONDS",
        help="give up draining after this long (default: 60)",
    )
    p.set_defaults(run=cmd_outbox)


def cmd_outbox(args: argparse.Namespace) -> int:
    cfg = config(args)
    there = where(cfg, spec(cfg))
    settings = cfg.publish_settings
    if not settings.outbox:
        print("the outbox is off for this config (publish.outbox = false); nothing waits")
        return 0
    if not os.path.exists(settings.outbox_path):
        print(f"outbox {settings.outbox_path}: no file; nothing waits for {there}")
        return 0
    with EventBus(config=cfg) as bus:
        waiting = bus.outbox_pending()
        print(f"outbox {settings.outbox_path}: {waiting} event(s) wait for {there}")
        if not args.drain or not waiting:
            return 0
        progress = Progress("draining the outbox", total=waiting)
        deadline = time.monotonic() + args.timeout
        left = waiting
        while left and time.monotonic() < deadline:
            bus.flush(min(0.5, max(0.0, deadline - time.monotonic())))
            left = bus.outbox_pending()
            note = f"(breaker {bus.breaker.state})" if bus.breaker.state != "closed" else ""
            progress.update(waiting - left, note)
        if left:
            progress.finish(f"drained {waiting - left} of {waiting}; {left} still wait")
            raise Failure(
                f"{there} did not take {left} event(s) within "
                f"{args.timeout:g}s (breaker {bus.breaker.state}); they stay in the "
                "outbox and are sent when a bus on this file finds the broker"
            )
        progress.finish(f"drained {waiting} event(s) to {there}")
    return 0
