"""The worker's pipeline on the in-memory adapter: middleware, outcome callbacks, log context.

A group's pipeline is composed from the stages the bus needs; these tests
check each stage does what ``docs/observability.md`` says, on a bus with and
without the other stages, and that hooks changed while the bus runs apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from eventbus import (
    BusConfig,
    Event,
    EventBus,
    MemoryAdapter,
    Message,
    Outcome,
    RetryPolicy,
    current_handler,
    encode,
)
from eventbus.observability import EventContextFilter
from eventbus.testing import Collector, eventually

pytestmark = pytest.mark.memory

FAST = RetryPolicy(max_attempts=2, initial_delay=0.01, max_delay=0.02)


@pytest.fixture
def bus() -> Iterator[EventBus]:
    b = EventBus(MemoryAdapter(), source="/t", retry=FAST, config=BusConfig(poll_interval=0.05))
    yield b
    b.close()


@pytest.fixture
def worker_log() -> Iterator[list[logging.LogRecord]]:
    """The worker's log records (INFO and up), with the event context a log filter adds."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    keep.addFilter(EventContextFilter())
    logger = logging.getLogger("eventbus.worker")
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(keep)
    logger.setLevel(level)


def test_middleware_wraps_each_handler_call_the_first_registered_outermost(bus: EventBus) -> None:
    calls: list[str] = []

    def named(label: str) -> Callable[[Event, Callable[[Event], None]], None]:
        def middleware(event: Event, call_next: Callable[[Event], None]) -> None:
            info = current_handler()
            assert info is not None and info.event is event
            calls.append(f"{label}>{info.handler.rsplit('.', 1)[-1]}")
            call_next(event)
            calls.append(f"<{label}")

        return middleware

    bus.use(named("a"))
    bus.use(named("b"))

    @bus.subscribe("x.#", group="g")
    def first(event: Event) -> None:
        calls.append("first")

    @bus.subscribe("x.y", group="g")
    def second(event: Event) -> None:
        calls.append("second")

    bus.start()
    bus.publish("x.y", {})
    eventually(lambda: calls.count("<a") == 2, timeout=10)
    assert calls == [
        "a>first",
        "b>first",
        "first",
        "<b",
        "<a",
        "a>second",
        "b>second",
        "second",
        "<b",
        "<a",
    ]


def test_a_middleware_that_raises_counts_as_the_handler_raising(bus: EventBus) -> None:
    outcomes: list[Outcome] = []
    bus.on_outcome(outcomes.append)
    failed: set[str] = set()

    @bus.use
    def flaky(event: Event, call_next: Callable[[Event], None]) -> None:
        if event.id not in failed:
            failed.add(event.id)
            raise RuntimeError("middleware says no")
        call_next(event)

    got = Collector()
    bus.subscribe("x.y", group="g")(got)
    bus.start()
    sent = bus.publish("x.y", {}).event
    assert got.wait(1)[0].id == sent.id
    eventually(
        lambda: (
            [o.kind for o in outcomes if o.group] == ["delivered", "retried", "delivered", "acked"]
        ),
        timeout=10,
    )
    retried = next(o for o in outcomes if o.kind == "retried")
    assert retried.reason == "RuntimeError: middleware says no" and retried.attempt == 1
    assert all(
        o.duration is not None and o.duration >= 0
        for o in outcomes
        if o.kind in ("acked", "retried")
    )


def test_an_event_no_handler_matches_is_dead_lettered_and_reported(bus: EventBus) -> None:
    outcomes: list[Outcome] = []
    bus.on_outcome(outcomes.append)
    got = Collector()
    bus.subscribe("x.*", group="g")(got)
    bus.start()
    # routed to the group by its topic, but of a type none of the group's handlers takes
    # (as from a member of another version of the service, subscribed to more)
    stray = encode(bus.event("other", {}))
    bus.adapter.publish([Message("x.y", stray.body, stray.headers, None)])
    eventually(lambda: any(o.kind == "dead_lettered" for o in outcomes), timeout=10)
    dead = next(o for o in outcomes if o.kind == "dead_lettered")
    assert dead.reason == "no handler in group 'g' matches event type 'other'"
    assert [o.kind for o in outcomes if o.group] == ["delivered", "dead_lettered"]
    assert not got.events


def test_hooks_added_or_removed_while_running_apply_from_the_next_batch(bus: EventBus) -> None:
    got = Collector()
    bus.subscribe("x.y", group="g")(got)
    bus.start()
    bus.publish("x.y", {"n": 1})
    got.wait(1)

    wrapped: list[str] = []
    outcomes: list[str] = []

    def middleware(event: Event, call_next: Callable[[Event], None]) -> None:
        wrapped.append(event.id)
        call_next(event)

    bus.use(middleware)
    bus.on_outcome(lambda o: outcomes.append(o.kind))
    second = bus.publish("x.y", {"n": 2}).event
    got.wait(2)
    eventually(lambda: "acked" in outcomes, timeout=10)
    assert wrapped == [second.id]

    bus.hooks.middleware.remove(middleware)
    bus.hooks.outcome.clear()
    bus.publish("x.y", {"n": 3})
    got.wait(3)
    assert wrapped == [second.id]
    assert outcomes.count("acked") == 1


@pytest.mark.parametrize("observed", [False, True], ids=["plain path", "with outcome hooks"])
def test_a_failure_log_line_names_the_event_and_the_handler_that_failed(
    observed: bool, bus: EventBus, worker_log: list[logging.LogRecord]
) -> None:
    if observed:
        bus.on_outcome(lambda outcome: None)
    tries: list[Event] = []

    @bus.subscribe("x.y", group="g")
    def fragile(event: Event) -> None:
        tries.append(event)
        if len(tries) == 1:
            raise ValueError("not yet")

    bus.start()
    sent = bus.publish("x.y", {}).event
    eventually(lambda: len(tries) == 2, timeout=10)
    failed = next(r for r in worker_log if "retrying" in r.getMessage())
    assert failed.event_id == sent.id  # type: ignore[attr-defined]
    assert failed.group == "g"  # type: ignore[attr-defined]
    assert failed.handler.endswith(".fragile")  # type: ignore[attr-defined]


@pytest.mark.parametrize("observed", [False, True], ids=["plain path", "with outcome hooks"])
def test_log_line_of_an_undecodable_message_names_no_earlier_event(
    observed: bool, bus: EventBus, worker_log: list[logging.LogRecord]
) -> None:
    if observed:
        bus.on_outcome(lambda outcome: None)
    handled: list[Event] = []
    bus.subscribe("tick", group="g")(handled.append)
    bus.declare()
    good = bus.publish("tick", {"n": 1}).event
    bus.adapter.publish([Message("tick", b"not an event", {}, None)])  # same batch, after it
    bus.start()
    eventually(lambda: any("undecodable" in r.getMessage() for r in worker_log), timeout=10)
    assert [e.id for e in handled] == [good.id]
    undecodable = next(r for r in worker_log if "undecodable" in r.getMessage())
    assert undecodable.event_id is None  # type: ignore[attr-defined]
    assert undecodable.group is None  # type: ignore[attr-defined]
