"""EventBus on the in-memory adapter: sync and async handlers, retries, timeouts, lifecycle."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from eventbus import (
    AdapterNotFound,
    BusConfig,
    ConfigError,
    EncodeError,
    Event,
    EventBus,
    MemoryAdapter,
    RetryPolicy,
)
from eventbus.testing import Collector, eventually

BULK = 1_000  # the documented size from which a batch is encoded with the GC paused

pytestmark = pytest.mark.memory

FAST = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05)


@pytest.fixture
def broker():
    b = MemoryAdapter(lease=2)
    yield b
    b.close()


def new_bus(broker: MemoryAdapter, **kw) -> EventBus:
    return EventBus(
        broker.client(), source="/test", retry=FAST, config=BusConfig(poll_interval=0.05, **kw)
    )


def test_publish_returns_the_event_with_cloudevents_attributes(broker) -> None:
    bus = new_bus(broker)
    r = bus.publish("order.created", {"id": 1}, key="ana", subject="o/1", correlationid="c1")
    assert r.outcome == "sent"
    e = r.event
    assert (e.type, e.source, e.specversion, e.key, e.subject, e.correlationid) == (
        "order.created",
        "/test",
        "1.0",
        "ana",
        "o/1",
        "c1",
    )
    assert e.id and e.time is not None and e.time.tzinfo is not None


def test_async_handlers_and_sync_handlers_both_run(broker) -> None:
    bus = new_bus(broker)
    seen: list[tuple[str, str]] = []

    @bus.subscribe("order.created", group="sync")
    def on_sync(event):
        seen.append(("sync", event.id))

    @bus.subscribe("order.created", group="async")
    async def on_async(event):
        await asyncio.sleep(0)
        seen.append(("async", event.id))

    bus.start()
    eid = bus.publish("order.created", {"x": 1}).id
    eventually(lambda: len(seen) == 2)
    assert sorted(seen) == [("async", eid), ("sync", eid)]
    bus.close()


def test_apublish_does_not_block_the_loop(broker) -> None:
    class SlowAdapter(MemoryAdapter):
        def publish(self, messages):
            time.sleep(0.3)  # a slow broker confirm
            super().publish(messages)

    bus = EventBus(SlowAdapter(), source="/t", config=BusConfig())
    ticks = 0

    async def main():
        nonlocal ticks

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        r = await bus.apublish("order.created", {"x": 1})
        t.cancel()
        return r

    r = asyncio.run(main())
    assert r.outcome == "sent"
    assert ticks >= 10, f"the loop ran only {ticks} ticks during a 0.3 s publish"
    bus.close()


def test_run_async_runs_async_handlers_on_the_callers_loop(broker) -> None:
    bus = new_bus(broker)
    loops = []

    @bus.subscribe("ping", group="g")
    async def on_ping(event):
        loops.append(asyncio.get_running_loop())
        bus.stop()

    bus.declare()  # the group exists before anything is published

    async def main():
        task = asyncio.create_task(bus.run_async())
        await bus.apublish("ping", {})
        await asyncio.wait_for(task, 10)
        return asyncio.get_running_loop()

    loop = asyncio.run(main())
    assert loops == [loop]


def test_retry_on_and_dead_letter_on(broker) -> None:
    bus = new_bus(broker)
    calls = Collector()
    policy = RetryPolicy(max_attempts=5, initial_delay=0.01, dead_letter_on=(ValueError,))

    @bus.subscribe("x.*", group="g", retry=policy)
    def handler(event):
        calls(event)
        if event.data["kind"] == "value":
            raise ValueError("bad order")
        if event.attempt < 2:
            raise OSError("flaky")

    bus.start()
    bad = bus.publish("x.a", {"kind": "value"}).id
    flaky = bus.publish("x.a", {"kind": "os"}).id
    eventually(lambda: broker.dead_letters("g"))
    eventually(lambda: [e.attempt for e in calls.events if e.id == flaky] == [1, 2])
    ((delivery, reason),) = broker.dead_letters("g")
    assert delivery.message.headers["id"] == bad
    assert reason.startswith("ValueError: bad order")
    assert [e.attempt for e in calls.events if e.id == bad] == [1]
    bus.close()


def test_sync_and_async_handler_timeouts_retry_then_dead_letter(broker) -> None:
    bus = new_bus(broker)
    release = threading.Event()

    @bus.subscribe("slow.sync", group="s", timeout=0.1)
    def slow(event):
        release.wait(5)

    @bus.subscribe("slow.async", group="a", timeout=0.1)
    async def slow_async(event):
        await asyncio.sleep(5)

    bus.start()
    bus.publish("slow.sync", {})
    bus.publish("slow.async", {})
    eventually(lambda: broker.dead_letters("s") and broker.dead_letters("a"), timeout=20)
    for group in ("s", "a"):
        ((d, reason),) = broker.dead_letters(group)
        assert "HandlerTimeout" in reason and d.attempt == 3
    release.set()
    bus.close()


def test_one_group_many_handlers_dispatch_by_pattern(broker) -> None:
    bus = new_bus(broker)
    created, shipped = Collector(), Collector()
    bus.subscribe("order.created", created, group="svc")
    bus.subscribe("order.shipped", shipped, group="svc")
    bus.start()
    bus.publish("order.created", {})
    bus.publish("order.shipped", {})
    created.wait(1)
    shipped.wait(1)
    assert created.events[0].type == "order.created" and shipped.events[0].type == "order.shipped"
    bus.close()


def test_default_group_is_the_handlers_qualified_name(broker) -> None:
    bus = new_bus(broker)

    @bus.subscribe("a")
    def handler(event):
        pass

    assert bus.subscriptions[0].group.endswith(
        "test_default_group_is_the_handlers_qualified_name.<locals>.handler"
    )


def test_unserialisable_publish_sends_nothing(broker) -> None:
    bus = new_bus(broker)
    got = Collector()
    bus.subscribe("a.*", got, group="g")
    bus.declare()
    with pytest.raises(EncodeError):
        bus.publish_many([bus.event("a.ok", {"fine": 1}), bus.event("a.bad", {"x": object()})])
    assert broker.depth("g") == 0


def test_an_attribute_that_is_not_utf8_is_an_encode_error(broker) -> None:
    bus = new_bus(broker)
    bus.subscribe("a.*", Collector(), group="g")
    bus.declare()
    with pytest.raises(EncodeError, match="correlationid"):
        bus.publish("a.b", {"n": 1}, correlationid="\udc80")  # a lone surrogate
    assert broker.depth("g") == 0


@pytest.mark.parametrize("was_enabled", [True, False])
def test_bulk_publish_pauses_the_gc_only_while_encoding(broker, was_enabled: bool) -> None:
    """A big batch is encoded with the cyclic GC paused (docs/concepts.md), and the GC
    is back as it was afterwards, even when encoding fails."""
    bus = new_bus(broker)
    seen: list[bool] = []
    bus.on_outcome(lambda o: seen.append(gc.isenabled()))  # runs inside encoding on failure
    small = [bus.event("a.bad", {"x": object()})]
    big = [bus.event("a.ok", {"n": i}) for i in range(BULK)] + small
    if not was_enabled:
        gc.disable()
    try:
        for batch in (small, big):
            with pytest.raises(EncodeError):
                bus.publish_many(batch)
            assert gc.isenabled() is was_enabled
        results = bus.publish_many(big[:-1])
        assert gc.isenabled() is was_enabled
    finally:
        gc.enable()
    assert [r.outcome for r in results] == ["sent"] * BULK
    # small batch: the GC as it was; big batch: paused (or still off)
    assert seen[0] is was_enabled and seen[1] is False


def test_subscribe_validates_patterns_and_start_needs_handlers(broker) -> None:
    bus = new_bus(broker)
    with pytest.raises(ConfigError):
        bus.subscribe("order.cre*", lambda e: None)
    with pytest.raises(ConfigError, match="no handlers"):
        bus.start()


def test_unknown_broker_suggests_the_closest_and_extra() -> None:
    with pytest.raises(AdapterNotFound, match="did you mean 'rabbitmq'"):
        EventBus("rabitmq://localhost", config=BusConfig())
    with pytest.raises(AdapterNotFound, match="did you mean 'memory'"):
        EventBus("memroy://", config=BusConfig())


def test_sigterm_stops_run_gracefully(tmp_path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(
        textwrap.dedent("""
        import sys, time
        from eventbus import EventBus, MemoryAdapter, BusConfig
        bus = EventBus(MemoryAdapter(), source="/w", config=BusConfig(poll_interval=0.05))
        @bus.subscribe("tick", group="g")
        def tick(event):
            print("handled", flush=True)
        bus.declare()
        bus.publish("tick", {})
        bus.run()
        print("stopped cleanly", flush=True)
    """)
    )
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    timer = threading.Timer(30, p.kill)  # a hung worker fails the test instead of hanging it
    timer.start()
    assert p.stdout.readline().strip() == "handled"
    timer.cancel()
    os.kill(p.pid, signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == 0
    assert "stopped cleanly" in out


def test_a_bus_declares_its_own_groups_before_its_first_publish(broker) -> None:
    """The README's snippet: subscribe, publish, then run; the event is not lost."""
    bus = new_bus(broker)
    got = Collector()
    bus.subscribe("order.created", got, group="billing")
    bus.publish("order.created", {"id": 1})  # before any worker started
    bus.start()
    assert got.wait(1)[0].data == {"id": 1}
    bus.close()


@pytest.mark.parametrize("observed", [False, True], ids=["plain path", "with outcome hooks"])
def test_current_handler_names_the_group_handler_and_event(observed: bool) -> None:
    from eventbus import current_handler

    bus = EventBus(MemoryAdapter(), source="/t", config=BusConfig(poll_interval=0.05))
    seen: list[object] = []
    if observed:
        bus.on_outcome(lambda outcome: None)

    @bus.subscribe("tick", group="g")
    def tick(event: Event) -> None:
        seen.append((current_handler(), event))

    bus.start()
    try:
        sent = [bus.publish("tick", {"n": i}).event for i in range(3)]
        eventually(lambda: len(seen) == 3, timeout=10)
    finally:
        bus.close()
    for (info, event), published in zip(seen, sent, strict=True):
        assert info is not None and info.group == "g" and info.handler.endswith(".tick")
        assert info.event is event and event.id == published.id
