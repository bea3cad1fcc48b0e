"""Binding model classes to CloudEvents types, once, and evolving them with upcasters."""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .._errors import ConfigError, EncodeError
from ._models import ModelErrors, ModelKind, kind_of, resolve

__all__ = ["REGISTRY", "Contract", "Registry", "event_type", "upcaster"]

Class = TypeVar("Class", bound=type)
ModelClass = type  # a model class (``type`` itself is a parameter and field name here)
Unknown = Literal["ignore", "reject"]
#: The CloudEvents extension attribute that carries a contract's version (absent: 1).
VERSION_ATTRIBUTE = "dataversion"


@dataclass(frozen=True, eq=False)
class Contract:
    """One event type's contract: its model class, version and unknown-field policy."""

    type: str
    cls: ModelClass
    kind: ModelKind
    version: int = 1
    unknown: Unknown = "ignore"
    dataschema: str | None = None

    def to_data(self, obj: Any) -> Any:
        """The event data of ``obj``, checked against the model (:class:`EncodeError` if not)."""
        try:
            return self.kind.check(self.cls, obj)
        except ModelErrors as exc:
            raise EncodeError(f"{self.type} ({self.cls.__name__}) is not valid: {exc}") from None

    def from_data(self, data: Any) -> Any:
        """``data`` read into the model; :class:`ModelErrors` lists what does not fit."""
        return self.load(data)

    @functools.cached_property
    def load(self) -> Callable[[Any], Any]:
        """The fastest ``data -> model`` function for this contract (compiled once)."""
        return self.kind.loader(self.cls, self.unknown == "reject")

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of the payload."""
        schema = self.kind.schema(self.cls)
        if self.unknown == "reject" and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
        return schema


class Registry:
    """Event types and their model classes; one class per type, one type per class.

    Thread-safe. The process-wide :data:`REGISTRY` is what ``@event_type`` fills
    and what the bus reads; a separate instance is for tests and tools.
    """

    def __init__(self) -> None:
        self._by_type: dict[str, Contract] = {}
        self._by_class: dict[ModelClass, Contract] = {}
        self._upcasters: dict[tuple[str, int], Callable[[Any], Any]] = {}
        self._lock = threading.Lock()

    def bind(
        self,
        cls: ModelClass,
        type: str,
        *,
        version: int = 1,
        unknown: Unknown = "ignore",
        dataschema: str | None = None,
        localns: Mapping[str, Any] | None = None,
    ) -> Contract:
        """Bind ``cls`` to ``type`` (see :func:`event_type`); ``localns`` resolves
        string annotations naming classes local to a function."""
        from .._routing import validate_topic

        validate_topic(type)
        kind = kind_of(cls)
        if kind is None:
            raise ConfigError(
                f"@event_type({type!r}) on {cls.__name__}: not a model class; use a "
                "@dataclass, a TypedDict, a pydantic BaseModel or a msgspec.Struct"
            )
        if version < 1:
            raise ConfigError(f"@event_type({type!r}): version must be 1 or more, not {version}")
        if unknown not in ("ignore", "reject"):
            raise ConfigError(f"@event_type({type!r}): unknown must be 'ignore' or 'reject'")
        if kind.name in ("dataclass", "typeddict"):
            try:
                resolve(cls, localns)
            except Exception as exc:
                raise ConfigError(
                    f"@event_type({type!r}): cannot read the fields of {cls.__name__}: {exc}"
                ) from None
        contract = Contract(type, cls, kind, version, unknown, dataschema)
        with self._lock:
            old = self._by_type.get(type)
            if old is not None and _name(old.cls) != _name(cls):
                raise ConfigError(
                    f"event type {type!r} is bound to {_name(old.cls)} already; "
                    f"{_name(cls)} cannot be bound to it too (one class per type)"
                )
            other = self._by_class.get(cls)
            if other is not None and other.type != type:
                raise ConfigError(f"{_name(cls)} is bound to {other.type!r} already")
            if old is not None:  # the same class again (a module imported twice)
                self._by_class.pop(old.cls, None)
            self._by_type[type] = contract
            self._by_class[cls] = contract
        return contract

    def for_class(self, cls: ModelClass) -> Contract | None:
        return self._by_class.get(cls)

    def for_type(self, type: str) -> Contract | None:
        return self._by_type.get(type)

    def contracts(self) -> list[Contract]:
        """Every contract, by type."""
        with self._lock:
            return [self._by_type[t] for t in sorted(self._by_type)]

    def add_upcaster(self, type: str, from_version: int, fn: Callable[[Any], Any]) -> None:
        with self._lock:
            if (type, from_version) in self._upcasters:
                raise ConfigError(f"{type!r} has an upcaster from version {from_version} already")
            self._upcasters[(type, from_version)] = fn

    def upcast(self, type: str, version: int, target: int, data: Any) -> Any:
        """``data`` of ``type`` at ``version`` brought up to ``target``, one step at a time."""
        while version < target:
            step = self._upcasters.get((type, version))
            if step is None:
                why = f"{type!r} version {version} has no upcaster to {version + 1}"
                raise ModelErrors([("", f"{why} (this handler reads version {target})")])
            data = step(data)
            version += 1
        return data

    def clear(self) -> None:
        with self._lock:
            self._by_type.clear()
            self._by_class.clear()
            self._upcasters.clear()


def _name(cls: ModelClass) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


REGISTRY = Registry()


def event_type(
    type: str,
    *,
    version: int = 1,
    unknown: Unknown = "ignore",
    dataschema: str | None = None,
    registry: Registry | None = None,
) -> Callable[[Class], Class]:
    """Bind a model class to the CloudEvents ``type`` it is published and handled as::

        @event_type("order.created", version=2, unknown="reject")
        @dataclass
        class OrderCreated:
            id: int
            user: str
            total: float

    ``version`` is the data's version (sent as the ``dataversion`` extension when
    above 1; events without it are version 1): a handler for version 2 gets
    version 1 events through the upcasters (:func:`upcaster`). ``unknown``: what
    a field the class does not know does on receive: ``"ignore"`` (default,
    so producers may add fields) or ``"reject"`` (a dead letter). ``dataschema``
    is sent as the event's ``dataschema`` attribute. A type takes one class; a
    second class for the same type is a :class:`~eventbus.ConfigError`.
    """

    caller = sys._getframe(1).f_locals  # resolves annotations naming local classes

    def bind(cls: Class) -> Class:
        (registry or REGISTRY).bind(
            cls, type, version=version, unknown=unknown, dataschema=dataschema, localns=caller
        )
        return cls

    return bind


def upcaster(
    type: str, from_version: int, *, registry: Registry | None = None
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register ``fn(data) -> data`` turning ``type``'s data at ``from_version`` into the next::

    @upcaster("order.created", from_version=1)
    def split_name(data):
        first, _, last = data.pop("user").partition(" ")
        return {**data, "first_name": first, "last_name": last}
    """

    def add(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        (registry or REGISTRY).add_upcaster(type, from_version, fn)
        return fn

    return add
