"""Prometheus metrics for an :class:`~eventbus.EventBus`, and an endpoint for workers.

Optional: ``pip install 'eventbus[prometheus]'`` (``prometheus-client``).
Nothing in eventbus imports this module; ``eventbus worker --metrics-port 9464``
or a program opts in::

    from eventbus.observability.prometheus import instrument, serve
    instrument(bus)
    serve(9464)                      # http://127.0.0.1:9464/metrics

Metrics (labels in braces; ``system`` is the broker: rabbitmq, kafka, ...):

- ``eventbus_published_total{system,type,outcome}``: outcome sent / outbox / failed
- ``eventbus_publish_duration_seconds{system}``: seconds a publish call took
- ``eventbus_delivered_total{system,group,type}``
- ``eventbus_acked_total``, ``eventbus_retried_total``, ``eventbus_dead_lettered_total``
  ``{system,group,type}``
- ``eventbus_handler_duration_seconds{system,group,outcome}``
- ``eventbus_outbox_depth{system}``: events waiting in the local outbox
- ``eventbus_circuit_state{system}``: 0 closed, 1 half-open, 2 open
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from .._bus import EventBus
from .._hooks import (
    ACKED,
    DEAD_LETTERED,
    DELIVERED,
    OUTBOX,
    PUBLISHED,
    RETRIED,
    Outcome,
    messaging_system,
)

__all__ = ["PrometheusMetrics", "instrument", "serve"]

try:
    import prometheus_client
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "eventbus.observability.prometheus needs prometheus-client, which is not installed: "
        "pip install 'eventbus[prometheus]'"
    ) from exc

_CIRCUIT = {"closed": 0, "half-open": 1, "open": 2}
_families: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _metrics(registry: Any) -> dict[str, Any]:
    """The metric families in ``registry`` (made once per registry, shared by buses)."""
    with _lock:
        found = _families.get(registry)
        if found is not None:
            return found
        p = prometheus_client
        r = registry
        found = {
            "published": p.Counter(
                "eventbus_published", "Events published", ["system", "type", "outcome"], registry=r
            ),
            "publish_duration": p.Histogram(
                "eventbus_publish_duration_seconds",
                "Seconds a publish call took",
                ["system"],
                registry=r,
            ),
            DELIVERED: p.Counter(
                "eventbus_delivered",
                "Events delivered to a group's member",
                ["system", "group", "type"],
                registry=r,
            ),
            ACKED: p.Counter(
                "eventbus_acked",
                "Events whose handlers returned",
                ["system", "group", "type"],
                registry=r,
            ),
            RETRIED: p.Counter(
                "eventbus_retried",
                "Events a handler failed on, to come back",
                ["system", "group", "type"],
                registry=r,
            ),
            DEAD_LETTERED: p.Counter(
                "eventbus_dead_lettered",
                "Events moved to a dead letter",
                ["system", "group", "type"],
                registry=r,
            ),
            "handler_duration": p.Histogram(
                "eventbus_handler_duration_seconds",
                "Seconds a group's handlers took on an event",
                ["system", "group", "outcome"],
                registry=r,
            ),
            "outbox": p.Gauge(
                "eventbus_outbox_depth",
                "Events waiting in the local outbox",
                ["system"],
                registry=r,
            ),
            "circuit": p.Gauge(
                "eventbus_circuit_state",
                "Publish circuit breaker: 0 closed, 1 half-open, 2 open",
                ["system"],
                registry=r,
            ),
        }
        _families[registry] = found
        return found


class PrometheusMetrics:
    """Counts what happens on one bus into a Prometheus registry."""

    def __init__(self, bus: EventBus, registry: Any = None) -> None:
        self.bus = bus
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.system = messaging_system(bus.adapter)
        self._m = _metrics(self.registry)
        self._m["outbox"].labels(self.system).set_function(self._outbox_depth)
        self._m["circuit"].labels(self.system).set_function(
            lambda: _CIRCUIT.get(bus.breaker.state, -1)
        )
        bus.hooks.outcome.append(self._on_outcome)

    def _outbox_depth(self) -> float:
        try:
            return float(self.bus.outbox_pending())
        except Exception:  # a closed bus or an unreadable outbox
            return 0.0

    def _on_outcome(self, o: Outcome) -> None:
        m = self._m
        if o.group is None:  # the publishing side
            outcome = {PUBLISHED: "sent", OUTBOX: "outbox"}.get(o.kind, "failed")
            m["published"].labels(self.system, o.topic, outcome).inc()
            if o.duration is not None:
                m["publish_duration"].labels(self.system).observe(o.duration)
            return
        counter = m.get(o.kind)
        if counter is None:
            return
        counter.labels(self.system, o.group, o.topic).inc()
        if o.kind != DELIVERED and o.duration is not None:
            m["handler_duration"].labels(self.system, o.group, o.kind).observe(o.duration)

    def uninstrument(self) -> None:
        """Stop counting this bus's events."""
        while self._on_outcome in self.bus.hooks.outcome:
            self.bus.hooks.outcome.remove(self._on_outcome)


def instrument(bus: EventBus, registry: Any = None) -> PrometheusMetrics:
    """Count ``bus``'s events in ``registry`` (default: prometheus_client's global one)."""
    return PrometheusMetrics(bus, registry)


def serve(port: int, addr: str = "127.0.0.1", registry: Any = None) -> Any:
    """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the HTTP server.

    ``port=0`` picks a free port (``server.server_port`` tells which). Call
    ``server.shutdown()`` to stop it.
    """
    reg = registry if registry is not None else prometheus_client.REGISTRY
    server, _thread = prometheus_client.start_http_server(port, addr, registry=reg)
    return server
