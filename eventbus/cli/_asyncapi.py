"""``eventbus asyncapi MODULE[:ATTR]``: the AsyncAPI 3.0 document of a bus."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._common import PROG, Failure, hand_over_config, load_bus, say


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "asyncapi",
        parents=[common],
        help="write the AsyncAPI 3.0 document",
        description="Import MODULE, take its EventBus ATTR (default 'bus') "
        "and write an AsyncAPI 3.0 document (JSON) of its broker, groups "
        "and handlers.",
    )
    p.add_argument("target", metavar="MODULE[:ATTR]", help="e.g. shop.billing:bus")
    p.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--title", help="info.title (default: the module name)")
    p.add_argument(
        "--version",
        dest="doc_version",
        default="1.0.0",
        metavar="V",
        help="info.version (default: 1.0.0)",
    )
    p.set_defaults(run=cmd_asyncapi)


def cmd_asyncapi(args: argparse.Namespace) -> int:
    from ..observability._asyncapi import asyncapi_document

    hand_over_config(args)
    bus = load_bus(args.target)
    try:
        title = args.title or args.target.partition(":")[0]
        doc = asyncapi_document(bus, title=title, version=args.doc_version)
    finally:
        bus.close()
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise Failure(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        say(
            f"{PROG} asyncapi: wrote {args.output} ({len(doc['operations'])} operation(s), "
            f"{len(doc['channels'])} channel(s))"
        )
    else:
        sys.stdout.write(text)
    return 0
