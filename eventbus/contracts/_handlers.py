"""Giving a handler the model its annotation asks for.

``def invoice(order: OrderCreated)`` gets an ``OrderCreated``;
``def invoice(event: Event[OrderCreated])`` gets the envelope with a typed
``data``; ``OrderCreated | OrderCancelled`` or a base class of bound classes
take any of them (the event's type picks the class). A handler without such an
annotation is left as it is and gets plain events. What does not fit is a
:class:`~eventbus.ValidationError`, which the worker never retries: the event
goes to the group's dead letter at once with the field errors as the reason.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from .._envelope import Event, with_data
from .._errors import ConfigError, ValidationError
from .._routing import matches
from ._models import ModelErrors, compile_call
from ._registry import REGISTRY, VERSION_ATTRIBUTE, Contract, Registry

__all__ = ["typed_handler"]


def _first_parameter_hint(handler: Callable[..., Any], localns: Mapping[str, Any] | None) -> Any:
    target = handler
    if not (inspect.isfunction(handler) or inspect.ismethod(handler)):
        call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects
        if call is None:
            return None
        target = call
    try:
        params = [
            p
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        return None
    if not params:
        return None
    try:
        hints = typing.get_type_hints(target, localns=dict(localns) if localns else None)
    except Exception as exc:  # an annotation that does not resolve
        raise ConfigError(
            f"cannot read the annotations of handler {_name(handler)}: {exc}"
        ) from None
    return hints.get(params[0].name)


def _name(handler: Any) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"


def _is_sub(cls: type, base: type) -> bool:
    try:
        return issubclass(cls, base)
    except TypeError:  # TypedDicts refuse class checks: only the class itself matches
        return cls is base


def _is_union(hint: Any) -> bool:
    return get_origin(hint) is Union or isinstance(hint, types.UnionType)


_PLAIN = (Any, object, dict, Mapping, None, type(None), str, bytes, list)


class _Accepts:
    """Which contracts a handler's annotation takes (classes, or subclasses of bases)."""

    def __init__(self, classes: Sequence[type], registry: Registry) -> None:
        self.classes = tuple(classes)
        self.registry = registry

    def contracts(self) -> list[Contract]:
        return [c for c in self.registry.contracts() if self.takes(c)]

    def takes(self, contract: Contract) -> bool:
        return any(_is_sub(contract.cls, c) for c in self.classes)

    def describe(self) -> str:
        return " | ".join(c.__name__ for c in self.classes)


def typed_handler(
    handler: Callable[..., Any],
    patterns: Sequence[str],
    registry: Registry | None = None,
    localns: Mapping[str, Any] | None = None,
) -> Callable[..., Any] | None:
    """A wrapper that hands ``handler`` its model, or None if it takes plain events.

    Checked here, at subscribe time: the annotation names bound classes (or bases
    of bound classes), and each of their types matches one of ``patterns``.
    ``localns`` resolves string annotations that name classes local to a function
    (``from __future__ import annotations``); the bus passes its caller's locals.
    """
    reg = registry or REGISTRY
    hint = _first_parameter_hint(handler, localns)
    envelope = False
    if get_origin(hint) is Event:
        args = get_args(hint)
        hint = args[0] if args else None
        envelope = True
    elif hint is Event:
        return None
    if hint in _PLAIN or get_origin(hint) in (dict, Mapping, list):
        return None
    members = get_args(hint) if _is_union(hint) else (hint,)
    classes = [m for m in members if m is not type(None)]
    if not all(isinstance(c, type) for c in classes):
        return None  # e.g. Event[int] or a Literal: nothing to convert
    accepts = _Accepts(classes, reg)
    found = accepts.contracts()
    for cls in classes:
        if not any(_is_sub(c.cls, cls) for c in found):
            raise ConfigError(
                f"handler {_name(handler)} takes {cls.__name__}, which is bound to no event "
                f"type: decorate it with @event_type('...') (eventbus.contracts), or annotate "
                "the handler with Event for plain events"
            )
    for c in found:
        if not any(matches(p, c.type) for p in patterns):
            raise ConfigError(
                f"handler {_name(handler)} takes {c.cls.__name__} ({c.type!r}), but its "
                f"pattern(s) {', '.join(map(repr, patterns))} never match {c.type!r}"
            )
    convert = _Converter(accepts, reg, _name(handler))
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):

        @functools.wraps(handler)
        async def typed_async(event: Event[Any]) -> Any:
            model = convert(event)
            return await handler(with_data(event, model) if envelope else model)

        return typed_async

    if envelope or len(found) != 1 or found[0].version != 1 or found[0].cls is not classes[0]:

        @functools.wraps(handler)
        def typed(event: Event[Any]) -> Any:
            model = convert(event)
            return handler(with_data(event, model) if envelope else model)

        return typed

    # One type, version 1, the model alone: the common case gets a single frame.
    only, contract, load = found[0].type, found[0], found[0].load

    def invalid(event: Event[Any]) -> Any:
        """The inline check refused ``event``: the loader names every problem (or, should
        it find the data fits after all, returns the model)."""
        try:
            return load(event.data)
        except ModelErrors as exc:
            raise _invalid(event, 1, contract, exc) from None

    inline = compile_call(
        contract.cls, contract.unknown == "reject", only, handler, convert, invalid
    )
    if inline is not None:
        return functools.wraps(handler)(inline)

    @functools.wraps(handler)
    def typed_one(event: Event[Any]) -> Any:
        if event.type == only and not event.extensions:
            try:
                model = load(event.data)
            except ModelErrors as exc:
                raise _invalid(event, 1, contract, exc) from None
        else:
            model = convert(event)
        return handler(model)

    return typed_one


class _Converter:
    """``event -> model`` for one handler: the contract of each event type it meets is
    looked up and checked once, then cached with its compiled loader."""

    def __init__(self, accepts: _Accepts, registry: Registry, handler: str) -> None:
        self.accepts = accepts
        self.registry = registry
        self.handler = handler
        self.known: dict[str, Contract] = {}

    def _contract(self, event_type: str) -> Contract:
        contract = self.registry.for_type(event_type)
        if contract is None or not self.accepts.takes(contract):
            raise ValidationError(
                f"{event_type!r} is not an event type {self.handler} takes "
                f"({self.accepts.describe()})"
            )
        self.known[event_type] = contract
        return contract

    def __call__(self, event: Event[Any]) -> Any:
        contract = self.known.get(event.type) or self._contract(event.type)
        ext = event.extensions
        if contract.version == 1 and not (ext and VERSION_ATTRIBUTE in ext):
            try:
                return contract.load(event.data)
            except ModelErrors as exc:
                raise _invalid(event, 1, contract, exc) from None
        return self._versioned(event, contract)

    def _versioned(self, event: Event[Any], contract: Contract) -> Any:
        raw = event.extensions.get(VERSION_ATTRIBUTE) if event.extensions else None
        try:
            version = int(raw) if raw is not None else 1
            if version < 1:
                raise ValueError(raw)
        except ValueError:
            raise ValidationError(
                f"{event.type!r}: {VERSION_ATTRIBUTE} {raw!r} is not a version number"
            ) from None
        try:
            data = event.data
            if version < contract.version:
                data = self.registry.upcast(event.type, version, contract.version, data)
            return contract.load(data)
        except ModelErrors as exc:
            raise _invalid(event, version, contract, exc) from None


def _invalid(event: Event[Any], version: int, contract: Contract, exc: ModelErrors) -> Exception:
    shown = "; ".join(f"{p or '$'}: {m}" for p, m in exc.problems)
    return ValidationError(
        f"{event.type!r} (version {version}) does not fit {contract.cls.__name__}: {shown}",
        problems=exc.problems,
    )
