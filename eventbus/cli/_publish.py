"""``eventbus publish TYPE [DATA|-]``: publish one event."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from .._bus import EventBus
from ._common import EXIT_KEPT, PROG, UsageError, config, say, spec, where

# Settable event attributes for ``publish --header`` besides free extensions.
_HEADER_ATTRIBUTES = (
    "id",
    "datacontenttype",
    "dataschema",
    "correlationid",
    "causationid",
    "traceparent",
)
_HEADER_OPTIONS = {
    "subject": "--subject",
    "source": "--source",
    "partitionkey": "--key",
    "key": "--key",
    "type": "TYPE",
}
_HEADER_FIXED = ("specversion", "time")


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "publish",
        parents=[common],
        help="publish one event",
        description="Publish one event to the configured broker.",
    )
    p.add_argument("type", metavar="TYPE", help="event type (the topic), e.g. order.created")
    p.add_argument(
        "data",
        metavar="DATA",
        nargs="?",
        default=None,
        help="payload as JSON, or '-' to read JSON from stdin (default: null)",
    )
    p.add_argument("--key", help="ordering key (events with one key keep their order)")
    p.add_argument("--subject", help="CloudEvents subject")
    p.add_argument(
        "--source", help="CloudEvents source (default: config 'source' or //eventbus/<host>/<pid>)"
    )
    p.add_argument(
        "--header",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="another attribute: correlationid, causationid, traceparent, "
        "id, dataschema, datacontenttype, or an extension (a-z0-9 names); "
        "repeatable",
    )
    p.add_argument(
        "--no-outbox",
        dest="outbox",
        action="store_false",
        help="if the broker does not take the event now, fail (exit 1) instead of "
        "keeping it in the local outbox (exit 3)",
    )
    p.set_defaults(run=cmd_publish)


def cmd_publish(args: argparse.Namespace) -> int:
    data = _read_data(args.data)
    attributes: dict[str, Any] = {"key": args.key, "subject": args.subject}
    extensions: dict[str, str] = {}
    for item in args.header:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"--header {item!r}: write NAME=VALUE, e.g. correlationid=abc123")
        if name in _HEADER_OPTIONS:
            raise UsageError(f"--header {name}=...: use {_HEADER_OPTIONS[name]} instead")
        if name in _HEADER_FIXED:
            raise UsageError(f"--header {name}=...: {name} is set by eventbus")
        if name in _HEADER_ATTRIBUTES:
            attributes[name] = value
        else:
            extensions[name] = value
    if extensions:
        attributes["extensions"] = extensions
    cfg = config(args)
    settings = cfg.publish_settings
    # close() would wait close_timeout for the outbox to drain; we wait here instead,
    # to tell "delivered" from "kept" by the exit code.
    cfg = dataclasses.replace(
        cfg,
        publish={**cfg.publish, "outbox": args.outbox and settings.outbox, "close_timeout": 0.0},
    )
    found = spec(cfg)
    with EventBus(config=cfg, source=args.source) as bus:
        result = bus.publish(args.type, data, **attributes)
        outcome = result.outcome
        if outcome == "outbox" and bus.flush(settings.close_timeout) and not bus.outbox_pending():
            outcome = "sent from the outbox"
    print(f"published {args.type} id={result.id} to {where(cfg, found)} ({outcome})")
    if outcome == "outbox":
        say(
            f"{PROG}: {args.type} id={result.id} is kept in the outbox "
            f"{settings.outbox_path}, not yet delivered to {where(cfg, found)}; a bus on this "
            f"file sends it when the broker takes it ('{PROG} outbox --drain' now); "
            "--no-outbox fails instead"
        )
        return EXIT_KEPT
    return 0


def _read_data(text: str | None) -> Any:
    if text is None:
        return None
    origin = "DATA"
    if text == "-":
        origin = "stdin"
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(
            f"{origin} is not valid JSON ({exc}); quote a string as JSON, e.g. '\"hello\"'"
        ) from None
