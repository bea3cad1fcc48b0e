"""``eventbus schema export|check``: the typed contracts as JSON Schema, and a CI gate."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any

from ._common import PROG, Failure, UsageError, say


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "schema",
        parents=[common],
        help="export or check event schemas",
        description="The JSON Schemas of the event types bound to model "
        "classes (docs/contracts.md).",
    )
    actions = p.add_subparsers(dest="schema_action", metavar="ACTION")
    e = actions.add_parser(
        "export",
        parents=[common],
        help="write every bound type's schema",
        description="Import each MODULE (its @event_type classes bind "
        "themselves) and write every bound event type with its class, "
        "version, unknown-field policy and JSON Schema.",
    )
    e.add_argument(
        "modules",
        nargs="+",
        metavar="MODULE[:ATTR]",
        help="e.g. shop.contracts, or the app (shop.billing:bus)",
    )
    e.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    e.set_defaults(run=cmd_export)
    c = actions.add_parser(
        "check",
        parents=[common],
        help="breaking changes between two exports",
        description="Compare two 'eventbus schema export' files. Exit 1 if "
        "a change breaks consumers written against OLD (a removed type or "
        "field, a changed field type, a new required field, unknown fields "
        "newly rejected); compatible changes are listed, exit 0.",
    )
    c.add_argument("old", metavar="OLD", help="the export consumers were written against")
    c.add_argument("new", metavar="NEW", help="the export to check")
    c.add_argument("--json", action="store_true", help="one JSON object on stdout")
    c.set_defaults(run=cmd_check)
    p.set_defaults(run=_no_action)


def _no_action(args: argparse.Namespace) -> int:
    raise UsageError("schema: name an action: export or check ('eventbus schema --help')")


def cmd_export(args: argparse.Namespace) -> int:
    from ..contracts import export_schemas

    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # as the worker does: the app's own modules
    for target in args.modules:
        name = target.partition(":")[0].strip()
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"schema export: cannot import {name!r}: {exc}") from exc
    doc = export_schemas()
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise Failure(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        say(f"{PROG} schema export: wrote {args.output} ({len(doc['types'])} event type(s))")
    else:
        sys.stdout.write(text)
    return 0


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as exc:
        raise UsageError(f"schema check: cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"schema check: {path} is not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"schema check: {path} is not an 'eventbus schema export' document")
    return doc


def cmd_check(args: argparse.Namespace) -> int:
    from ..contracts import breaking_changes

    old, new = _read(args.old), _read(args.new)
    try:
        breaking, compatible = breaking_changes(old, new)
    except ValueError as exc:
        raise UsageError(f"schema check: {exc}") from exc
    if args.json:
        print(json.dumps({"breaking": breaking, "compatible": compatible}, ensure_ascii=False))
    else:
        for line in breaking:
            print(f"BREAKING  {line}")
        for line in compatible:
            print(f"ok        {line}")
        say(
            f"{PROG} schema check: {len(breaking)} breaking, {len(compatible)} compatible "
            f"change(s) from {args.old} to {args.new}"
        )
    return 1 if breaking else 0
