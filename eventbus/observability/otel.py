"""OpenTelemetry tracing and metrics for an :class:`~eventbus.EventBus`.

Optional: ``pip install 'eventbus[otel]'`` (``opentelemetry-api`` and, to
export, ``opentelemetry-sdk``). Nothing in eventbus imports this module; a
program opts in::

    from eventbus.observability.otel import instrument
    instrument(bus)                     # global tracer and meter providers

Tracing (messaging semantic conventions):

- every published event gets a ``publish <type>`` span (kind PRODUCER), a
  child of the current span, ended when the broker confirmed it (or it went
  to the outbox, or failed); its context travels in the event's
  ``traceparent`` (and ``tracestate``) attribute, the CloudEvents
  distributed-tracing extension, so it crosses every broker;
- every handler call runs in a ``process <type>`` span (kind CONSUMER) whose
  parent is that publish span, with a link to it as well; the handler's own
  spans (and events it publishes) are its children. A handler that raises
  marks the span as an error, with the exception recorded.

Metrics (instrument names follow the messaging conventions where they exist):

- ``messaging.client.sent.messages`` (counter): events published, with
  ``eventbus.publish.outcome`` = sent / outbox / failed;
- ``messaging.client.operation.duration`` (histogram, s): a publish call;
- ``messaging.client.consumed.messages`` (counter): events delivered to a member;
- ``eventbus.messages.acked`` / ``.retried`` / ``.dead_lettered`` (counters);
- ``messaging.process.duration`` (histogram, s): a group's handlers on one event,
  with ``eventbus.outcome``;
- ``eventbus.outbox.depth`` (gauge): events waiting in the local outbox;
- ``eventbus.circuit.state`` (gauge): 0 closed, 1 half-open, 2 open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from .._bus import EventBus
from .._envelope import Event
from .._hooks import (
    ACKED,
    DEAD_LETTERED,
    DELIVERED,
    OUTBOX,
    PUBLISH_FAILED,
    PUBLISHED,
    RETRIED,
    Outcome,
    current_handler,
    messaging_system,
)

__all__ = ["Instrumentation", "instrument"]

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics as otel_metrics
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "eventbus.observability.otel needs OpenTelemetry, which is not installed: "
        "pip install 'eventbus[otel]' (opentelemetry-api, opentelemetry-sdk)"
    ) from exc

_SCOPE = "eventbus"
_CIRCUIT = {"closed": 0, "half-open": 1, "open": 2}
_MAX_PENDING = 10_000  # publish spans waiting for their outcome (a bound, not a target)


def _version() -> str:
    from .. import __version__

    return __version__


class Instrumentation:
    """The hooks :func:`instrument` put on a bus; :meth:`uninstrument` takes them off."""

    def __init__(
        self,
        bus: EventBus,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        *,
        tracing: bool = True,
        metrics: bool = True,
    ) -> None:
        self.bus = bus
        self.system = messaging_system(bus.adapter)
        self._propagator = TraceContextTextMapPropagator()
        self._pending: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._active = True
        self._tracer = (
            trace.get_tracer(_SCOPE, _version(), tracer_provider=tracer_provider)
            if tracing
            else None
        )
        self._meter = (
            otel_metrics.get_meter(_SCOPE, _version(), meter_provider=meter_provider)
            if metrics
            else None
        )
        if self._meter is not None:
            m = self._meter
            self._sent = m.create_counter(
                "messaging.client.sent.messages", "{message}", "Events published"
            )
            self._publish_duration = m.create_histogram(
                "messaging.client.operation.duration", "s", "Seconds a publish call took"
            )
            self._consumed = m.create_counter(
                "messaging.client.consumed.messages", "{message}", "Events delivered to a member"
            )
            self._settled = {
                ACKED: m.create_counter(
                    "eventbus.messages.acked", "{message}", "Events whose handlers returned"
                ),
                RETRIED: m.create_counter(
                    "eventbus.messages.retried",
                    "{message}",
                    "Events a handler failed on, to come back",
                ),
                DEAD_LETTERED: m.create_counter(
                    "eventbus.messages.dead_lettered", "{message}", "Events moved to a dead letter"
                ),
            }
            self._process_duration = m.create_histogram(
                "messaging.process.duration", "s", "Seconds a group's handlers took on an event"
            )
            m.create_observable_gauge(
                "eventbus.outbox.depth",
                [self._observe_outbox],
                "{message}",
                "Events waiting in the local outbox",
            )
            m.create_observable_gauge(
                "eventbus.circuit.state",
                [self._observe_circuit],
                "1",
                "Publish circuit breaker: 0 closed, 1 half-open, 2 open",
            )
        hooks = bus.hooks
        if self._tracer is not None:
            hooks.publish.append(self._before_publish)
            hooks.middleware.insert(0, self._process)  # outermost: spans cover other middleware
        hooks.outcome.append(self._on_outcome)

    def uninstrument(self) -> None:
        """Remove this instrumentation's hooks from the bus (gauges report nothing after)."""
        self._active = False
        hooks = self.bus.hooks
        hooks.publish[:] = [h for h in hooks.publish if h != self._before_publish]
        hooks.middleware[:] = [m for m in hooks.middleware if m != self._process]
        hooks.outcome[:] = [c for c in hooks.outcome if c != self._on_outcome]

    # -- tracing ------------------------------------------------------------------------
    def _carrier(self, event: Event) -> dict[str, str]:
        carrier = {"traceparent": event.traceparent} if event.traceparent else {}
        state = event.extensions.get("tracestate")
        if carrier and state:
            carrier["tracestate"] = state
        return carrier

    def _attributes(self, event: Event, operation: str, kind: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.name": operation,
            "messaging.operation.type": kind,
            "messaging.destination.name": event.type,
            "messaging.message.id": event.id,
        }
        if event.correlationid:
            attrs["messaging.message.conversation_id"] = event.correlationid
        if event.key is not None:
            attrs["eventbus.message.key"] = event.key
            if self.system == "kafka":
                attrs["messaging.kafka.message.key"] = event.key
        if self.system == "rabbitmq":
            attrs["messaging.rabbitmq.destination.routing_key"] = event.type
        return attrs

    def _before_publish(self, event: Event) -> Event:
        assert self._tracer is not None
        carrier = self._carrier(event)
        parent = self._propagator.extract(carrier) if carrier else None  # else: current span
        span = self._tracer.start_span(
            f"publish {event.type}",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes=self._attributes(event, "publish", "send"),
        )
        out: dict[str, str] = {}
        self._propagator.inject(out, context=trace.set_span_in_context(span))
        extensions = dict(event.extensions)
        if out.get("tracestate"):
            extensions["tracestate"] = out["tracestate"]
        else:
            extensions.pop("tracestate", None)
        with self._lock:
            if len(self._pending) >= _MAX_PENDING:  # outcomes that never came (a lost call)
                for spans in self._pending.values():
                    for s in spans:
                        s.end()
                self._pending.clear()
            self._pending.setdefault(event.id, []).append(span)
        return event.replace(
            traceparent=out.get("traceparent", event.traceparent), extensions=extensions
        )

    def _end_publish(self, outcome: Outcome) -> None:
        event = outcome.event
        if event is None:
            return
        with self._lock:
            spans = self._pending.get(event.id)
            span = spans.pop(0) if spans else None
            if spans is not None and not spans:
                del self._pending[event.id]
        if span is None:
            return
        span.set_attribute("eventbus.publish.outcome", _publish_outcome(outcome.kind))
        if outcome.error is not None:
            span.set_attribute("error.type", _error_type(outcome.error))
            span.record_exception(outcome.error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(outcome.error)[:200]))
        span.end()

    def _process(self, event: Event, call_next: Callable[[Event], None]) -> None:
        assert self._tracer is not None
        if not self._active:
            call_next(event)
            return
        carrier = self._carrier(event)
        parent = self._propagator.extract(carrier) if carrier else otel_context.Context()
        creation = trace.get_current_span(parent).get_span_context()
        links = [trace.Link(creation)] if creation.is_valid else []
        attrs = self._attributes(event, "process", "process")
        info = current_handler()
        if info is not None:
            attrs["messaging.consumer.group.name"] = info.group
            attrs["eventbus.handler"] = info.handler
        attrs["eventbus.delivery.attempt"] = event.attempt
        span = self._tracer.start_span(
            f"process {event.type}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            attributes=attrs,
            links=links,
        )
        with trace.use_span(
            span, end_on_exit=True, record_exception=True, set_status_on_exception=True
        ):
            try:
                call_next(event)
            except Exception as exc:
                span.set_attribute("error.type", _error_type(exc))
                raise

    # -- metrics ------------------------------------------------------------------------
    def _on_outcome(self, outcome: Outcome) -> None:
        kind = outcome.kind
        if kind in (PUBLISHED, OUTBOX, PUBLISH_FAILED):
            if self._tracer is not None:
                self._end_publish(outcome)
            if self._meter is None:
                return
            attrs = self._metric_attributes(outcome, "publish")
            attrs["eventbus.publish.outcome"] = _publish_outcome(kind)
            if outcome.error is not None:
                attrs["error.type"] = _error_type(outcome.error)
            self._sent.add(1, attrs)
            if outcome.duration is not None:
                self._publish_duration.record(outcome.duration, attrs)
            return
        if self._meter is None:
            return
        attrs = self._metric_attributes(outcome, "process")
        if kind == DELIVERED:
            self._consumed.add(1, attrs)
            return
        counter = self._settled.get(kind)
        if counter is None:
            return
        counter.add(1, attrs)
        if outcome.duration is not None and outcome.event is not None:
            self._process_duration.record(outcome.duration, {**attrs, "eventbus.outcome": kind})

    def _metric_attributes(self, outcome: Outcome, operation: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "messaging.system": self.system,
            "messaging.operation.name": operation,
            "messaging.destination.name": outcome.topic,
        }
        if outcome.group is not None:
            attrs["messaging.consumer.group.name"] = outcome.group
        return attrs

    def _observe_outbox(self, _options: Any) -> Iterable[Any]:
        if not self._active:
            return []
        try:
            depth = self.bus.outbox_pending()
        except Exception:  # a closed bus or an unreadable outbox: nothing to report
            return []
        return [otel_metrics.Observation(depth, {"messaging.system": self.system})]

    def _observe_circuit(self, _options: Any) -> Iterable[Any]:
        if not self._active:
            return []
        state = self.bus.breaker.state
        return [
            otel_metrics.Observation(
                _CIRCUIT.get(state, -1),
                {"messaging.system": self.system, "eventbus.circuit.state": state},
            )
        ]


def _publish_outcome(kind: str) -> str:
    return {PUBLISHED: "sent", OUTBOX: "outbox"}.get(kind, "failed")


def _error_type(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def instrument(
    bus: EventBus,
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    tracing: bool = True,
    metrics: bool = True,
) -> Instrumentation:
    """Trace and measure ``bus`` with OpenTelemetry; register before ``bus.start()``.

    ``tracer_provider`` / ``meter_provider`` default to the global ones.
    Returns the :class:`Instrumentation` (``.uninstrument()`` removes it).
    """
    return Instrumentation(bus, tracer_provider, meter_provider, tracing=tracing, metrics=metrics)
