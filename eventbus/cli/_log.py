"""``eventbus log``: the events the embedded SQLite broker retained, oldest first."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlsplit

from .._config import redact
from .._envelope import Message
from .._plugins import create_adapter
from ..adapter import EventLog
from ._common import (
    Failure,
    UsageError,
    add_data,
    config,
    iso,
    non_negative_int,
    positive_int,
    preview,
    print_table,
    spec,
)


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "log",
        parents=[common],
        help="list the SQLite broker's event log",
        description="List the events the embedded SQLite broker retained, oldest first.",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=100,
        metavar="N",
        help="at most N events (default: 100)",
    )
    p.add_argument(
        "--after",
        type=non_negative_int,
        default=0,
        metavar="SEQ",
        help="only events after this sequence number (for paging)",
    )
    p.add_argument("--pattern", metavar="P", help="only types matching P, e.g. 'order.#'")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cmd_log)


def cmd_log(args: argparse.Namespace) -> int:
    cfg = config(args)
    found = spec(cfg)
    if found.name != "sqlite":
        raise UsageError(
            f"the event log is a feature of the embedded SQLite broker; this config uses "
            f"{found.name!r} ({redact(cfg.url or found.default_url or '')}). Use your broker's "
            "own tools, or point --config/EVENTBUS_URL at a sqlite:/// file"
        )
    url = cfg.url or found.default_url or "sqlite:///eventbus.db"
    path = _sqlite_path(url)
    if path is not None and not os.path.exists(path):
        raise Failure(
            f"no broker file at {path} (from {redact(url)}); nothing was published there yet"
        )
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    try:
        if not isinstance(adapter, EventLog):
            raise UsageError(f"the {found.name!r} adapter has no event log")
        entries = adapter.log(limit=args.limit, after=args.after, pattern=args.pattern)
    finally:
        adapter.close()
    if args.json:
        for entry in entries:
            print(json.dumps(_log_record(entry), ensure_ascii=False))
    else:
        _print_log(entries, args.after)
    if len(entries) == args.limit:
        print(f"(first {args.limit}; more with --after {entries[-1].seq})", file=sys.stderr)
    return 0


def _print_log(entries: Sequence[Any], after: int) -> None:
    rows = [
        (
            str(e.seq),
            iso(e.published_at),
            e.message.topic,
            e.message.key or "-",
            e.message.headers.get("id", "-"),
            preview(e.message),
        )
        for e in entries
    ]
    if not rows:
        print("(no events)" if not after else f"(no events after {after})")
        return
    print_table(("SEQ", "PUBLISHED (UTC)", "TYPE", "KEY", "ID", "DATA"), rows)


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///rel`` or ``sqlite:////abs`` URL (None if not a plain file)."""
    parts = urlsplit(url)
    if parts.netloc:
        return None
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    return path if path and path != ":memory:" else None


def _log_record(entry: Any) -> dict[str, Any]:
    message: Message = entry.message
    return add_data(
        {
            "seq": entry.seq,
            "published_at": datetime.fromtimestamp(entry.published_at, timezone.utc)
            .isoformat()
            .replace("+00:00", "Z"),
            "topic": message.topic,
            "key": message.key,
            "attributes": dict(message.headers),
        },
        message,
    )
