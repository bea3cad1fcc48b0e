"""The embedded brokers, in core and needing no server: ``memory`` and ``sqlite``.

Each is an adapter plugin like the broker adapters under ``adapters/``, found
through the same ``eventbus.adapters`` entry point; ``memory`` is also the
test double for users' handler tests.
"""

from __future__ import annotations

from .memory import MemoryAdapter
from .sqlite import LogEntry, SqliteAdapter

__all__ = ["LogEntry", "MemoryAdapter", "SqliteAdapter"]
