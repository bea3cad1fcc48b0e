"""The embedded SQLite broker: one file, several processes, a log to replay.

``_store`` holds the file, schema, transactions and errors; ``_tooling`` the log,
retention and dead-letter tools; ``_consumer`` the members of a group;
``_adapter`` puts them together as :class:`SqliteAdapter`.
"""

from __future__ import annotations

from ._adapter import LogEntry, SqliteAdapter, eventbus_adapters

__all__ = ["LogEntry", "SqliteAdapter", "eventbus_adapters"]
