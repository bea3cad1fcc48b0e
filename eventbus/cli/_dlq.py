"""``eventbus dlq list | show | replay | purge``: a group's dead letters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._envelope import Message
from .._plugins import create_adapter
from ..adapter import DeadLetterTools
from ._common import (
    Failure,
    Parser,
    Progress,
    UsageError,
    add_data,
    config,
    confirm,
    positive_int,
    print_table,
    spec,
    where,
)

#: How many dead letters ``dlq show`` and ``dlq replay`` look through (and count) at most.
DLQ_SCAN = 10_000
#: Dead letters moved per adapter call by ``dlq replay`` (progress between calls).
REPLAY_BATCH = 100


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("dlq", parents=[common],
                            help="list, show, replay or purge dead letters",
                            description="The dead letters of a group: events its handlers gave "
                            "up on, or that could not be decoded, with the reason.")
    dlq = p.add_subparsers(title="actions", metavar="ACTION", parser_class=Parser)
    p.set_defaults(run=_dlq_no_action)
    d = dlq.add_parser("list", parents=[common], help="list a group's dead letters",
                       description="List the dead letters of GROUP, oldest first.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--limit", type=positive_int, default=100, metavar="N",
                   help="at most N (default: 100)")
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.set_defaults(run=cmd_dlq_list)
    d = dlq.add_parser("show", parents=[common], help="show one dead letter in full",
                       description="Show the dead letter of GROUP whose event id is EVENT_ID: "
                       "reason, attempts, attributes and data (JSON).")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("event_id", metavar="EVENT_ID")
    d.set_defaults(run=cmd_dlq_show)
    d = dlq.add_parser("replay", parents=[common], help="send dead letters back to their group",
                       description="Move the dead letters of GROUP back to its queue, oldest "
                       "first; its handlers get them again with attempt 1. Asks first unless "
                       "--yes; without a terminal to ask on, --yes is required.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--limit", type=positive_int, metavar="N",
                   help="at most N (default: all there are now)")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_replay)
    d = dlq.add_parser("purge", parents=[common], help="delete a group's dead letters",
                       description="Delete every dead letter of GROUP, for good. Asks first "
                       "unless --yes; without a terminal to ask on, --yes is required.")
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_purge)


def _dlq_no_action(args: argparse.Namespace) -> int:
    raise UsageError("dlq: name an action: list, show, replay or purge ('eventbus dlq --help')")


@contextmanager
def _dlq_adapter(args: argparse.Namespace) -> Iterator[tuple[DeadLetterTools, str]]:
    """The configured adapter (closed afterwards) and where it points, for ``dlq`` actions."""
    cfg = config(args)
    found = spec(cfg)
    if not found.capabilities.cross_process:
        raise UsageError(
            f"the {found.name!r} broker lives inside one process, so its dead letters are not "
            "reachable from another; use the bus's adapter in that process"
        )
    adapter = create_adapter(cfg.broker, cfg.url, cfg.options)
    try:
        if not isinstance(adapter, DeadLetterTools):
            raise UsageError(f"the {found.name!r} adapter has no dead-letter tooling")
        yield adapter, where(cfg, found)
    finally:
        adapter.close()


def _dead_record(delivery: Any, reason: str) -> dict[str, Any]:
    message: Message = delivery.message
    return add_data({
        "id": message.headers.get("id"),
        "topic": message.topic,
        "key": message.key,
        "attempt": delivery.attempt,
        "reason": reason,
        "attributes": dict(message.headers),
    }, message)  # fmt: skip


def cmd_dlq_list(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        letters = adapter.dead_letters(args.group, args.limit)
    if args.json:
        for d, reason in letters:
            print(json.dumps(_dead_record(d, reason), ensure_ascii=False))
    elif not letters:
        print(f"(no dead letters in group {args.group!r} on {there})")
    else:
        print_table(("ID", "TYPE", "ATTEMPT", "REASON"),
                    [(d.message.headers.get("id", "-"), d.message.topic or "-", str(d.attempt),
                      " ".join(reason.split())) for d, reason in letters])  # fmt: skip
    if len(letters) == args.limit:
        print(f"(first {args.limit}; more with --limit)", file=sys.stderr)
    return 0


def cmd_dlq_show(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        letters = adapter.dead_letters(args.group, DLQ_SCAN)
    for d, reason in letters:
        if d.message.headers.get("id") == args.event_id:
            print(json.dumps(_dead_record(d, reason), ensure_ascii=False, indent=2))
            return 0
    looked = f"the first {DLQ_SCAN} of " if len(letters) == DLQ_SCAN else ""
    raise Failure(f"no dead letter with id {args.event_id!r} in {looked}group "
                  f"{args.group!r} on {there} ({len(letters)} there)")


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        count = len(adapter.dead_letters(args.group, min(args.limit or DLQ_SCAN, DLQ_SCAN)))
        if not count:
            print(f"no dead letters in group {args.group!r} on {there}; nothing to replay")
            return 0
        # Bounded by what is there now: a handler that fails again must not loop us.
        target = min(args.limit, count) if args.limit else count
        if not confirm(f"replay {target} dead letter(s) of group {args.group!r} on {there}?",
                       args.yes):  # fmt: skip
            print("nothing replayed", file=sys.stderr)
            return 1
        progress = Progress(f"replaying dead letters of {args.group!r}", total=target)
        done = 0
        while done < target:
            asked = min(REPLAY_BATCH, target - done)
            moved = adapter.replay_dead_letters(args.group, asked)
            done += moved
            progress.update(done)
            if moved < asked:
                break
        progress.finish(f"replayed {done} dead letter(s) of group {args.group!r} on {there}")
    if count == DLQ_SCAN and not args.limit:
        print(f"(replayed at most {DLQ_SCAN} in one go; run again for the rest)", file=sys.stderr)
    return 0


def cmd_dlq_purge(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        if not confirm(f"delete every dead letter of group {args.group!r} on {there}, for good?",
                       args.yes):  # fmt: skip
            print("nothing deleted", file=sys.stderr)
            return 1
        purged = adapter.purge_dead_letters(args.group)
    print(f"purged {purged} dead letter(s) of group {args.group!r} on {there}")
    return 0
