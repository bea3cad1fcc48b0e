"""Hooks for observability and cross-cutting code: middleware, publish hooks, outcomes.

Three plain-callable hook kinds, registered on a bus (``docs/observability.md``):

- **publish hooks** ``hook(event) -> event`` run on every event before it is
  encoded (``bus.before_publish(hook)``): add a ``traceparent``, a correlation id;
- **middleware** ``middleware(event, call_next) -> None`` wraps every handler
  call on the consumer thread (``bus.use(middleware)``); it calls
  ``call_next(event)`` to run the handler (or the next middleware) and may raise
  to ask for a retry like a handler. :func:`current_handler` tells it which
  group and handler it wraps;
- **outcome callbacks** ``callback(outcome)`` hear what happened to each event
  (``bus.on_outcome(callback)``): published / outbox / publish_failed on the
  publishing side, delivered / acked / retried / dead_lettered on the consuming
  side, with durations; metrics are built on these. A callback that raises is
  logged and ignored: observing never changes what the bus does.

With nothing registered each hook point costs one attribute check.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._envelope import Delivery, Event, Message

__all__ = [
    "HandlerInfo",
    "Hooks",
    "Middleware",
    "Outcome",
    "adapter_name",
    "current_handler",
    "messaging_system",
]

log = logging.getLogger("eventbus.hooks")

PublishHook = Callable[[Event], Event]
Middleware = Callable[[Event, Callable[[Event], None]], None]

#: Outcome kinds, publishing side then consuming side.
PUBLISHED = "published"  # the broker confirmed it
OUTBOX = "outbox"  # kept in the local outbox, to be sent when the broker is back
PUBLISH_FAILED = "publish_failed"  # raised to the caller (encoding, size, broker)
DELIVERED = "delivered"  # a group's member received it and starts its handlers
ACKED = "acked"  # the handlers returned; the event is acked
RETRIED = "retried"  # a handler raised; the event comes back later
DEAD_LETTERED = "dead_lettered"  # past its attempts, undecodable, or no handler
KINDS = (PUBLISHED, OUTBOX, PUBLISH_FAILED, DELIVERED, ACKED, RETRIED, DEAD_LETTERED)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One thing that happened to one event.

    ``kind`` is one of ``published``, ``outbox``, ``publish_failed``,
    ``delivered``, ``acked``, ``retried``, ``dead_lettered``. ``event`` is None
    only for a delivery that could not be decoded. ``group`` is None on the
    publishing side. ``duration`` is seconds: the publish call (publishing side)
    or the group's handlers on this delivery (acked / retried / dead_lettered).
    ``reason`` says why an event was retried, dead-lettered or not published.
    """

    kind: str
    event: Event | None
    topic: str
    group: str | None = None
    attempt: int = 1
    duration: float | None = None
    reason: str = ""
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """What a middleware (or a log filter) can know about the call in progress."""

    group: str
    handler: str
    event: Event


class _NewInfo:
    """The very slots of :class:`HandlerInfo`, without its frozen ``__setattr__``."""

    __slots__ = HandlerInfo.__slots__


def _info(group: str, handler: str, event: Event) -> HandlerInfo:
    """``HandlerInfo(group, handler, event)`` the way ``make_event`` makes an ``Event``:
    plain slot stores, then ``__class__`` becomes HandlerInfo (the reason is there)."""
    info: Any = object.__new__(_NewInfo)
    info.group = group
    info.handler = handler
    info.event = event
    info.__class__ = HandlerInfo
    return info  # type: ignore[no-any-return]


# (group, handler, event) of the call in progress: a tuple is the cheapest thing to
# set per event; current_handler() makes the HandlerInfo only when someone asks.
_current: contextvars.ContextVar[tuple[str, str, Event] | None] = contextvars.ContextVar(
    "eventbus_handler", default=None
)
_publishing: contextvars.ContextVar[Sequence[Event] | None] = contextvars.ContextVar(
    "eventbus_publishing", default=None
)


def current_handler() -> HandlerInfo | None:
    """The group, handler and event being handled on this thread, or None."""
    call = _current.get()
    return None if call is None else _info(*call)


def current_events() -> Sequence[Event]:
    """The event being handled, else the events being published, on this thread."""
    call = _current.get()
    if call is not None:
        return (call[2],)
    return _publishing.get() or ()


class Hooks:
    """The hooks of one bus. Register before ``start``; lists are read without locks."""

    def __init__(self) -> None:
        self.publish: list[PublishHook] = []
        self.middleware: list[Middleware] = []
        self.outcome: list[Callable[[Outcome], None]] = []

    # -- publishing ----------------------------------------------------------------
    def prepare(self, event: Event) -> Event:
        """``event`` through every publish hook, in registration order."""
        for hook in self.publish:
            event = hook(event)
            if not isinstance(event, Event):
                raise TypeError(
                    f"publish hook {hook!r} returned {type(event).__name__}, not an Event"
                )
        return event

    def encoding(
        self, events: Sequence[Event], encode: Callable[[Event], Message]
    ) -> list[Message]:
        """Encode ``events``; an error is reported as ``publish_failed`` and raised."""
        if not self.outcome:
            return [encode(e) for e in events]
        try:
            return [encode(e) for e in events]
        except Exception as exc:
            self._published(events, PUBLISH_FAILED, None, exc)
            raise

    def sending(
        self,
        events: Sequence[Event],
        send: Callable[[Sequence[Message]], str],
        messages: Sequence[Message],
    ) -> str:
        """``send(messages)``, reported as ``published`` / ``outbox`` / ``publish_failed``."""
        if not self.outcome:
            return send(messages)
        token = _publishing.set(events)
        started = time.monotonic()
        try:
            result = send(messages)
        except Exception as exc:
            self._published(events, PUBLISH_FAILED, time.monotonic() - started, exc)
            raise
        finally:
            _publishing.reset(token)
        kind = OUTBOX if result == OUTBOX else PUBLISHED
        self._published(events, kind, time.monotonic() - started, None)
        return result

    def _published(
        self,
        events: Sequence[Event],
        kind: str,
        duration: float | None,
        error: BaseException | None,
    ) -> None:
        reason = "" if error is None else f"{type(error).__name__}: {error}"
        for e in events:
            self.emit(Outcome(kind, e, e.type, duration=duration, reason=reason, error=error))

    # -- consuming (the worker's pipeline emits the rest: eventbus._worker) -----------
    def undecodable(self, group: str, delivery: Delivery, reason: str) -> None:
        """Report a delivery that could not be decoded (it is dead-lettered)."""
        if self.outcome:
            self.emit(
                Outcome(
                    DEAD_LETTERED,
                    None,
                    delivery.message.topic,
                    group,
                    delivery.attempt,
                    0.0,
                    reason,
                )
            )

    # -- reporting -----------------------------------------------------------------
    def emit(self, outcome: Outcome) -> None:
        for callback in self.outcome:
            try:
                callback(outcome)
            except Exception as exc:  # observing must never change what the bus does
                log.warning("outcome callback %r failed: %s: %s", callback, type(exc).__name__, exc)


# Our adapter names -> the messaging.system values of the OpenTelemetry conventions.
_SYSTEMS = {"sqs": "aws_sqs", "azure_servicebus": "servicebus"}


def adapter_name(adapter: object) -> str:
    """The adapter's plugin name from its module (``rabbitmq``, ``memory``...), for reports."""
    module = type(adapter).__module__
    name = module.split(".")[0]
    if name == "eventbus":  # the embedded brokers: eventbus.brokers.<name>[._module]
        parts = module.split(".")
        return parts[2] if len(parts) > 2 and parts[1] == "brokers" else parts[-1].lstrip("_")
    return name[len("eventbus_") :] if name.startswith("eventbus_") else name


def messaging_system(adapter: object) -> str:
    """``messaging.system`` for ``adapter`` (``rabbitmq``, ``kafka``, ``aws_sqs``, ...)."""
    name = adapter_name(adapter)
    return _SYSTEMS.get(name, name)
