"""The adapter conformance suite: one set of tests every adapter must pass.

An adapter's whole row is a subclass with a factory fixture::

    from eventbus.testing import AdapterConformance

    class TestMyAdapter(AdapterConformance):
        marker = "mybroker"

        @pytest.fixture
        def adapter_factory(self):
            return lambda: MyAdapter("mybroker://localhost", lease=3)

The suite reads ``adapter.capabilities``: a test needing a capability the
adapter does not declare is skipped with that reason; a declared one must
pass; and they must agree with the registered ``AdapterSpec``'s outside
:data:`PER_INSTANCE_CAPABILITIES`. Optional fixtures (signatures in
docs/conformance.md): ``foreign_publisher(topic, body)`` (put a raw,
envelope-less message on the broker), ``broker_restart()`` (restart the
broker) and ``crash(adapter)``: kill an adapter as a dead or hung process
would, without settling, closing or flushing (default: abandon it; rows pass
their adapter's hook, e.g. ``adapter.simulate_crash()``).

Where the bus would hide an adapter bug (it dead-letters strays, acks and
retries for the handler), tests use the contract directly:
``adapter.consumer(...).receive/ack/nack/dead_letter/close``.

Every test uses names under a per-run prefix (:class:`Names`), waits with idle
timeouts (no fixed sleeps for delivery), and scales to the tier
(``EVENTBUS_TIER=short|full|stress``) and ``EVENTBUS_TIMEOUT_MULTIPLIER``.
"""

from __future__ import annotations

import importlib
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventbus import (
    Adapter,
    AdapterNotFound,
    AdapterSpec,
    BusConfig,
    ClosedError,
    Consumer,
    Delivery,
    Event,
    EventBus,
    MessageTooLarge,
    RetryPolicy,
    create_adapter,
    encode,
    find_spec,
    matches,
)
from eventbus.adapter import DeadLetterTools, GroupAdmin

from ._helpers import Collector, Names, duplicates, eventually, tier, timeout_multiplier

__all__ = ["PER_INSTANCE_CAPABILITIES", "AdapterConformance"]

AdapterFactory = Callable[[], Adapter]
Crash = Callable[[Adapter], None]

#: Capability fields an adapter instance may set differently from its registered
#: ``AdapterSpec`` (they follow the instance's settings: the lease, a size limit,
#: SQS FIFO mode / Service Bus sessions, Kafka's ``start="earliest"``). Every other
#: field must be the same on both, or ``test_capabilities_agree_with_the_registered_spec``
#: fails: ``eventbus adapters`` shows the spec's, the suite reads the instance's.
PER_INSTANCE_CAPABILITIES = frozenset(
    {"lease_seconds", "max_message_size", "ordering_per_key", "dedup", "replay"}
)

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=0.5, jitter=0.1)
SIZES = {  # (publishers, events per publisher, members) per tier
    "short": (4, 100, 3),
    "full": (50, 5000, 5),
    "stress": (50, 20000, 8),
}

# (pattern, topic) cases whose answers every adapter must reproduce; topics are
# prefixed by the test's unique word, patterns too.
WILDCARD_PATTERNS = ["order.*", "order.#", "*.created", "a.#.b", "#.b", "a.*.b", "order.created"]
WILDCARD_TOPICS = [
    "order",
    "order.created",
    "order.created.eu",
    "a.b",
    "a.x.b",
    "a.x.y.b",
    "x.b",
    "b",
    "order.updated",
    "user.created",
]


def _need(adapter: Adapter, capability: str) -> None:
    if not getattr(adapter.capabilities, capability):
        pytest.skip(f"adapter does not declare capability {capability!r}")


def _id(delivery: Delivery) -> str:
    return delivery.message.headers["id"]


def _messages(topic: str, n: int, **data: Any) -> list[Any]:
    return [encode(Event(type=topic, data={"i": i, **data}, source="/c")) for i in range(n)]


def _take(consumer: Consumer, ask: int, timeout: float) -> list[Delivery]:
    """``consumer.receive(ask, timeout)``, checking it returned at most ``ask``."""
    batch = consumer.receive(ask, timeout)
    assert len(batch) <= ask, f"receive({ask}) returned {len(batch)} deliveries"
    return batch


def _receive(consumer: Consumer, n: int, timeout: float = 15.0) -> list[Delivery]:
    """At least ``n`` deliveries from ``consumer`` (fails after ``timeout``, scaled)."""
    got: list[Delivery] = []
    deadline = time.monotonic() + timeout * timeout_multiplier()
    while len(got) < n and time.monotonic() < deadline:
        got += _take(consumer, n - len(got), 0.5)
    assert len(got) >= n, f"received {len(got)} of {n} deliveries"
    return got


def _for(consumers: list[Consumer], seconds: float) -> list[Delivery]:
    """Everything ``consumers`` receive during ``seconds``: the bounded wait of a test
    that something does *not* come (there is no event to wait for instead)."""
    got: list[Delivery] = []
    end = time.monotonic() + seconds
    while True:
        for c in consumers:
            left = end - time.monotonic()
            got += _take(c, 10, min(0.25, max(left, 0.0)))
        if time.monotonic() >= end:
            return got


def _for_ids(consumer: Consumer, ids: set[str], seconds: float) -> list[Delivery]:
    """Receive (and ack, as a worker would: a consumer may hold back more deliveries
    while it has many unsettled) until every id in ``ids`` came or ``seconds`` passed;
    returns all received."""
    got: list[Delivery] = []
    end = time.monotonic() + seconds
    asks = itertools.cycle([1, 3, 10])  # and each receive(n) returns at most n
    while not ids <= {_id(d) for d in got}:
        left = end - time.monotonic()
        if left <= 0:
            break
        batch = _take(consumer, next(asks), min(0.5, left))
        consumer.ack(batch)
        got += batch
    return got


class AdapterConformance:
    """Subclass with an ``adapter_factory`` fixture; set ``marker`` to the adapter's marker.

    ``adapter_name`` is the name of the adapter's registered ``AdapterSpec``
    (default: ``marker``; rows without either use the ``--eventbus-url`` scheme).
    """

    marker = ""
    adapter_name = ""

    # -- fixtures a row provides ------------------------------------------------------------------
    @pytest.fixture
    def adapter_factory(self, request: pytest.FixtureRequest) -> AdapterFactory:
        url = request.config.getoption("eventbus_url", default=None)
        if not url:
            pytest.skip("no adapter_factory fixture and no --eventbus-url given")
        return lambda: create_adapter(None, url, {})

    @pytest.fixture
    def foreign_publisher(self) -> Callable[[str, bytes], None] | None:
        return None

    @pytest.fixture
    def broker_restart(self) -> Callable[[], None] | None:
        return None

    #: Whether the row's ``crash`` keeps a crashed member's deliveries away from the
    #: others for a while (a quarter of the lease is checked). A row whose client
    #: can only leave cleanly (librdkafka sends LeaveGroup on any close) sets False
    #: and says why; the deliveries must still reach another member.
    crash_holds_deliveries = True

    @pytest.fixture
    def crash(self) -> Crash:
        """Kill an adapter as a dead (or hung) process would: its consumers stop without
        settling or closing, its connections are dropped without flushing or leaving.

        The default only abandons the adapter (nothing is called on it again until
        teardown), which is a crash for brokers whose deliveries are held by a lease.
        Rows override it with their adapter's hook, e.g. ``adapter.simulate_crash()``.
        """
        return lambda adapter: None

    # -- the suite's own fixtures -----------------------------------------------------------------
    @pytest.fixture
    def names(self) -> Names:
        return Names()

    @pytest.fixture
    def make(self, adapter_factory: AdapterFactory) -> Iterator[AdapterFactory]:
        """New adapters on the broker under test; closed after the test."""
        made: list[Adapter] = []

        def make() -> Adapter:
            a = adapter_factory()
            made.append(a)
            return a

        yield make
        for a in reversed(made):
            try:
                a.close()
            except Exception:  # noqa: S110 - teardown of an adapter a test may have closed
                pass

    @pytest.fixture
    def bus(self, make: AdapterFactory) -> Iterator[Callable[..., EventBus]]:
        buses: list[EventBus] = []

        def new_bus(adapter: Adapter | None = None, **config: Any) -> EventBus:
            cfg = BusConfig(**{"prefetch": 20, "poll_interval": 0.2, "retry": FAST_RETRY, **config})
            b = EventBus(adapter or make(), source="/eventbus/conformance", config=cfg)
            buses.append(b)
            return b

        yield new_bus
        for b in buses:
            b.stop(timeout=10)

    # -- 0. the capabilities the suite reads are the ones `eventbus adapters` shows ----------
    def _spec(self, request: pytest.FixtureRequest) -> AdapterSpec:
        name = self.adapter_name or self.marker
        url = request.config.getoption("eventbus_url", default=None)
        if not name and url:
            name = url.split(":", 1)[0]
        if not name:
            pytest.fail("the row sets neither adapter_name nor marker: no AdapterSpec to check")
        try:
            return find_spec(name)
        except AdapterNotFound as exc:
            pytest.fail(
                f"no AdapterSpec {name!r} is registered (entry point group eventbus.adapters); "
                f"register the adapter or set adapter_name on the row: {exc}"
            )

    def test_capabilities_agree_with_the_registered_spec(
        self, make: AdapterFactory, request: pytest.FixtureRequest
    ) -> None:
        """The suite skips by ``adapter.capabilities``; ``eventbus adapters`` shows the
        spec's. They may differ only in :data:`PER_INSTANCE_CAPABILITIES`."""
        spec = self._spec(request)
        actual = make().capabilities.as_dict()
        declared = spec.capabilities.as_dict()
        differ = {
            field: {"spec": declared[field], "instance": actual.get(field)}
            for field in declared
            if field not in PER_INSTANCE_CAPABILITIES and declared[field] != actual.get(field)
        }
        assert not differ, (
            f"adapter.capabilities disagrees with AdapterSpec {spec.name!r}.capabilities on "
            f"{differ}: set the class attribute `capabilities = CAPABILITIES` (the spec's "
            "record) and derive per-instance values with CAPABILITIES.replace(...)"
        )
        assert actual["lease_seconds"] > 0

    # -- 1. published before the worker starts ----------------------------------------------------
    def test_events_published_before_worker_starts_all_arrive(self, bus: Any, names: Names) -> None:
        consumer_bus = bus()
        got = Collector()
        consumer_bus.subscribe(names.topic("order.*"), got, group=names.group("billing"))
        consumer_bus.declare()
        publisher = bus()
        sent: dict[str, Event] = {}
        for i in range(100):
            r = publisher.publish(
                names.topic("order.created"),
                {"id": i, "user": "Ana", "total": 42.9, "lines": [{"sku": "x", "qty": 1}]},
                subject=f"orders/{i}",
                correlationid=f"corr-{i}",
                causationid=f"cause-{i}",
                extensions={"tenant": "acme"},
            )
            sent[r.id] = r.event
        consumer_bus.start()
        events = got.wait(100)
        assert sorted(e.id for e in events) == sorted(sent)
        for e in events:
            s = sent[e.id]
            assert (e.type, e.data, e.source, e.subject) == (s.type, s.data, s.source, s.subject)
            assert (e.correlationid, e.causationid) == (s.correlationid, s.causationid)
            assert e.extensions.get("tenant") == "acme"
            assert e.time is not None and s.time is not None
            assert abs((e.time - s.time).total_seconds()) < 0.001
            assert e.specversion == "1.0" and e.datacontenttype == "application/json"

    # -- 2. many publishers x many members --------------------------------------------------------
    def test_many_publishers_many_members_union_complete(self, bus: Any, names: Names) -> None:
        publishers, per, members = SIZES[tier()]
        got = Collector()
        group = names.group("work")
        workers = [bus() for _ in range(members)]
        for w in workers:
            w.subscribe(names.topic("job.#"), got, group=group)
        workers[0].declare()
        for w in workers:
            w.start()
        pubs = [bus() for _ in range(min(publishers, 8))]
        sent: list[str] = []
        lock = threading.Lock()

        def publish(p: EventBus, n: int, k: int) -> None:
            ids = []
            for start in range(0, n, 50):
                batch = [
                    p.event(names.topic(f"job.p{k}"), {"n": j})
                    for j in range(start, min(n, start + 50))
                ]
                ids += [r.id for r in p.publish_many(batch)]
            with lock:
                sent.extend(ids)

        threads = [
            threading.Thread(target=publish, args=(pubs[k % len(pubs)], per, k))
            for k in range(publishers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = publishers * per
        assert len(sent) == total
        got.wait_unique(total, idle=30)
        ids = got.ids()
        assert set(ids) == set(sent)
        # at-least-once: duplicates only from redelivery (rebalances), never many
        assert duplicates(ids) <= total * 0.02, f"{duplicates(ids)} duplicates of {total}"

    # -- 3. topics stay isolated ------------------------------------------------------------------
    def test_many_topics_stay_isolated(self, bus: Any, names: Names) -> None:
        b = bus()
        collectors = {f"topic{k}": Collector() for k in range(6)}
        for suffix, c in collectors.items():
            b.subscribe(names.topic(f"iso.{suffix}"), c, group=names.group(suffix))
        b.declare()
        b.start()
        p = bus()
        events = [
            p.event(names.topic(f"iso.topic{k}"), {"k": k, "i": i})
            for i in range(20)
            for k in range(6)
        ]
        p.publish_many(events)
        for k, (suffix, c) in enumerate(collectors.items()):
            got = c.wait(20)
            assert all(e.type == names.topic(f"iso.{suffix}") and e.data["k"] == k for e in got)
        for c in collectors.values():  # nothing extra arrives after a last marker
            assert c.count() == 20

    # -- 4. groups fan out, members compete -------------------------------------------------------
    def test_every_group_gets_every_event(self, bus: Any, names: Names) -> None:
        billing, audit = Collector(), Collector()
        b = bus()
        b.subscribe(names.topic("order.created"), billing, group=names.group("billing"))
        b.subscribe(names.topic("order.#"), audit, group=names.group("audit"))
        b.declare()
        b.start()
        p = bus()
        ids = {
            r.id
            for r in p.publish_many(
                p.event(names.topic("order.created"), {"i": i}) for i in range(50)
            )
        }
        assert {e.id for e in billing.wait(50)} == ids
        assert {e.id for e in audit.wait(50)} == ids

    def test_members_of_one_group_share_events(self, bus: Any, names: Names) -> None:
        one, two = Collector(delay=0.005), Collector(delay=0.005)
        group = names.group("shared")
        b1, b2 = bus(prefetch=5), bus(prefetch=5)
        _need(b1.adapter, "consumer_groups")
        b1.subscribe(names.topic("task.*"), one, group=group)
        b2.subscribe(names.topic("task.*"), two, group=group)
        b1.declare()
        b1.start()
        b2.start()
        p = bus()
        n = 200
        ids = [
            r.id
            for r in p.publish_many(
                p.event(names.topic("task.run"), {"i": i}, key=f"k{i % 16}") for i in range(n)
            )
        ]
        eventually(lambda: len(set(one.ids()) | set(two.ids())) >= n, timeout=60, what="all tasks")
        seen = one.ids() + two.ids()
        assert set(seen) == set(ids)
        assert duplicates(seen) <= n * 0.02
        assert one.count() > 0 and two.count() > 0, (
            f"members did not share: {one.count()} / {two.count()}"
        )

    # -- 5. ordering per key ----------------------------------------------------------------------
    def test_ordering_per_key(self, bus: Any, names: Names) -> None:
        adapter_bus = bus()
        _need(adapter_bus.adapter, "ordering_per_key")
        got = Collector()
        group = names.group("ordered")
        adapter_bus.subscribe(names.topic("acct.*"), got, group=group)
        second = bus()
        second.subscribe(names.topic("acct.*"), got, group=group)
        adapter_bus.declare()
        adapter_bus.start()
        second.start()
        p = bus()
        n = 1000 if tier() != "short" else 400
        p.publish_many(
            p.event(names.topic("acct.posted"), {"seq": i, "key": f"k{i % 16}"}, key=f"k{i % 16}")
            for i in range(n)
        )
        got.wait_unique(n, idle=30)
        last: dict[str, int] = {}
        for e in got.events:
            k, seq = e.data["key"], e.data["seq"]
            assert e.key == k
            assert seq > last.get(k, -1) or e.attempt > 1, f"key {k}: {seq} after {last[k]}"
            last[k] = max(seq, last.get(k, -1))

    # -- 6. a handler that raises is retried with a growing attempt -------------------------------
    def test_handler_failure_is_redelivered_with_growing_attempt(
        self, bus: Any, names: Names
    ) -> None:
        b = bus()
        _need(b.adapter, "redelivery")
        got = Collector(fail=lambda e: e.attempt < 3)
        b.subscribe(names.topic("flaky.*"), got, group=names.group("flaky"))
        b.declare()
        b.start()
        p = bus()
        ids = {
            r.id
            for r in p.publish_many(p.event(names.topic("flaky.x"), {"i": i}) for i in range(10))
        }
        got.wait_until(lambda evs: {e.id for e in evs if e.attempt == 3} >= ids)
        by_id: dict[str, list[int]] = {}
        for e in got.events:
            by_id.setdefault(e.id, []).append(e.attempt)
        for i in ids:
            assert by_id[i][:3] == [1, 2, 3], f"attempts of {i}: {by_id[i]}"

    # -- 7. past the retry limit: dead letter with the reason -------------------------------------
    def test_poison_event_goes_to_dead_letter_with_reason(self, bus: Any, names: Names) -> None:
        b = bus()
        got = Collector(fail=lambda e: e.data.get("poison", False))
        group = names.group("poison")
        b.subscribe(names.topic("pay.*"), got, group=group)
        b.declare()
        b.start()
        p = bus()
        poison = p.publish(names.topic("pay.made"), {"poison": True}).id
        good = {
            r.id
            for r in p.publish_many(p.event(names.topic("pay.made"), {"i": i}) for i in range(10))
        }
        got.wait_until(lambda _: good <= got.unique)
        eventually(
            lambda: sum(e.id == poison for e in got.events) >= FAST_RETRY.max_attempts,
            what="all attempts of the poison event",
        )
        tools = b.adapter
        letters = None
        if isinstance(tools, DeadLetterTools):
            letters = eventually(lambda: tools.dead_letters(group), what="a dead letter")
        if letters is not None:
            (delivery, reason), *rest = letters
            assert not rest
            assert delivery.message.headers["id"] == poison
            assert "handler refuses" in reason and "RuntimeError" in reason
        # the group does not see it again: a later sentinel arrives, the poison count holds
        sentinel = p.publish(names.topic("pay.made"), {"sentinel": True}).id
        got.wait_until(lambda evs: any(e.id == sentinel for e in evs))
        attempts = [e.attempt for e in got.events if e.id == poison]
        assert attempts == list(range(1, FAST_RETRY.max_attempts + 1))

    # -- 8. leases: not handed on early; handed on after a crash ----------------------------------
    def test_unacked_event_waits_for_lease_then_goes_to_another_member(
        self, make: AdapterFactory, names: Names, crash: Crash
    ) -> None:
        a1, a2 = make(), make()
        _need(a1, "redelivery")
        lease = a1.capabilities.lease_seconds
        group, topic = names.group("lease"), names.topic("lease.x")
        first = a1.consumer(group, [topic])
        second = a2.consumer(group, [topic])
        pub = make()
        msgs = [encode(Event(type=topic, data={"i": i}, source="/c")) for i in range(5)]
        pub.publish(msgs)
        held = _receive(first, 5)
        assert len(held) == 5
        assert second.receive(10, 0.5) == [], "an un-acked event went to another member early"
        # the first member dies without settling or closing anything: unlike close(), a
        # crash leaves the deliveries with it until the lease runs out
        crash(a1)
        # lease_seconds is the longest a crash may hold them; some brokers hand them on
        # sooner (Kafka: a dead member's session runs out before a hung one's poll
        # interval). A quarter of the lease tells a crash from a close() either way.
        early = _for([second], lease / 4) if self.crash_holds_deliveries else []
        assert early == [], (
            f"{len(early)} deliveries of a crashed member were handed on within "
            f"{lease / 4:.1f}s of the crash ({lease:.1f}s lease): the crash acted like close()"
        )
        got: list[Any] = list(early)
        deadline = time.monotonic() + (lease * 2 + 15) * timeout_multiplier()
        while len(got) < 5 and time.monotonic() < deadline:
            got += _take(second, 5, 0.5)
        assert sorted(d.message.headers["id"] for d in got) == sorted(m.headers["id"] for m in msgs)
        assert all(d.attempt >= 2 for d in got), [d.attempt for d in got]
        second.ack(got)
        second.close()

    # -- 8b. settling is final; close() hands back at once -----------------------------------
    def test_settled_deliveries_stay_settled_past_the_lease(
        self, make: AdapterFactory, names: Names
    ) -> None:
        """Acked and dead-lettered deliveries never come back: not when the lease would
        have run out, not to another member, not after the member closes."""
        a, other = make(), make()
        group, topic = names.group("settled"), names.topic("settled.x")
        first = a.consumer(group, [topic])
        make().publish(_messages(topic, 4))
        held = _receive(first, 4)
        first.ack(held[:3])
        first.dead_letter(held[3], "settled test")
        second = other.consumer(group, [topic])  # a competing member, from now on
        lease = a.capabilities.lease_seconds
        again = _for([first, second], lease + 1.0 * timeout_multiplier())
        assert again == [], (
            f"{sorted(_id(d) for d in again)} came back after ack/dead_letter "
            f"(waited {lease + 1.0:.1f}s, past the {lease:.1f}s lease)"
        )
        first.close()
        second.close()
        third = make().consumer(group, [topic])
        late = third.receive(10, 0.5)
        assert late == [], f"{len(late)} settled deliveries came back to a new member"
        third.close()
        if not isinstance(a, DeadLetterTools):
            return
        letters = eventually(lambda: a.dead_letters(group), what="the dead letter")
        assert [_id(d) for d, _ in letters] == [_id(held[3])]

    def test_close_hands_unsettled_deliveries_back_at_once(
        self, make: AdapterFactory, names: Names
    ) -> None:
        """``Consumer.close()`` gives what it holds back to the group now, well before
        the lease would run out (a crash is what waits for the lease)."""
        a = make()
        _need(a, "redelivery")
        lease = a.capabilities.lease_seconds
        group, topic = names.group("handback"), names.topic("handback.x")
        first = a.consumer(group, [topic])
        make().publish(_messages(topic, 3))
        leased_at = time.monotonic()
        held = _receive(first, 3)
        first.close()
        second = make().consumer(group, [topic])
        within = leased_at + lease * 0.75 - time.monotonic()
        got = _for_ids(second, {_id(d) for d in held}, within)
        assert {_id(d) for d in got} == {_id(d) for d in held}, (
            f"after close() only {len(got)} of {len(held)} deliveries came back within "
            f"{lease * 0.75:.1f}s of a {lease:.1f}s lease: close() did not hand them back"
        )
        second.close()

    # -- 8c. the adapter contract, where the bus would hide a bug ------------------------------
    def test_group_receives_only_topics_its_patterns_match(
        self, make: AdapterFactory, names: Names
    ) -> None:
        """At the adapter: ``receive`` returns only matching topics (the bus would quietly
        dead-letter the others, so a bus-level test can miss this). Two groups of two
        patterns each (one consumer per group, to keep group joins few); test 10 checks
        each pattern on its own, through the bus."""
        a = make()
        groups = {"ma": ["order.*", "a.*.b"], "mb": ["*.created", "a.#.b"]}
        consumers = {
            role: a.consumer(names.group(role), [names.topic(p) for p in patterns])
            for role, patterns in groups.items()
        }
        by_topic = {
            t: encode(Event(type=names.topic(t), data={}, source="/c")) for t in WILDCARD_TOPICS
        }
        make().publish(list(by_topic.values()))
        for role, c in consumers.items():
            wanted = [t for t in WILDCARD_TOPICS if any(matches(p, t) for p in groups[role])]
            got = _for_ids(
                c, {by_topic[t].headers["id"] for t in wanted}, 15 * timeout_multiplier()
            )
            extra = c.receive(10, 0.2)  # and nothing more
            c.ack(extra)
            topics = sorted(d.message.topic for d in got + extra)
            assert topics == sorted(names.topic(t) for t in wanted), (
                f"patterns {groups[role]}: received {topics}, wanted only {sorted(wanted)}"
            )
        for c in consumers.values():
            c.close()

    def test_declare_replaces_the_group_patterns(self, make: AdapterFactory, names: Names) -> None:
        a = make()
        group = names.group("redeclare")
        old, new = names.topic("re.old"), names.topic("re.new")
        a.declare(group, [old])
        a.declare(group, [new])  # the group now takes `new` only
        witness = a.consumer(names.group("witness"), [old])  # proves `old` events flow
        c = a.consumer(group, [new])
        before, after = _messages(old, 1), _messages(new, 1)
        make().publish(before + after)
        _receive(witness, 1)
        got = _for_ids(c, {after[0].headers["id"]}, 15 * timeout_multiplier())
        extra = c.receive(10, 0.5)
        c.ack(extra)
        got += extra
        assert [d.message.topic for d in got] == [new], (
            f"after declare({group!r}, [{new!r}]) the group received "
            f"{[d.message.topic for d in got]}: its old pattern was kept"
        )
        c.close()
        witness.close()

    def test_published_messages_survive_the_publisher_crashing(
        self, make: AdapterFactory, names: Names, crash: Crash
    ) -> None:
        """``publish`` returns once the broker has the messages: a publisher killed right
        after it returns (no flush, no close) has lost nothing; a new client sees them."""
        group, topic = names.group("confirmed"), names.topic("confirmed.x")
        make().declare(group, [topic])
        pub = make()
        sent = _messages(topic, 20)
        pub.publish(sent)
        crash(pub)
        c = make().consumer(group, [topic])
        got = _for_ids(c, {m.headers["id"] for m in sent}, 15 * timeout_multiplier())
        assert {_id(d) for d in got} == {m.headers["id"] for m in sent}, (
            f"{len(sent) - len({_id(d) for d in got})} of {len(sent)} published messages "
            "were lost when the publisher died after publish() returned"
        )
        c.close()

    # -- 9. subscribe / close / resubscribe; close is idempotent; close flushes -------------------
    def test_resubscribing_in_rounds_loses_nothing(
        self, bus: Any, make: AdapterFactory, names: Names
    ) -> None:
        group, pattern = names.group("rounds"), names.topic("round.*")
        got = Collector()
        first = bus()
        first.subscribe(pattern, got, group=group)
        first.declare()
        p = bus()
        sent: list[str] = []
        rounds = 4
        for r in range(rounds):
            sent += [
                x.id
                for x in p.publish_many(
                    p.event(names.topic("round.x"), {"r": r, "i": i}) for i in range(25)
                )
            ]
            w = bus()
            w.subscribe(pattern, got, group=group)
            w.start()
            got.wait_unique(10 * (r + 1))
            w.close()
            w.close()  # idempotent
        last = bus()
        last.subscribe(pattern, got, group=group)
        last.start()
        got.wait_until(lambda _: got.unique >= set(sent), idle=30)

    def test_close_while_consuming_is_safe(self, bus: Any, names: Names) -> None:
        got = Collector(delay=0.01)
        b = bus()
        b.subscribe(names.topic("busy.*"), got, group=names.group("busy"))
        b.declare()
        b.start()
        p = bus()
        p.publish_many(p.event(names.topic("busy.x"), {"i": i}) for i in range(100))
        got.wait(5)
        closer = threading.Thread(target=b.close)
        closer.start()
        closer.join(30 * timeout_multiplier())
        assert not closer.is_alive(), "close() hung while the worker was consuming"
        b.close()
        with pytest.raises(ClosedError):
            b.publish(names.topic("busy.x"), {})

    def test_publisher_close_flushes(self, bus: Any, make: AdapterFactory, names: Names) -> None:
        group, pattern = names.group("flush"), names.topic("flush.*")
        consumer_bus = bus()
        got = Collector()
        consumer_bus.subscribe(pattern, got, group=group)
        consumer_bus.declare()
        p = bus()
        ids = [p.publish(names.topic("flush.x"), {"i": i}).id for i in range(50)]
        p.close()
        consumer_bus.start()
        assert {e.id for e in got.wait(50)} == set(ids)

    # -- 10. wildcard semantics -------------------------------------------------------------------
    def test_wildcards_mean_the_same_everywhere(self, bus: Any, names: Names) -> None:
        b = bus()
        collectors: dict[str, Collector] = {}
        for k, pattern in enumerate(WILDCARD_PATTERNS):
            collectors[pattern] = c = Collector()
            b.subscribe(names.topic(pattern), c, group=names.group(f"w{k}"))
        b.declare()
        b.start()
        p = bus()
        p.publish_many(p.event(names.topic(t), {"t": t}) for t in WILDCARD_TOPICS)
        sentinel = p.publish(names.topic("order.created"), {"t": "sentinel"})
        # every pattern matching order.created must see the sentinel; then nothing more comes
        for pattern, c in collectors.items():
            expected = sorted(t for t in WILDCARD_TOPICS if matches(pattern, t))
            c.wait(
                len(expected) + (1 if matches(pattern, "order.created") else 0),
                what=f"events for {pattern!r}",
            )
            got = sorted(e.data["t"] for e in c.events if e.id != sentinel.id)
            assert got == expected, f"pattern {pattern!r}: got {got}, expected {expected}"
        # the bus dead-letters what a group receives but does not match: none may be there
        for k, pattern in enumerate(WILDCARD_PATTERNS):
            if not isinstance(b.adapter, DeadLetterTools):
                break
            letters = b.adapter.dead_letters(names.group(f"w{k}"))
            assert letters == [], (
                f"pattern {pattern!r}: the adapter handed the group topics it does not match "
                f"(the bus dead-lettered them): {[(d.message.topic, r) for d, r in letters]}"
            )

    # -- 11. attributes and payloads round-trip exactly -------------------------------------------
    def test_attributes_and_binary_payloads_round_trip(self, bus: Any, names: Names) -> None:
        got = Collector()
        b = bus()
        b.subscribe(names.topic("odd.*"), got, group=names.group("odd"))
        b.declare()
        b.start()
        p = bus()
        weird = "Ünïcødé \"quoted\" 'single' with spaces / slashes \\ back ✓ 注文"
        padded = "  leading and trailing spaces  "
        lines = "line one\r\nline two\nthree\r\n"
        sent = [
            p.event(
                names.topic("odd.text"),
                weird,
                subject=weird,
                correlationid=weird,
                key="k/ü 1",
                extensions={"note": weird},
            ),
            p.event(
                names.topic("odd.space"),
                "x",
                subject=padded,
                correlationid=lines,
                causationid="\ttab\t",
                key=" key ",
                extensions={"pad": padded, "crlf": lines, "blank": " "},
            ),
            p.event(names.topic("odd.bytes"), bytes(range(256)) * 4),
            p.event(names.topic("odd.json"), {"ü": weird, "n": [1, 2.5, None, True], "e": {}}),
            p.event(names.topic("odd.empty"), b""),
        ]
        p.publish_many(sent)
        by_id = {e.id: e for e in got.wait(len(sent))}
        for s in sent:
            e = by_id[s.id]
            assert e.data == s.data and type(e.data) is type(s.data)
            assert (e.subject, e.correlationid, e.key) == (s.subject, s.correlationid, s.key)
            assert e.causationid == s.causationid
            assert dict(e.extensions) == dict(s.extensions)

    # -- 12. maximum message size -----------------------------------------------------------------
    def test_max_size_payload_arrives_and_larger_is_refused(self, bus: Any, names: Names) -> None:
        b = bus()
        limit = b.adapter.capabilities.max_message_size
        if limit is None:
            pytest.skip("adapter declares no max_message_size")
        got = Collector()
        b.subscribe(names.topic("big.*"), got, group=names.group("big"))
        b.declare()
        b.start()
        p = bus()
        template = p.event(names.topic("big.blob"), b"")
        overhead = encode(template).size
        fits = template.replace(data=b"x" * (limit - overhead))
        assert encode(fits).size == limit
        p.publish_many([fits])
        with pytest.raises(MessageTooLarge):
            p.publish_many(
                [template.replace(data=b"x" * (limit - overhead + 1), id=template.id + "b")]
            )
        (e,) = got.wait(1)
        assert e.data == fits.data

    # -- 13. foreign producers --------------------------------------------------------------------
    def test_foreign_message_is_dead_lettered_and_worker_goes_on(
        self, bus: Any, names: Names, foreign_publisher: Callable[[str, bytes], None] | None
    ) -> None:
        if foreign_publisher is None:
            pytest.skip("the row provides no foreign_publisher fixture")
        b = bus()
        got = Collector()
        group = names.group("foreign")
        b.subscribe(names.topic("ext.*"), got, group=group)
        b.declare()
        b.start()
        foreign_publisher(names.topic("ext.raw"), b"\xff\xfenot json at all")
        ok = bus().publish(names.topic("ext.ok"), {"fine": True}).id
        got.wait_until(lambda evs: any(e.id == ok for e in evs))
        assert all(e.id == ok for e in got.events), "a foreign message reached the handler"
        tools = b.adapter
        if not isinstance(tools, DeadLetterTools):
            return
        letters = eventually(lambda: tools.dead_letters(group), what="a dead letter")
        assert any("undecodable" in reason for _, reason in letters), letters

    # -- persistence across a broker restart ------------------------------------------------------
    def test_events_survive_broker_restart(
        self, bus: Any, names: Names, broker_restart: Callable[[], None] | None
    ) -> None:
        b = bus()
        _need(b.adapter, "persistence")
        if broker_restart is None:
            pytest.skip("the row provides no broker_restart fixture")
        got = Collector()
        b.subscribe(names.topic("durable.*"), got, group=names.group("durable"))
        b.declare()
        p = bus()
        ids = {
            r.id
            for r in p.publish_many(p.event(names.topic("durable.x"), {"i": i}) for i in range(50))
        }
        broker_restart()
        after = bus()
        after.subscribe(names.topic("durable.*"), got, group=names.group("durable"))
        after.start()
        assert {e.id for e in got.wait(50, idle=60)} == ids

    # -- delayed redelivery -----------------------------------------------------------------------
    def test_nack_delay_holds_the_event_back(self, make: AdapterFactory, names: Names) -> None:
        a = make()
        _need(a, "delayed_delivery")
        group, topic = names.group("delay"), names.topic("delay.x")
        c = a.consumer(group, [topic])
        a.publish([encode(Event(type=topic, data={}, source="/c"))])
        first = eventually(lambda: _take(c, 1, 0.5), what="the event")
        nacked_at = time.monotonic()
        c.nack(first[0], 2.0)
        again = eventually(lambda: _take(c, 1, 0.5), timeout=30, what="the redelivery")
        waited = time.monotonic() - nacked_at
        assert again[0].message.headers["id"] == first[0].message.headers["id"]
        assert again[0].attempt == first[0].attempt + 1
        assert waited >= 1.0, f"redelivered after {waited:.2f}s, asked for 2s"
        c.ack(again)
        c.close()

    # -- dedup ------------------------------------------------------------------------------------
    def test_broker_dedup_drops_a_second_copy(self, bus: Any, names: Names) -> None:
        b = bus()
        _need(b.adapter, "dedup")
        got = Collector()
        b.subscribe(names.topic("once.*"), got, group=names.group("once"))
        b.declare()
        b.start()
        p = bus()
        e = p.event(names.topic("once.x"), {"v": 1})
        p.publish_many([e])
        p.publish_many([e])
        sentinel = p.publish(names.topic("once.x"), {"v": 2}).id
        got.wait_until(lambda evs: any(x.id == sentinel for x in evs))
        assert Counter(x.id for x in got.events)[e.id] == 1

    # -- typed contracts: bad data is a dead letter at once, good data a model ---------------
    def test_typed_handler_gets_models_and_bad_data_is_dead_lettered_at_once(
        self, bus: Any, names: Names
    ) -> None:
        from dataclasses import dataclass

        from eventbus.contracts import event_type

        topic = names.topic("typed.order")

        @event_type(topic)
        @dataclass
        class TypedOrder:
            id: int
            total: float

        got: list[TypedOrder] = []
        lock = threading.Lock()
        group = names.group("typed")

        def invoice(order: TypedOrder) -> None:
            with lock:
                got.append(order)

        b = bus()
        b.subscribe(topic, invoice, group=group)
        b.declare()
        b.start()
        p = bus()
        bad = p.publish(topic, {"id": "seven"}).id  # a foreign producer's wrong data
        p.publish(TypedOrder(id=1, total=2.5))
        eventually(lambda: got, what="the valid order")
        assert got == [TypedOrder(id=1, total=2.5)]
        tools = b.adapter
        if isinstance(tools, DeadLetterTools):
            letters = eventually(lambda: tools.dead_letters(group), what="the refused event")
            [(delivery, reason)] = letters
            assert delivery.message.headers["id"] == bad
            assert delivery.attempt == 1, f"validation was retried ({delivery.attempt})"
            assert "ValidationError" in reason, reason
            assert "id: expected integer, got string" in reason, reason
            assert "total: field required" in reason, reason

    # -- 14. the orders/billing example, unchanged, on this adapter ---------------------------
    def test_orders_billing_example_makes_the_same_invoices(self, bus: Any, names: Names) -> None:
        example = "eventbus.examples.orders_billing"  # shipped in the package
        orders = importlib.import_module(f"{example}.orders")
        billing = importlib.import_module(f"{example}.billing")
        notifications = importlib.import_module(f"{example}.notifications")
        # The example's own handlers and patterns; only the group names are made unique
        # (the shared broker may hold other runs' groups). Events are told apart by id.
        worker = bus()
        billing.attach(worker, group=names.group("billing"))
        notifications.attach(worker, group=names.group("notify"))
        worker.declare()
        worker.start()
        shop = bus()
        placed = [orders.place_order(shop, orders.new_order(i)).event for i in range(1, 21)]
        ids = {e.id for e in placed}

        def ours(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [x for x in list(items) if x["event"] in ids]

        eventually(lambda: len(ours(billing.INVOICES)) >= 20, timeout=30, what="20 invoices")
        eventually(lambda: len(ours(notifications.SENT)) >= 20, timeout=30, what="20 notices")
        order = importlib.import_module(f"{example}.contracts").OrderCreated
        expected = [billing.make_invoice(order(**e.data), e.id) for e in placed]
        made = ours(billing.INVOICES)  # redelivery may repeat an invoice, never change one
        assert {i["invoice"]: i for i in made} == {i["invoice"]: i for i in expected}
        assert {n["event"] for n in ours(notifications.SENT)} == ids

    # -- dead-letter tooling and group removal (optional adapter methods) ---------------------
    def test_dead_letter_tooling_and_delete_group(self, make: AdapterFactory, names: Names) -> None:
        a = make()
        if not isinstance(a, DeadLetterTools):
            pytest.skip("adapter has no dead-letter tooling (does not implement DeadLetterTools)")
        group, topic = names.group("dlq"), names.topic("dlq.x")
        c = a.consumer(group, [topic])
        bystander = make().consumer(names.group("dlq-other"), [topic])  # a second group
        sent = Event(type=topic, data={"n": 1}, source="/c")
        a.publish([encode(sent)])
        first = eventually(lambda: _take(c, 1, 0.5), what="the event")
        bystander.ack(_receive(bystander, 1))
        c.dead_letter(first[0], "tooling test")
        letters = eventually(lambda: a.dead_letters(group), what="the dead letter")
        (delivery, reason), *rest = letters
        assert not rest and delivery.message.headers["id"] == sent.id
        assert reason == "tooling test"
        assert a.replay_dead_letters(group) == 1
        again = eventually(lambda: _take(c, 1, 0.5), timeout=30, what="the replayed event")
        assert again[0].message.headers["id"] == sent.id
        assert again[0].attempt == 1, f"replayed with attempt {again[0].attempt}"
        assert a.dead_letters(group) == []
        leaked = bystander.receive(10, 0.5)
        assert leaked == [], "a replay of one group's dead letter reached another group"
        bystander.close()
        c.dead_letter(again[0], "again")
        eventually(lambda: a.dead_letters(group), what="the second dead letter")
        assert a.purge_dead_letters(group) == 1
        assert a.dead_letters(group) == []
        c.close()
        if not isinstance(a, GroupAdmin):
            pytest.skip("adapter cannot delete groups (does not implement GroupAdmin)")
        a.delete_group(group)
        a.delete_group(group)  # idempotent
        a.publish([encode(Event(type=topic, data={"n": 2}, source="/c"))])  # kept for nobody
        c2 = a.consumer(group, [topic])  # the group again, new: it starts empty
        later = Event(type=topic, data={"n": 3}, source="/c")
        a.publish([encode(later)])
        got = eventually(lambda: c2.receive(10, 0.5), timeout=30, what="the later event")
        assert [d.message.headers["id"] for d in got] == [later.id]
        c2.ack(got)
        assert c2.receive(10, 1.0) == []
        assert a.dead_letters(group) == []
        c2.close()
        a.delete_group(group)
