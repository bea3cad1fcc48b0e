"""The embedded SQLite broker: one file, several processes, a log to replay.

``_store`` holds the file, schema, transactions and errors; ``_tooling`` the log,
retention and dead-letter tools; ``_consumer`` the members of a group;
``_adapter`` puts them together as :class:`SqliteAdapter`.
"""

from __future__ import annotations

from ...adapter._contract import LogEntry
from ...adapter._plugin import AdapterSpec, adapter_spec
from ...hookspecs import hookimpl
from ._adapter import SqliteAdapter
from ._settings import CAPABILITIES, DEFAULT_URL, SqliteSettings

__all__ = ["CAPABILITIES", "LogEntry", "SqliteAdapter", "SqliteSettings"]

SPEC = adapter_spec(
    name="sqlite",
    settings=SqliteSettings,
    adapter="._adapter:SqliteAdapter.from_settings",
    package=__name__,
    schemes=("sqlite",),
    capabilities=CAPABILITIES,
    description="embedded durable broker in one SQLite file; the default",
    default_url=DEFAULT_URL,
)


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
