"""``eventbus dlq list | show | replay | purge``: a group's dead letters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .._envelope import Message
from ..adapter import DeadLetterTools
from ._common import (
    Failure,
    Parser,
    Progress,
    UsageError,
    add_data,
    confirm,
    positive_int,
    print_table,
    shared_adapter,
    where,
)

#: How many dead letters ``dlq show`` and ``dlq replay`` look through (and count) at most.
DLQ_SCAN = 10_000
#: Dead letters moved per adapter call by ``dlq replay`` (progress between calls).
REPLAY_BATCH = 100


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "dlq",
        parents=[common],
        help="list, show, replay or purge dead letters",
        description="The dead letters of a group: events its handlers gave "
        "up on, or that could not be decoded, with the reason.",
    )
    dlq = p.add_subparsers(title="actions", metavar="ACTION", parser_class=Parser)
    p.set_defaults(run=_dlq_no_action)
    d = dlq.add_parser(
        "list",
        parents=[common],
        help="list a group's dead letters",
        description="List the dead letters of GROUP, oldest first, numbered "
        "for 'dlq show GROUP #N'. Without GROUP: the groups that have dead "
        "letters, where the adapter can list its groups.",
    )
    d.add_argument("group", metavar="GROUP", nargs="?")
    d.add_argument(
        "--limit", type=positive_int, default=100, metavar="N", help="at most N (default: 100)"
    )
    d.add_argument("--json", action="store_true", help="one JSON object per line")
    d.set_defaults(run=cmd_dlq_list)
    d = dlq.add_parser(
        "show",
        parents=[common],
        help="show one dead letter in full",
        description="Show the dead letter of GROUP whose event id is EVENT_ID, "
        "or the one at position #N of 'dlq list' (also --index N): reason, "
        "attempts, attributes and data (JSON).",
    )
    d.add_argument("group", metavar="GROUP")
    d.add_argument("event_id", metavar="EVENT_ID|#N", nargs="?")
    d.add_argument(
        "--index",
        type=positive_int,
        metavar="N",
        help="the N-th dead letter as 'dlq list' numbers them (1: the oldest)",
    )
    d.set_defaults(run=cmd_dlq_show)
    d = dlq.add_parser(
        "replay",
        parents=[common],
        help="send dead letters back to their group",
        description="Move the dead letters of GROUP back to its queue, oldest "
        "first; its handlers get them again with attempt 1. Asks first unless "
        "--yes; without a terminal to ask on, --yes is required.",
    )
    d.add_argument("group", metavar="GROUP")
    d.add_argument(
        "--limit", type=positive_int, metavar="N", help="at most N (default: all there are now)"
    )
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_replay)
    d = dlq.add_parser(
        "purge",
        parents=[common],
        help="delete a group's dead letters",
        description="Delete every dead letter of GROUP, for good. Asks first "
        "unless --yes; without a terminal to ask on, --yes is required.",
    )
    d.add_argument("group", metavar="GROUP")
    d.add_argument("--yes", "-y", action="store_true", help="do not ask")
    d.set_defaults(run=cmd_dlq_purge)


def _dlq_no_action(args: argparse.Namespace) -> int:
    raise UsageError("dlq: name an action: list, show, replay or purge ('eventbus dlq --help')")


@contextmanager
def _dlq_adapter(args: argparse.Namespace) -> Iterator[tuple[DeadLetterTools, str]]:
    """The configured adapter (closed afterwards) and where it points, for ``dlq`` actions."""
    cfg, found, adapter = shared_adapter(
        args,
        "its dead letters are not reachable from another; use the bus's adapter in that process",
    )
    try:
        if not isinstance(adapter, DeadLetterTools):
            raise UsageError(f"the {found.name!r} adapter has no dead-letter tooling")
        yield adapter, where(cfg, found)
    finally:
        adapter.close()


def _known_groups(adapter: object) -> list[str] | None:
    """The adapter's groups, or None where it cannot tell (only brokers with ``groups()``)."""
    groups = getattr(adapter, "groups", None)
    return sorted(groups()) if callable(groups) else None


def _check_group(adapter: object, group: str, there: str) -> None:
    """An unknown group is an error, not an empty answer, where the adapter can tell."""
    known = _known_groups(adapter)
    if known is not None and group not in known:
        raise Failure(f"no group {group!r} on {there}; groups: {', '.join(known) or 'none'}")


def _dead_record(delivery: Any, reason: str) -> dict[str, Any]:
    from ..contracts import problems_in

    message: Message = delivery.message
    record = {
        "id": message.headers.get("id"),
        "topic": message.topic,
        "key": message.key,
        "attempt": delivery.attempt,
        "reason": reason,
    }
    problems = problems_in(reason)
    if problems is not None:  # a typed contract refused the data: one line per field
        record["problems"] = [{"field": f, "error": e} for f, e in problems]
    record["attributes"] = dict(message.headers)
    return add_data(record, message)


def cmd_dlq_list(args: argparse.Namespace) -> int:
    if args.group is None:
        return _list_groups(args)
    with _dlq_adapter(args) as (adapter, there):
        _check_group(adapter, args.group, there)
        letters = adapter.dead_letters(args.group, args.limit)
    if args.json:
        for n, (d, reason) in enumerate(letters, 1):
            print(json.dumps({"index": n, **_dead_record(d, reason)}, ensure_ascii=False))
    elif not letters:
        print(f"(no dead letters in group {args.group!r} on {there})")
    else:
        print_table(
            ("ID", "#", "TYPE", "ATTEMPT", "REASON"),  # the id first, for scripts
            [
                (
                    d.message.headers.get("id") or "-",
                    f"#{n}",
                    d.message.topic or "-",
                    str(d.attempt),
                    " ".join(reason.split()),
                )
                for n, (d, reason) in enumerate(letters, 1)
            ],
        )
    if len(letters) == args.limit:
        print(f"(first {args.limit}; more with --limit)", file=sys.stderr)
    return 0


def _list_groups(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        known = _known_groups(adapter)
        if known is None:
            raise UsageError(f"dlq list: name a GROUP; {there} cannot list its groups")
        counts = {g: len(adapter.dead_letters(g, DLQ_SCAN)) for g in known}
    with_letters = [(g, n) for g, n in counts.items() if n]
    if args.json:
        for g, n in with_letters:
            print(json.dumps({"group": g, "dead_letters": n}))
    elif not with_letters:
        print(f"(no dead letters in any of the {len(known)} group(s) on {there})")
    else:
        print_table(
            ("GROUP", "DEAD LETTERS"),
            [(g, f"{n}+" if n == DLQ_SCAN else str(n)) for g, n in with_letters],
        )
    return 0


def _position(args: argparse.Namespace) -> int | None:
    """The 1-based position asked for by ``#N`` or ``--index N`` (None: by event id)."""
    text = args.event_id
    if text is not None and text.startswith("#"):
        if args.index is not None:
            raise UsageError("dlq show: give #N or --index N, not both")
        try:
            index = int(text[1:])
        except ValueError:
            raise UsageError(f"dlq show: {text!r} is not a position; write #1, #2, ...") from None
        if index < 1:
            raise UsageError(f"dlq show: positions start at #1, not {text}")
        return index
    if args.index is not None and text is not None:
        raise UsageError("dlq show: give EVENT_ID or --index N, not both")
    if args.index is None and text is None:
        raise UsageError(
            "dlq show: name the dead letter: EVENT_ID, #N or --index N "
            "(N as 'dlq list' numbers them)"
        )
    return args.index  # type: ignore[no-any-return]


def cmd_dlq_show(args: argparse.Namespace) -> int:
    index = _position(args)
    with _dlq_adapter(args) as (adapter, there):
        _check_group(adapter, args.group, there)
        letters = adapter.dead_letters(args.group, index if index is not None else DLQ_SCAN)
    if index is not None:
        if index > len(letters):
            raise Failure(
                f"no dead letter #{index} in group {args.group!r} on {there} ({len(letters)} there)"
            )
        d, reason = letters[index - 1]
        print(json.dumps(_dead_record(d, reason), ensure_ascii=False, indent=2))
        return 0
    for d, reason in letters:
        if d.message.headers.get("id") == args.event_id:
            print(json.dumps(_dead_record(d, reason), ensure_ascii=False, indent=2))
            return 0
    looked = f"the first {DLQ_SCAN} of " if len(letters) == DLQ_SCAN else ""
    raise Failure(
        f"no dead letter with id {args.event_id!r} in {looked}group "
        f"{args.group!r} on {there} ({len(letters)} there; 'dlq list' numbers "
        "them for #N)"
    )


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    with _dlq_adapter(args) as (adapter, there):
        _check_group(adapter, args.group, there)
        count = len(adapter.dead_letters(args.group, min(args.limit or DLQ_SCAN, DLQ_SCAN)))
        if not count:
            print(f"no dead letters in group {args.group!r} on {there}; nothing to replay")
            return 0
        # Bounded by what is there now: a handler that fails again must not loop us.
        target = min(args.limit, count) if args.limit else count
        if not confirm(
            f"replay {target} dead letter(s) of group {args.group!r} on {there}?", args.yes
        ):
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
        _check_group(adapter, args.group, there)
        if not confirm(
            f"delete every dead letter of group {args.group!r} on {there}, for good?", args.yes
        ):
            print("nothing deleted", file=sys.stderr)
            return 1
        purged = adapter.purge_dead_letters(args.group)
    print(f"purged {purged} dead letter(s) of group {args.group!r} on {there}")
    return 0
