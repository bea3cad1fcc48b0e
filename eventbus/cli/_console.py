"""``eventbus console``: the operations console, a local web page (extra ``console``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any], common: argparse.ArgumentParser) -> None:
    p = commands.add_parser(
        "console",
        add_help=False,
        prefix_chars="\x00",
        help="a local web page to see and repair the bus",
        description="See 'eventbus console --help'.",
    )
    # every argument, options included, goes to the console's own parser
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(run=cmd_console)


def cmd_console(args: argparse.Namespace) -> int:
    from ..console import main

    return main(args.rest)
