"""The conformance suite must fail broken adapters (issue #22): a mutation check.

Each mutant below is the in-memory adapter with one deliberate bug, one of the
ten an outside adapter shipped with while passing the old suite, plus the
capabilities mix-up of docs/writing-an-adapter.md. The test runs, in one inner
pytest session (``pytester``, in process), only the conformance tests meant to
catch each mutant (``CATCHES``), on that mutant, and on the unmodified memory
adapter as a control; it asserts that every mutant fails its test(s) and the
control passes them all. Waits are scaled by ``EVENTBUS_TIMEOUT_MULTIPLIER=0.3``
(the memory broker answers at once; lease waits are not scaled), so the whole
check takes about half a minute. ``scripts/mutation_check.py`` runs the whole
suite on every mutant and prints which tests each one fails.

The mutants wrap the adapter's public surface (``MemoryAdapter`` and the
``Consumer`` it returns); the real memory adapter is not changed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from eventbus import Capabilities, ClosedError, Consumer, Delivery, MemoryAdapter, Message
from eventbus.testing import AdapterConformance

pytest_plugins = ["pytester"]


# -- the mutants ----------------------------------------------------------------------------------
class _Wrapped(Consumer):
    """A consumer that forwards to the memory adapter's own; mutants override one method."""

    def __init__(self, adapter: Any, group: str, inner: Consumer) -> None:
        self.adapter = adapter
        self.group = group
        self.inner = inner
        self.closed = False

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self.closed:
            raise ClosedError("consumer is closed")
        return self.inner.receive(max_messages, timeout)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.inner.ack(deliveries)

    def nack(self, delivery: Delivery, delay: float) -> None:
        self.inner.nack(delivery, delay)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.inner.dead_letter(delivery, reason)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class MutantAdapter(MemoryAdapter):
    """The memory adapter, its consumers wrapped in ``consumer_class``; unbroken as is."""

    consumer_class: type[_Wrapped] = _Wrapped

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.setup()

    def client(self) -> MutantAdapter:
        other = super().client()
        other.__class__ = type(self)  # same broker state, this mutant's behaviour
        assert isinstance(other, MutantAdapter)
        other.setup()
        return other

    def setup(self) -> None:
        """Per-client state of a mutant."""

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        return self.consumer_class(self, group, super().consumer(group, patterns))


class _AckDoesNothing(_Wrapped):
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        pass


class AckDoesNothing(MutantAdapter):
    """1. ``ack()`` does nothing: the deliveries come back when the lease runs out."""

    consumer_class = _AckDoesNothing


class _DeadLetterKeepsOriginal(_Wrapped):
    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.adapter.letters.setdefault(self.group, []).append((delivery, reason))


class DeadLetterKeepsOriginal(MutantAdapter):
    """2. ``dead_letter()`` copies to the dead letter but never removes the original."""

    consumer_class = _DeadLetterKeepsOriginal
    letters: dict[str, list[tuple[Delivery, str]]]

    def setup(self) -> None:
        self.letters = self.__dict__.setdefault("letters", {})

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        return self.letters.get(group, [])[:limit]


class IgnoresPatterns(MutantAdapter):
    """3. A group receives every topic, whatever its patterns (the bus dead-letters them)."""

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        super().declare(group, ["#"])


class AltersAttributes(MutantAdapter):
    """4. Attribute values lose leading/trailing spaces and CR/LF on the way."""

    def publish(self, messages: Sequence[Message]) -> None:
        def clean(value: str) -> str:
            return value.replace("\r\n", "\n").strip()

        super().publish(
            [
                Message(m.topic, m.body, {k: clean(v) for k, v in m.headers.items()}, m.key)
                for m in messages
            ]
        )


class _CloseKeepsDeliveries(_Wrapped):
    def close(self) -> None:
        self.closed = True  # the inner consumer keeps its leases until they run out


class CloseKeepsDeliveries(MutantAdapter):
    """5. ``Consumer.close()`` does not hand unsettled deliveries back (only the lease does)."""

    consumer_class = _CloseKeepsDeliveries


class RedeclareKeepsPatterns(MutantAdapter):
    """6. ``declare`` of an existing group keeps its first patterns."""

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        seen = self.__dict__.setdefault("declared", set())
        if group not in seen:
            seen.add(group)
            super().declare(group, patterns)


class ReplayReachesEveryGroup(MutantAdapter):
    """7. A dead-letter replay is published again: every group on the topic gets it."""

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        letters = self.dead_letters(group, limit if limit is not None else 1_000_000)
        self.purge_dead_letters(group)
        self.publish([d.message for d, _ in letters])
        return len(letters)


class _ReceivesTooMany(_Wrapped):
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        return super().receive(max_messages + 2, timeout)


class ReceivesTooMany(MutantAdapter):
    """8. ``receive(max)`` returns up to ``max + 2``."""

    consumer_class = _ReceivesTooMany


class CrashIsClose(MutantAdapter):
    """9. The crash hook closes cleanly: deliveries come back at once, not after the lease."""

    def setup(self) -> None:
        self.made: list[Consumer] = []

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        c = super().consumer(group, patterns)
        self.made.append(c)
        return c

    def simulate_crash(self) -> None:
        for c in self.made:
            c.close()


class PublishReturnsEarly(MutantAdapter):
    """10. ``publish`` returns before the broker has the messages (sent at close)."""

    def setup(self) -> None:
        self.pending: list[Message] = []

    def publish(self, messages: Sequence[Message]) -> None:
        self.pending.extend(messages)

    def close(self) -> None:
        pending, self.pending = self.pending, []
        if pending:
            super().publish(pending)
        super().close()


class CapabilitiesOnlyOnTheSpec(MutantAdapter):
    """11. docs/writing-an-adapter.md followed to the letter: capabilities only on the
    AdapterSpec, the instance keeps the base class's defaults."""

    def setup(self) -> None:
        self.capabilities = Capabilities(lease_seconds=self.lease)


#: mutant -> the conformance tests that must fail on it
CATCHES: dict[type[MutantAdapter], tuple[str, ...]] = {
    AckDoesNothing: ("test_settled_deliveries_stay_settled_past_the_lease",),
    DeadLetterKeepsOriginal: ("test_settled_deliveries_stay_settled_past_the_lease",),
    IgnoresPatterns: (
        "test_group_receives_only_topics_its_patterns_match",
        "test_wildcards_mean_the_same_everywhere",
    ),
    AltersAttributes: ("test_attributes_and_binary_payloads_round_trip",),
    CloseKeepsDeliveries: ("test_close_hands_unsettled_deliveries_back_at_once",),
    RedeclareKeepsPatterns: ("test_declare_replaces_the_group_patterns",),
    ReplayReachesEveryGroup: ("test_dead_letter_tooling_and_delete_group",),
    ReceivesTooMany: (  # every adapter-level wait checks receive(n) <= n
        "test_published_messages_survive_the_publisher_crashing",
        "test_group_receives_only_topics_its_patterns_match",
    ),
    CrashIsClose: ("test_unacked_event_waits_for_lease_then_goes_to_another_member",),
    PublishReturnsEarly: ("test_published_messages_survive_the_publisher_crashing",),
    CapabilitiesOnlyOnTheSpec: ("test_capabilities_agree_with_the_registered_spec",),
}


# -- conformance rows (not collected here: no Test prefix; the inner session collects them) ----
class MemoryRow(AdapterConformance):
    """The row of tests/core/test_conformance_memory.py, for any memory-like adapter class."""

    marker = "memory"
    adapter_class: type[MemoryAdapter] = MemoryAdapter

    @pytest.fixture
    def adapter_factory(self) -> Any:
        broker = self.adapter_class(lease=2.0, max_message_size=64 * 1024)
        yield broker.client
        broker.close()

    @pytest.fixture
    def foreign_publisher(self, adapter_factory: Callable[[], MemoryAdapter]) -> Any:
        client = adapter_factory()
        return lambda topic, body: client.publish([Message(topic=topic, body=body, headers={})])

    @pytest.fixture
    def crash(self) -> Callable[[Any], None]:
        return lambda adapter: getattr(adapter, "simulate_crash", lambda: None)()


def row(mutant: type[MemoryAdapter]) -> type[MemoryRow]:
    return type(f"Row{mutant.__name__}", (MemoryRow,), {"adapter_class": mutant})


ROWS = {m.__name__: row(m) for m in CATCHES}
ROWS["Control"] = MemoryRow


def test_the_suite_fails_every_mutant(pytester: pytest.Pytester, monkeypatch: Any) -> None:
    monkeypatch.setenv("EVENTBUS_TIMEOUT_MULTIPLIER", "0.3")
    monkeypatch.setenv("EVENTBUS_TIER", "short")
    here = sys.modules[__name__]
    monkeypatch.setitem(sys.modules, "eventbus_conformance_mutants", here)
    lines = ["from eventbus_conformance_mutants import ROWS", ""]
    lines += [f"Test{name} = ROWS[{name!r}]" for name in ROWS]
    pytester.makepyfile(test_rows="\n".join(lines) + "\n")
    control = sorted({t for tests in CATCHES.values() for t in tests})
    ids = [f"test_rows.py::Test{m.__name__}::{t}" for m, tests in CATCHES.items() for t in tests]
    ids += [f"test_rows.py::TestControl::{t}" for t in control]
    rec = pytester.inline_run(*ids, "-p", "no:cacheprovider", "-q")
    outcome: dict[tuple[str, str], str] = {}
    for report in rec.getreports("pytest_runtest_logreport"):
        cls, test = report.nodeid.split("::")[1:3]
        if report.when == "call":
            outcome[cls, test] = report.outcome
        elif report.outcome != "passed":  # setup or teardown
            outcome.setdefault((cls, test), f"{report.when} {report.outcome}")
    survived = [
        f"{m.__name__} passed {t}"
        for m, tests in CATCHES.items()
        for t in tests
        if outcome.get((f"Test{m.__name__}", t)) != "failed"
    ]
    broken_control = {t: outcome.get(("TestControl", t)) for t in control}
    assert {t: o for t, o in broken_control.items() if o != "passed"} == {}, (
        "the unmodified memory adapter must pass the tests the mutants fail"
    )
    assert survived == [], f"mutants the suite does not catch: {survived}"
