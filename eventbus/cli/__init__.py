"""The ``eventbus`` command: ``eventbus --help`` lists the commands (docs/cli.md).

One module per command (``_publish``, ``_worker``, ``_check``, ``_dlq``, ...), each
with a ``register(commands, common)`` that adds its subparser; ``_main`` assembles
them and turns errors into exit codes; ``_common`` holds what they share.
"""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
