"""Settings of the SQLite broker, read from ``sqlite:///path.db?option=value`` and options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import SplitResult, unquote

from ..._errors import ConfigError
from ...adapter._capabilities import Capabilities
from ...adapter._settings import Settings

__all__ = ["CAPABILITIES", "DEFAULT_MAX_SIZE", "DEFAULT_URL", "SQLITE_MAX_SIZE", "SqliteSettings"]

DEFAULT_URL = "sqlite:///eventbus.db"
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
SQLITE_MAX_SIZE = 1_000_000_000  # SQLITE_MAX_LENGTH: the largest blob or string

CAPABILITIES = Capabilities(
    ordering_per_key=True,
    consumer_groups=True,
    persistence=True,
    replay=True,
    redelivery=True,
    native_dead_letter=True,
    delayed_delivery=True,
    batching=True,
    lease_seconds=30.0,
    cross_process=True,
    max_message_size=DEFAULT_MAX_SIZE,
)

_SECONDS = {"expects": "a number of seconds"}


@dataclass(frozen=True, repr=False)
class SqliteSettings(Settings):
    """The file and the options of the module docstring of :mod:`eventbus.brokers.sqlite`."""

    adapter: ClassVar[str] = "sqlite"

    path: str = "eventbus.db"
    lease: float = field(default=30.0, metadata=_SECONDS)
    busy_timeout: float = field(default=5.0, metadata=_SECONDS)
    synchronous: str = "normal"
    retention: str | int | float | None = None
    poll_max: float = field(default=0.1, metadata=_SECONDS)
    max_message_size: int = DEFAULT_MAX_SIZE

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        shown = url.geturl()
        if url.scheme.lower() != "sqlite":
            raise ConfigError(f"sqlite: url {shown!r} must start with sqlite://")
        if url.netloc:
            raise ConfigError(
                f"sqlite: url {shown!r} has a host part {url.netloc!r}; write "
                "sqlite:///relative/path.db or sqlite:////absolute/path.db (three or four slashes)"
            )
        path = unquote(url.path)
        path = path[1:] if path.startswith("/") else path
        if path in ("", ":memory:"):
            raise ConfigError(
                f"sqlite: url {shown!r} names no file; write e.g. sqlite:///eventbus.db "
                "(use memory:// for an in-process broker)"
            )
        return {"path": path}
