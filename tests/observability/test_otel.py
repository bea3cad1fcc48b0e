"""OpenTelemetry: publish and process spans linked through ``traceparent``, and metrics.

Spans go to the SDK's in-memory exporter; the same checks run on the embedded
brokers and on RabbitMQ and Kafka, since the link travels in the event's
``traceparent`` attribute, which every adapter carries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from eventbus import Adapter, Event, EventBus, MemoryAdapter, RetryPolicy, SqliteAdapter
from eventbus.observability.otel import instrument

from .conftest import points, wait_for

FAST_RETRY = RetryPolicy(max_attempts=2, initial_delay=0.05, max_delay=0.05, jitter=0.0)


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("sqlite", marks=pytest.mark.sqlite),
        pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
        pytest.param("kafka", marks=pytest.mark.kafka),
        pytest.param("sqs", marks=pytest.mark.sqs),
        pytest.param("azure_servicebus", marks=pytest.mark.azure_servicebus),
    ]
)
def make_adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Adapter]]:
    kind = request.param
    made: list[Adapter] = []
    if kind == "rabbitmq":
        factory: Callable[[], Adapter] = request.getfixturevalue("make_rabbitmq")
    elif kind == "kafka":
        factory = request.getfixturevalue("make_kafka")
    elif kind == "sqs":
        from eventbus_sqs import SqsAdapter

        names = request.getfixturevalue("sqs_names")

        def factory() -> Adapter:
            a = SqsAdapter(names.settings(long_poll=1))
            made.append(a)
            return a
    elif kind == "azure_servicebus":
        target = request.getfixturevalue("servicebus")

        def factory() -> Adapter:
            a = target.adapter(lock_duration=4.0)
            made.append(a)
            return a
    elif kind == "sqlite":

        def factory() -> Adapter:
            a = SqliteAdapter(tmp_path / "bus.db", poll_max=0.05)
            made.append(a)
            return a
    else:
        shared = MemoryAdapter()
        made.append(shared)

        def factory() -> Adapter:
            return shared

    yield factory
    for a in made:
        a.close()


def _by_name(exporter: Any, name: str) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_publish_and_process_spans_are_linked(
    make_adapter: Callable[[], Adapter], spans: Any, metrics: Any
) -> None:
    provider, exporter = spans
    meter_provider, reader = metrics
    topic = f"obs.t{uuid.uuid4().hex[:6]}.created"
    group = f"g{uuid.uuid4().hex[:6]}"
    app = provider.get_tracer("app")
    seen: list[Event] = []
    bus = EventBus(make_adapter(), source="//shop")
    instrument(bus, tracer_provider=provider, meter_provider=meter_provider)

    @bus.subscribe(topic, group=group)
    def handle(event: Event) -> None:
        with app.start_as_current_span("inner work"):
            seen.append(event)

    bus.start()
    try:
        with app.start_as_current_span("request"):
            result = bus.publish(topic, {"id": 1}, correlationid="corr-1", key="k1")
        wait_for(lambda: bool(seen), 30, "the event")
        wait_for(lambda: bool(_by_name(exporter, f"process {topic}")), 10, "the process span")
    finally:
        bus.close()
    (request,) = _by_name(exporter, "request")
    (publish,) = _by_name(exporter, f"publish {topic}")
    (process,) = _by_name(exporter, f"process {topic}")
    (inner,) = _by_name(exporter, "inner work")
    # publish: a PRODUCER child of the caller's span, its context in the event
    assert publish.kind == trace.SpanKind.PRODUCER
    assert publish.parent.span_id == request.context.span_id
    ctx = publish.context
    assert seen[0].traceparent.startswith(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-")
    assert result.event.traceparent == seen[0].traceparent
    # process: a CONSUMER child of the publish span, linked to it too, same trace
    assert process.kind == trace.SpanKind.CONSUMER
    assert process.context.trace_id == ctx.trace_id
    assert process.parent.span_id == ctx.span_id
    assert [link.context.span_id for link in process.links] == [ctx.span_id]
    # the handler's own span is a child of the process span
    assert inner.parent.span_id == process.context.span_id
    system = publish.attributes["messaging.system"]
    assert system in ("memory", "sqlite", "rabbitmq", "kafka", "aws_sqs", "servicebus")
    for span, operation in ((publish, "publish"), (process, "process")):
        a = span.attributes
        assert a["messaging.operation.name"] == operation
        assert a["messaging.destination.name"] == topic
        assert a["messaging.message.id"] == result.id
        assert a["messaging.message.conversation_id"] == "corr-1"
    assert publish.attributes["messaging.operation.type"] == "send"
    assert publish.attributes["eventbus.publish.outcome"] == "sent"
    assert process.attributes["messaging.consumer.group.name"] == group
    assert process.attributes["eventbus.delivery.attempt"] == 1
    # metrics
    got = points(reader)
    assert [
        v
        for a, v in got["messaging.client.sent.messages"]
        if a["messaging.destination.name"] == topic
    ] == [1]
    for name in ("messaging.client.consumed.messages", "eventbus.messages.acked"):
        assert [(a["messaging.consumer.group.name"], v) for a, v in got[name]] == [(group, 1)]
    assert [
        v for a, v in got["messaging.process.duration"] if a["eventbus.outcome"] == "acked"
    ] == [1]
    assert got["eventbus.circuit.state"][0][1] == 0
    assert got["eventbus.outbox.depth"][0][1] == 0


@pytest.mark.memory
def test_retry_and_dead_letter_spans_and_metrics(spans: Any, metrics: Any) -> None:
    provider, exporter = spans
    meter_provider, reader = metrics
    bus = EventBus(MemoryAdapter(), retry=FAST_RETRY)
    instrument(bus, tracer_provider=provider, meter_provider=meter_provider)
    calls: list[int] = []

    @bus.subscribe("order.*", group="billing")
    def flaky(event: Event) -> None:
        calls.append(event.attempt)
        if event.data == "poison" or event.attempt == 1:
            raise ValueError(f"boom {event.attempt}")

    bus.start()
    try:
        bus.publish("order.created", "ok")
        bus.publish("order.created", "poison")
        wait_for(lambda: len(calls) == 4, 10, "4 handler calls")
        wait_for(lambda: len(_by_name(exporter, "process order.created")) == 4, 10, "4 spans")
    finally:
        bus.close()
    publishes = {s.context.span_id for s in _by_name(exporter, "publish order.created")}
    processes = _by_name(exporter, "process order.created")
    assert {s.parent.span_id for s in processes} == publishes
    failed = [s for s in processes if s.status.status_code == trace.StatusCode.ERROR]
    assert len(failed) == 3
    assert all(s.attributes["error.type"] == "builtins.ValueError" for s in failed)
    assert all(any(e.name == "exception" for e in s.events) for s in failed)
    assert sorted(s.attributes["eventbus.delivery.attempt"] for s in processes) == [1, 1, 2, 2]
    got = points(reader)
    assert sum(v for _, v in got["eventbus.messages.retried"]) == 2
    assert sum(v for _, v in got["eventbus.messages.acked"]) == 1
    assert sum(v for _, v in got["eventbus.messages.dead_lettered"]) == 1
    assert sum(v for _, v in got["messaging.client.consumed.messages"]) == 4


@pytest.mark.memory
def test_handlers_of_every_kind_run_inside_the_process_span(spans: Any) -> None:
    provider, exporter = spans
    app = provider.get_tracer("app")
    bus = EventBus(MemoryAdapter())
    instrument(bus, tracer_provider=provider, metrics=False)
    done: list[str] = []

    @bus.subscribe("a.sync", group="s")
    def plain(event: Event) -> None:
        with app.start_as_current_span("in sync"):
            done.append("sync")

    @bus.subscribe("a.timeout", group="t", timeout=5)
    def with_timeout(event: Event) -> None:  # runs on a thread of its own
        with app.start_as_current_span("in timeout"):
            done.append("timeout")

    @bus.subscribe("a.async", group="a")
    async def coroutine(event: Event) -> None:
        await asyncio.sleep(0)
        with app.start_as_current_span("in async"):
            done.append("async")

    @bus.subscribe("a.chain", group="c")
    def republish(event: Event) -> None:  # an event published by a handler continues the trace
        bus.publish("a.sync", None)

    bus.start()
    try:
        for t in ("a.timeout", "a.async", "a.chain"):
            bus.publish(t, None)
        wait_for(lambda: sorted(done) == ["async", "sync", "timeout"], 10, "all handlers")
        wait_for(lambda: len(_by_name(exporter, "process a.sync")) == 1, 10, "spans")
    finally:
        bus.close()
    for kind in ("timeout", "async", "sync"):
        (inner,) = _by_name(exporter, f"in {kind}")
        (process,) = _by_name(exporter, f"process a.{kind}")
        assert inner.parent.span_id == process.context.span_id, kind
    (chain,) = _by_name(exporter, "process a.chain")
    (second,) = _by_name(exporter, "publish a.sync")
    assert second.parent.span_id == chain.context.span_id
    assert second.context.trace_id == chain.context.trace_id


@pytest.mark.memory
def test_a_failed_publish_ends_its_span_with_the_error(spans: Any, metrics: Any) -> None:
    from eventbus import EncodeError

    provider, exporter = spans
    meter_provider, reader = metrics
    bus = EventBus(MemoryAdapter())
    instrument(bus, tracer_provider=provider, meter_provider=meter_provider)
    with pytest.raises(EncodeError):
        bus.publish("order.created", {"not": object()})
    (span,) = _by_name(exporter, "publish order.created")
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes["eventbus.publish.outcome"] == "failed"
    assert span.attributes["error.type"] == "eventbus._errors.EncodeError"
    (point,) = points(reader)["messaging.client.sent.messages"]
    assert point[0]["eventbus.publish.outcome"] == "failed" and point[1] == 1
    bus.close()


@pytest.mark.memory
def test_an_existing_traceparent_is_the_parent_and_uninstrument_removes_the_hooks(
    spans: Any,
) -> None:
    provider, exporter = spans
    bus = EventBus(MemoryAdapter())
    inst = instrument(bus, tracer_provider=provider, metrics=False)
    upstream = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    result = bus.publish("x.y", None, traceparent=upstream)
    (span,) = _by_name(exporter, "publish x.y")
    assert span.context.trace_id == int("ab" * 16, 16)
    assert span.parent.span_id == int("cd" * 8, 16)
    assert result.event.traceparent != upstream  # now the publish span's own context
    inst.uninstrument()
    assert not bus.hooks.publish and not bus.hooks.middleware and not bus.hooks.outcome
    plain = bus.publish("x.y", None)
    assert plain.event.traceparent is None
    bus.close()
