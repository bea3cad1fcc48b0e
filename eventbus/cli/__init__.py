"""The ``eventbus`` command: ``eventbus --help`` lists the commands (docs/cli.md)."""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
