"""``eventbus tail PATTERN``: matching events as they are published, in a group of its own."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from ._common import PROG, UsageError, positive_int, say, shared_adapter, where


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "tail",
        parents=[common],
        help="watch events live",
        description="Show every event whose type matches PATTERN as it is "
        "published, through a group of its own (removed afterwards where "
        "the adapter can remove groups; see docs/cli.md). Other groups are "
        "not disturbed. Ctrl+C stops.",
    )
    p.add_argument("pattern", metavar="PATTERN", help="e.g. 'order.*' or '#' for everything")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--limit", type=positive_int, metavar="N", help="stop after N events")
    p.set_defaults(run=cmd_tail)


def cmd_tail(args: argparse.Namespace) -> int:
    from .._routing import validate_pattern
    from ..observability._tail import can_delete_groups, format_line, json_record, tail

    try:
        validate_pattern(args.pattern)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pattern {args.pattern!r}: {exc}") from None
    cfg, found, adapter = shared_adapter(
        args,
        "a tail in another process sees nothing; tail "
        "a broker that processes share (sqlite, rabbitmq, ...)",
    )
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())

    def ready(group: str) -> None:
        kept = (
            ""
            if can_delete_groups(adapter)
            else " (kept for the next tail: this adapter cannot remove groups)"
        )
        say(
            f"{PROG} tail: {args.pattern!r} on {where(cfg, found)} through group "
            f"{group!r}{kept}; Ctrl+C stops"
        )

    def show(item: Any) -> None:
        if args.json:
            line = json.dumps(json_record(item), ensure_ascii=False, default=str)
        else:
            line = format_line(item)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        count, group, removed = tail(
            adapter, args.pattern, show, limit=args.limit, stop=stop, on_ready=ready
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        adapter.close()
    end = f"group {group!r} removed" if removed else f"group {group!r} left on the broker"
    say(f"{PROG} tail: {count} event(s); {end}")
    return 0
