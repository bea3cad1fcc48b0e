"""Adapter settings: one small frozen dataclass per adapter, read from a URL and options.

Every adapter reads its configuration the same way, so the same value means the
same thing on every broker and a mistake is worded the same everywhere::

    @dataclass(frozen=True, repr=False)
    class KafkaSettings(Settings):
        adapter: ClassVar[str] = "kafka"
        secret_fields: ClassVar[frozenset[str]] = frozenset({"client"})

        bootstrap: str = "127.0.0.1:9092"
        session_timeout_ms: int = 10_000
        create: bool = True

        @classmethod
        def url_fields(cls, url: SplitResult) -> dict[str, Any]:
            return {"bootstrap": url.netloc} if url.netloc else {}

    KafkaSettings.from_url("kafka://b1:9092?create=false", {"session_timeout_ms": 6000})

Rules, the same for every field of every adapter:

- values come from, lowest first: the field's default, :meth:`Settings.url_fields`
  (what the scheme, host and path say), the URL's query, then ``options`` (the
  config file's ``options`` table);
- an unknown query parameter or option is a :class:`~eventbus.ConfigError` that
  names the closest known one;
- ``bool``: ``true``/``false`` (TOML), or the words ``1 true yes on`` / ``0 false no off``
  in any case; ``int`` and ``float``: numbers or their text (a bool is not a number);
  ``str``: text; ``tuple[str, ...]``: a list, or text split on commas; a ``dict``
  field takes a table (options only); a ``Literal[...]`` field one of its values;
- an empty value (``?create=``) means "not set": the field keeps its default;
  ``none`` sets an optional (``X | None``) field to None;
- after reading, :meth:`Settings.validate` checks what concerns several fields;
- a field's ``metadata={"expects": "a number of seconds"}`` words its type error.

``repr()`` masks every field named in ``secret_fields`` and any password in a
URL-valued field, so settings can be logged.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin
from urllib.parse import SplitResult, parse_qsl, urlsplit

from .._errors import ConfigError

__all__ = ["Settings"]

S = TypeVar("S", bound="Settings")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_MASK = "***"


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    """Base of every adapter's settings record; see the module docstring for the rules."""

    #: The adapter's name, at the start of every error message.
    adapter: ClassVar[str] = "adapter"
    #: Fields whose values never appear in ``repr()`` (passwords, client secrets).
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        """Field values the URL's scheme, user info, host and path give (override).

        Raise :class:`~eventbus.ConfigError` for a URL the adapter cannot use.
        Values may be text; they are coerced like query parameters.
        """
        return {}

    def validate(self) -> None:
        """Check what concerns several fields; raise :class:`~eventbus.ConfigError` (override)."""

    @classmethod
    def from_url(
        cls: type[S], url: str | None = None, options: Mapping[str, Any] | None = None
    ) -> S:
        """Settings from ``url`` and ``options`` (these win); see the module docstring."""
        fields = cls._fields()
        try:
            split = urlsplit(url or "")
            if "," not in split.netloc:  # one host (b1:9092,b2:9092 lists are the adapter's)
                split.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError as exc:
            raise ConfigError(f"{cls.adapter}: broker URL is not valid ({exc})") from None
        values: dict[str, Any] = {}
        for key, raw in cls.url_fields(split).items():
            values[key] = cls._coerce(key, raw, fields[key], "URL")
        for key, raw in parse_qsl(split.query, keep_blank_values=True):
            values[key] = cls._coerce(
                cls._known(key, "URL query parameter"), raw, fields.get(key), "URL query parameter"
            )
        for key, raw in (options or {}).items():
            values[key] = cls._coerce(cls._known(key, "option"), raw, fields.get(key), "option")
        settings = cls(**{k: v for k, v in values.items() if v is not _UNSET})
        settings.validate()
        return settings

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def _fields(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}

    @classmethod
    def _expects(cls, key: str) -> str | None:
        for f in dataclasses.fields(cls):
            if f.name == key:
                return f.metadata.get("expects")
        return None

    @classmethod
    def _known(cls, key: str, where: str) -> str:
        fields = cls._fields()
        if key in fields:
            return key
        close = difflib.get_close_matches(key, sorted(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(fields))}"
        raise ConfigError(f"{cls.adapter}: unknown {where} {key!r}{hint}")

    @classmethod
    def _coerce(cls, key: str, raw: Any, kind: Any, where: str) -> Any:
        optional, kind = _unwrap_optional(kind)
        if isinstance(raw, str) and raw.strip() == "":
            return _UNSET
        if raw is None or (optional and isinstance(raw, str) and raw.strip().lower() == "none"):
            if optional:
                return None
            raise ConfigError(f"{cls.adapter}: {where} {key!r} needs a value")
        try:
            return _convert(raw, kind)
        except (TypeError, ValueError):
            expects = cls._expects(key) or _describe(kind)
            raise ConfigError(
                f"{cls.adapter}: {where} {key!r} must be {expects}, not {raw!r}"
            ) from None

    # -- showing ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        from ..observability._logging import redact_text

        parts = []
        for f in dataclasses.fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name in self.secret_fields and value:
                shown = _MASK
            elif isinstance(value, str):
                shown = repr(redact_text(value))
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


def _unwrap_optional(kind: Any) -> tuple[bool, Any]:
    if get_origin(kind) in (Union, types.UnionType):
        args = [a for a in get_args(kind) if a is not type(None)]
        if len(args) < len(get_args(kind)):
            return True, args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
    return False, kind


def _convert(raw: Any, kind: Any) -> Any:
    origin = get_origin(kind)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower() if isinstance(raw, (str, int)) else None
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise ValueError(raw)
    if kind is int:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError(raw)
        return int(raw.strip() if isinstance(raw, str) else raw)
    if kind is float:
        if isinstance(raw, bool):
            raise ValueError(raw)
        return float(raw)
    if kind is str:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    if origin is Literal:
        if raw in get_args(kind):
            return raw
        raise ValueError(raw)
    if origin is tuple:
        items = [p.strip() for p in raw.split(",")] if isinstance(raw, str) else list(raw)
        item = get_args(kind)[0] if get_args(kind) else str
        return tuple(_convert(i, item) for i in items if i != "")
    if origin in (dict, Mapping) or kind is dict:
        if not isinstance(raw, Mapping):
            raise ValueError(raw)
        return dict(raw)
    return raw


def _describe(kind: Any) -> str:
    origin = get_origin(kind)
    if kind is bool:
        return "true or false"
    if kind is int:
        return "a whole number"
    if kind is float:
        return "a number"
    if kind is str:
        return "text"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(kind))
    if origin is tuple:
        return "a list (or text separated by commas)"
    if origin in (dict, Mapping) or kind is dict:
        return "a table"
    return str(kind)
