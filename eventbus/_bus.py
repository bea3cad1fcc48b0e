"""The :class:`EventBus`: publish events, subscribe handlers, run workers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, overload

from ._config import BusConfig, load_config, redact
from ._envelope import (
    Event,
    Message,
    default_source,
    encode,
    make_event,
    new_event_id,
    too_large,
)
from ._errors import BrokerError, ClosedError, ConfigError, EncodeError
from ._hooks import Hooks, Middleware, Outcome
from ._plugins import create_adapter
from ._routing import validate_pattern
from ._structured import check_content_mode, to_structured
from ._worker import Subscription, Worker
from .adapter._contract import Adapter
from .contracts import model_event, typed_handler
from .resilience._breaker import CircuitBreaker
from .resilience._inbox import Inbox, open_inbox
from .resilience._publisher import Publisher
from .resilience._retry import RetryPolicy

__all__ = ["EventBus", "PublishResult"]

log = logging.getLogger("eventbus")

H = TypeVar("H", bound=Callable[..., Any])  # Event -> Any, or a model -> Any (contracts)
R = TypeVar("R")

# A batch this large is encoded with the cyclic GC paused (see _bulk).
BULK = 1_000


def _bulk(n: int, build: Callable[..., R], *args: Any) -> R:
    """``build(*args)``, with CPython's cyclic GC paused when it makes ``n >= BULK`` objects.

    Every event of a batch gets a ``Message`` and a ``PublishResult`` that live
    until the call returns. Each allocation counts toward the GC's thresholds,
    and a collection walks everything still alive: a 50,000-event batch paid
    three full collections over its own objects, 12-16 % of the call (on
    Kafka, where the rest is cheap). None of these objects makes a cycle, so
    pausing the GC while they are built only defers other threads' cycles by
    that long (milliseconds). The network send is never inside a pause. A GC
    someone else disabled stays disabled.
    """
    if n < BULK or not gc.isenabled():
        return build(*args)
    gc.disable()
    try:
        return build(*args)
    finally:
        gc.enable()


def _results(events: Sequence[Event], outcome: str) -> list[PublishResult]:
    return [PublishResult(e, outcome) for e in events]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What :meth:`EventBus.publish` did with an event.

    ``outcome`` is ``"sent"`` when the broker confirmed it, or ``"outbox"`` when
    the broker could not take it (circuit breaker open, or retries spent) and it
    was written durably to the local outbox, to be sent in order when the
    broker is back (``docs/resilience.md``). Either way the event is not lost.
    """

    event: Event
    outcome: str = "sent"

    @property
    def id(self) -> str:
        return self.event.id


class EventBus:
    """Publish events and run handlers on one broker.

    ``EventBus()`` reads the config file (``eventbus.toml`` or
    ``[tool.eventbus]``; see :func:`eventbus.load_config`) and falls back to the
    embedded SQLite broker. ``EventBus("amqp://...")`` picks the adapter from
    the URL; ``EventBus(adapter)`` uses an adapter instance (share one
    ``MemoryAdapter`` between buses to share an in-memory broker).

    Thread safety: ``publish`` may be called from any thread; ``apublish`` from
    asyncio code without blocking the loop. ``subscribe`` before ``run``.

    Resilience: publishing retries with backoff, then a circuit breaker and
    the local outbox take over (the ``[publish]`` config table); ``inbox`` (an
    :class:`~eventbus.Inbox` or a URL, else the ``worker.inbox`` config key)
    makes every group drop events it already handled.
    """

    def __init__(
        self,
        broker: Adapter | str | None = None,
        *,
        source: str | None = None,
        retry: RetryPolicy | None = None,
        config: BusConfig | None = None,
        options: Mapping[str, Any] | None = None,
        inbox: Inbox | str | None = None,
        content_mode: str | None = None,
    ) -> None:
        if config is None:
            config = load_config() if broker is None else BusConfig()
        self.config = config
        if isinstance(broker, Adapter):
            self.adapter = broker
        elif isinstance(broker, str):
            self.adapter = create_adapter(None, broker, options or config.options)
        else:
            self.adapter = create_adapter(config.broker, config.url, options or config.options)
        self.source = source or config.source or default_source()
        self.retry = retry or config.retry
        self._subs: list[Subscription] = []
        self._undeclared = False  # subscriptions added since the last declare()
        self._worker: Worker | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._max_size = self.adapter.capabilities.max_message_size
        if isinstance(broker, Adapter):
            destination = f"{type(broker).__module__}.{type(broker).__qualname__}"
        else:
            url = broker if isinstance(broker, str) else (config.url or "")
            destination = redact(url) or str(config.broker)
        self._publisher = Publisher(self.adapter, config.publish_settings, destination)
        self._inbox_spec: Inbox | str | None = inbox if inbox is not None else config.inbox
        self._inbox: Inbox | None = inbox if isinstance(inbox, Inbox) else None
        #: Middleware, publish hooks and outcome callbacks (``use``, ``before_publish``,
        #: ``on_outcome``; ``docs/observability.md``).
        self.hooks = Hooks()
        #: ``"binary"`` (attributes in broker headers) or ``"structured"`` (one
        #: ``application/cloudevents+json`` body); ``docs/interop.md``.
        self.content_mode = check_content_mode(content_mode or config.content_mode)

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, profile: str | None = None
    ) -> EventBus:
        """A bus built from a config file (see :func:`eventbus.load_config`)."""
        return cls(config=load_config(path, profile))

    # -- publishing -----------------------------------------------------------
    def event(
        self,
        type: str | object,
        data: Any = None,
        *,
        key: str | None = None,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        datacontenttype: str | None = None,
        dataschema: str | None = None,
        correlationid: str | None = None,
        causationid: str | None = None,
        traceparent: str | None = None,
        extensions: Mapping[str, str] | None = None,
    ) -> Event:
        """Build an event with this bus's ``source`` (for :meth:`publish_many`).

        ``type`` is the event type, or a model whose class is bound to one
        (``@event_type``, see ``eventbus.contracts``): then ``data`` comes from
        the model, checked against its class (:class:`EncodeError` if it does
        not fit), and ``dataschema`` and the ``dataversion`` extension from its
        contract.
        """
        if not isinstance(type, str):
            if data is not None:
                raise EncodeError("publish(model) takes no data: the model is the data")
            return model_event(
                type,
                self.source,
                key=key,
                subject=subject,
                id=id,
                time=time,
                datacontenttype=datacontenttype,
                dataschema=dataschema,
                correlationid=correlationid,
                causationid=causationid,
                traceparent=traceparent,
                extensions=extensions,
            )
        return make_event(
            type,
            data,
            id or new_event_id(),
            self.source,
            time or datetime.now(timezone.utc),
            datacontenttype,
            dataschema,
            subject,
            correlationid,
            causationid,
            traceparent,
            key,
            dict(extensions) if extensions else None,
        )

    def publish(self, type: str | object, data: Any = None, **attributes: Any) -> PublishResult:
        """Publish one event; returns once the broker has it.

        ``bus.publish("order.created", {"id": 1})``, or a model of a bound class:
        ``bus.publish(OrderCreated(id=1))``. ``attributes`` are those of
        :meth:`event` (``key``, ``subject``,
        ``correlationid``, ...). Raises :class:`EncodeError` (nothing sent) for
        data that can't be serialised, :class:`BrokerError` if the broker
        didn't confirm it.
        """
        return self.publish_many([self.event(type, data, **attributes)])[0]

    def publish_many(self, events: Iterable[Event | object]) -> list[PublishResult]:
        """Publish many events (or models of bound classes) in one pipelined batch; all or error.

        Every event is encoded before anything is sent, so an event that
        cannot be serialised means none of them is sent.
        """
        hooks = self.hooks
        batch = self._events(events)
        if hooks.publish:
            batch = [hooks.prepare(e) for e in batch]
        n = len(batch)
        messages = _bulk(n, hooks.encoding, batch, self._encode)
        outcome = hooks.sending(batch, self._send, messages)
        return _bulk(n, _results, batch, outcome)

    def _events(self, items: Iterable[Event | object]) -> list[Event]:
        """``items`` as events: models of bound classes become events (the list is
        only copied when one does)."""
        given: list[Any] = items if isinstance(items, list) else list(items)
        out = given
        for i, item in enumerate(given):
            if type(item) is not Event and not isinstance(item, Event):
                if out is given:
                    out = list(given)
                out[i] = self.event(item)
        return out

    def _encode(self, event: Event) -> Message:
        if not event.source:
            event = event.replace(source=self.source)
        limit = self._max_size
        if self.content_mode != "structured":
            return encode(event, max_size=limit)
        message: Message = to_structured(encode(event))
        if limit is not None and not message.fits(limit):
            raise too_large(event, message, limit)
        return message

    def _send(self, messages: Sequence[Message]) -> str:
        if self._closed:
            raise ClosedError("the bus is closed")
        if self._undeclared:
            # This bus's own groups exist before its first event goes out, so a
            # process that publishes and then runs its handlers loses nothing.
            try:
                self.declare()
            except BrokerError as exc:  # publishing still goes on (retry / outbox)
                log.warning("could not declare this bus's groups before publishing: %s", exc)
        return self._publisher.send(messages)

    async def apublish(
        self, type: str | object, data: Any = None, **attributes: Any
    ) -> PublishResult:
        """:meth:`publish` for asyncio code: the loop keeps running while the broker confirms."""
        hooks = self.hooks
        event = hooks.prepare(self.event(type, data, **attributes))
        messages = hooks.encoding([event], self._encode)  # errors surface here, before any I/O
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(
            self._executor(), hooks.sending, [event], self._send, messages
        )
        return PublishResult(event, outcome)

    async def apublish_many(self, events: Iterable[Event | object]) -> list[PublishResult]:
        """:meth:`publish_many` for asyncio code."""
        hooks = self.hooks
        batch = [hooks.prepare(e) for e in self._events(events)]
        n = len(batch)
        messages = _bulk(n, hooks.encoding, batch, self._encode)
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(
            self._executor(), hooks.sending, batch, self._send, messages
        )
        return _bulk(n, _results, batch, outcome)

    # -- hooks ---------------------------------------------------------------------
    def before_publish(self, hook: Callable[[Event], Event]) -> Callable[[Event], Event]:
        """Run ``hook(event) -> event`` on every event before it is encoded (a decorator too)."""
        self.hooks.publish.append(hook)
        return hook

    def use(self, middleware: Middleware) -> Middleware:
        """Wrap every handler call in ``middleware(event, call_next)`` (a decorator too).

        The first registered is the outermost. It runs on the consumer thread,
        calls ``call_next(event)`` to go on, and may raise to ask for a retry.
        Register before :meth:`start`.
        """
        self.hooks.middleware.append(middleware)
        return middleware

    def on_outcome(self, callback: Callable[[Outcome], None]) -> Callable[[Outcome], None]:
        """Call ``callback(outcome)`` for what happens to each event (see :class:`Outcome`)."""
        self.hooks.outcome.append(callback)
        return callback

    @property
    def breaker(self) -> CircuitBreaker:
        """The publish circuit breaker (its ``state`` tells if the broker is shunned)."""
        return self._publisher.breaker

    def outbox_pending(self) -> int:
        """Events of this bus's broker waiting in the local outbox."""
        return self._publisher.pending()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait up to ``timeout`` seconds for the outbox to drain; True once it is empty."""
        return self._publisher.flush(timeout)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="eventbus-publish"
                )
            return self._pool

    # -- subscribing -------------------------------------------------------------
    @overload
    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: H,
        *,
        group: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> H: ...
    @overload
    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: None = None,
        *,
        group: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> Callable[[H], H]: ...

    def subscribe(
        self,
        pattern: str | Sequence[str],
        handler: H | None = None,
        *,
        group: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ) -> H | Callable[[H], H]:
        """Run ``handler`` for every event whose type matches ``pattern``.

        Use as ``@bus.subscribe("order.*", group="billing")``. Every group whose
        pattern matches gets each event; members of one group (the same group
        run in several workers or threads) share them. ``group`` defaults to
        the handler's qualified name. A handler acks by returning and asks for
        a retry by raising; after ``retry.max_attempts`` the event goes to the
        group's dead letter with the error as reason.

        A handler whose first parameter is annotated with a model class bound to
        an event type (``def invoice(order: OrderCreated)``, or
        ``event: Event[OrderCreated]`` for the envelope too) gets that model,
        checked; data that does not fit is dead-lettered at once
        (``docs/contracts.md``). Unannotated handlers get plain events.
        """
        patterns = (pattern,) if isinstance(pattern, str) else tuple(pattern)
        if not patterns:
            raise ConfigError("subscribe needs at least one pattern")
        # the caller's locals resolve string annotations naming classes defined there
        caller = sys._getframe(1).f_locals
        for p in patterns:
            validate_pattern(p)

        def register(h: H) -> H:
            if not callable(h):
                raise TypeError(f"handler must be callable, not {type(h).__name__}")
            name = (
                group or f"{getattr(h, '__module__', 'handler')}.{getattr(h, '__qualname__', '')}"
            )
            sub = Subscription(
                group=name,
                patterns=patterns,
                handler=typed_handler(h, patterns, localns=caller) or h,
                retry=retry or self.retry,
                timeout=timeout if timeout is not None else self.config.timeout,
                concurrency=concurrency or self.config.concurrency,
            )
            for other in self._subs:
                if other.group == sub.group and other.retry != sub.retry:
                    raise ConfigError(
                        f"group {sub.group!r} already has another retry policy; "
                        "give the handlers of one group the same policy"
                    )
            self._subs.append(sub)
            self._undeclared = True
            return h

        return register(handler) if handler is not None else register

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(self._subs)

    def health(self) -> dict[str, Any]:
        """What this bus's worker can tell of its health, for probes and ``eventbus check``.

        ``running``: the worker is consuming; ``down``: the groups that cannot
        receive now (their broker is unreachable), each with the seconds since
        its first failed receive. An empty ``down`` while running: every group
        receives.
        """
        worker = self._worker
        now = time.monotonic()
        down = dict(worker.down) if worker is not None else {}
        return {
            "running": worker is not None and not worker.stopping,
            "down": {g: round(now - since, 1) for g, since in down.items()},
        }

    def declare(self) -> None:
        """Create every subscribed group on the broker, so events wait for them."""
        groups: dict[str, list[str]] = {}
        for s in self._subs:
            groups.setdefault(s.group, []).extend(s.patterns)
        for name, patterns in groups.items():
            self.adapter.declare(name, list(dict.fromkeys(patterns)))
        self._undeclared = False

    # -- running -------------------------------------------------------------------
    def start(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the worker threads and return (see :meth:`run` for blocking)."""
        with self._lock:
            if self._closed:
                raise ClosedError("the bus is closed")
            if self._worker is not None:
                return
            if not self._subs:
                raise ConfigError("no handlers subscribed; use @bus.subscribe(...) first")
            if self._inbox is None and isinstance(self._inbox_spec, str):
                self._inbox = open_inbox(self._inbox_spec)
            self._worker = Worker(
                self.adapter,
                self._subs,
                prefetch=self.config.prefetch,
                poll_interval=self.config.poll_interval,
                loop=loop,
                inbox=self._inbox,
                inbox_lease=self.config.inbox_lease,
                hooks=self.hooks,
            )
        self._worker.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the workers: finish the event in hand, hand the rest back. Idempotent.

        Called from a handler, it only asks the workers to stop (a handler
        cannot wait for its own thread); ``run``/``run_async`` then finish.
        """
        worker = self._worker
        if worker is None:
            return
        worker.request_stop()
        if worker.owns_current_thread():
            return
        worker.stop(timeout)
        with self._lock:
            if self._worker is worker:
                self._worker = None

    def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run the handlers until :meth:`stop`, SIGINT or SIGTERM; then stop gracefully."""
        asked = threading.Event()

        def on_signal(*_: Any) -> None:
            asked.set()
            if self._worker is not None:
                self._worker.request_stop()

        # Installed before the workers start: a signal that comes while the
        # first events are handled must stop them gracefully, not kill the process.
        restore: dict[signal.Signals, Any] = {}
        if install_signal_handlers and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                restore[sig] = signal.signal(sig, on_signal)
        try:
            self.start()
            worker = self._worker
            assert worker is not None
            if asked.is_set():
                worker.request_stop()
            while not worker.wait(0.5):
                pass
        finally:
            for sig, old in restore.items():
                signal.signal(sig, old)
            self.stop()

    async def run_async(self) -> None:
        """Run the handlers in an asyncio app until cancelled or :meth:`stop`.

        ``async def`` handlers run on the calling loop; consumer I/O stays on
        worker threads, so the loop is never blocked by the broker.
        """
        loop = asyncio.get_running_loop()
        self.start(loop=loop)
        worker = self._worker
        assert worker is not None
        try:
            while not worker.stopping:
                await asyncio.sleep(0.1)
        finally:
            await loop.run_in_executor(None, self.stop)

    # -- closing -----------------------------------------------------------------
    def close(self) -> None:
        """Stop workers, flush what was published, close the adapter. Idempotent.

        Events waiting in the local outbox get up to ``publish.close_timeout``
        seconds to reach the broker; what is left stays in the outbox file and
        is sent by the next bus that opens it.
        """
        if self._closed:
            return
        self.stop()
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        try:
            self._publisher.close()
        finally:
            if self._inbox is not None and self._inbox is not self._inbox_spec:
                self._inbox.close()  # opened from a URL by this bus
            self.adapter.close()

    async def aclose(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self) -> EventBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> EventBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<EventBus {type(self.adapter).__name__} source={self.source!r}>"
