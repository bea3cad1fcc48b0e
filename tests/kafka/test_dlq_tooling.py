"""Dead-letter tooling on Kafka beyond the conformance test: replay order and limit, purge
counts, replay to one group only, unknown groups, and ``eventbus dlq`` against the broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eventbus_kafka import KafkaAdapter, KafkaSettings, _tooling

from eventbus import Consumer, Delivery, Event, encode
from eventbus.cli import main
from eventbus.testing import eventually

pytestmark = pytest.mark.kafka

Make = Callable[..., KafkaAdapter]


@pytest.fixture
def word() -> str:
    return "d" + uuid.uuid4().hex[:8]


def _take(c: Consumer, n: int, what: str) -> list[Delivery]:
    """Exactly the next ``n`` deliveries of ``c``, in the order it hands them out."""
    got: list[Delivery] = []
    while len(got) < n:
        got += eventually(lambda: c.receive(n - len(got), 0.5), timeout=30, what=what)
    assert len(got) == n
    return got


def _ids(letters: list[tuple[Delivery, str]]) -> list[str]:
    return [d.message.headers["id"] for d, _ in letters]


def _dead_letter(a: KafkaAdapter, c: Consumer, group: str, n: int, reason: str) -> list[str]:
    """Receive ``n`` events and dead-letter them one by one, each listed before the next
    (so their dead-letter times differ); returns their ids in dead-letter order."""
    order: list[str] = []
    for d in _take(c, n, "the events"):
        c.dead_letter(d, reason)
        order.append(d.message.headers["id"])
        eventually(lambda: len(a.dead_letters(group)) == len(order), what="the dead letter")
    return order


def _publish(a: KafkaAdapter, topic: str, n: int, key: str | None = None) -> list[str]:
    events = [Event(type=topic, data={"i": i}, source="/t", key=key) for i in range(n)]
    a.publish([encode(e) for e in events])
    return [e.id for e in events]


def test_replay_puts_letters_back_oldest_first_with_a_limit(make_adapter: Make, word: str) -> None:
    a = make_adapter()
    group, topic = f"{word}.g", f"{word}.paid"
    c = a.consumer(group, [topic])
    sent = _publish(a, topic, 5)
    order = _dead_letter(a, c, group, 5, "card declined")
    assert sorted(order) == sorted(sent)
    letters = a.dead_letters(group)
    assert _ids(letters) == order  # oldest first, across the dead-letter topic's partitions
    assert {reason for _, reason in letters} == {"card declined"}

    assert a.replay_dead_letters(group, 2) == 2
    assert _ids(a.dead_letters(group)) == order[2:]
    again = _take(c, 2, "the first two replayed")
    assert [d.message.headers["id"] for d in again] == order[:2]
    assert [d.attempt for d in again] == [1, 1]
    assert [d.message.topic for d in again] == [topic, topic]
    c.ack(again)

    assert a.replay_dead_letters(group) == 3
    assert a.dead_letters(group) == []
    rest = _take(c, 3, "the other three replayed")
    assert [d.message.headers["id"] for d in rest] == order[2:]
    assert all(d.attempt == 1 for d in rest)
    c.ack(rest)
    assert a.replay_dead_letters(group) == 0
    assert c.receive(10, 1.0) == []
    c.close()


def test_purge_counts_and_later_letters_are_listed(make_adapter: Make, word: str) -> None:
    a = make_adapter()
    group, topic = f"{word}.g", f"{word}.paid"
    c = a.consumer(group, [topic])
    _publish(a, topic, 3)
    _dead_letter(a, c, group, 3, "bad")
    assert a.purge_dead_letters(group) == 3
    assert a.dead_letters(group) == []
    assert a.purge_dead_letters(group) == 0
    assert a.replay_dead_letters(group) == 0
    (later,) = _publish(a, topic, 1)
    assert _dead_letter(a, c, group, 1, "worse") == [later]
    ((d, reason),) = a.dead_letters(group)
    assert d.message.headers["id"] == later and reason == "worse"
    # another adapter (another process) sees the same cursor
    assert _ids(make_adapter().dead_letters(group)) == [later]
    c.close()


def test_replay_reaches_only_the_dead_letters_group(make_adapter: Make, word: str) -> None:
    a = make_adapter()
    topic = f"{word}.shipped"
    failing, other = a.consumer(f"{word}.a", [topic]), a.consumer(f"{word}.b", [topic])
    (sent,) = _publish(a, topic, 1, key="order-7")
    (d,) = _take(failing, 1, "the event in group a")
    failing.dead_letter(d, "no stock")
    other.ack(_take(other, 1, "the event in group b"))
    eventually(lambda: a.dead_letters(f"{word}.a"), what="the dead letter")
    assert a.replay_dead_letters(f"{word}.a") == 1
    (again,) = _take(failing, 1, "the replayed event")
    assert again.message.headers["id"] == sent and again.message.key == "order-7"
    assert again.message.headers["source"] == "/t" and again.attempt == 1
    failing.ack([again])
    assert other.receive(10, 1.0) == []
    assert a.dead_letters(f"{word}.b") == []
    failing.close()
    other.close()


def test_a_group_nobody_declared(make_adapter: Make, word: str) -> None:
    a = make_adapter()
    assert a.dead_letters(f"{word}.none") == []
    assert a.replay_dead_letters(f"{word}.none") == 0
    assert a.purge_dead_letters(f"{word}.none") == 0
    a.delete_group(f"{word}.none")  # nothing there: no error
    a.delete_group(f"{word}.none")


# -- the CLI against the broker ----------------------------------------------------------------


@pytest.fixture
def cli(
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., tuple[int, str]]:
    """``cli("dlq", ...)`` runs ``eventbus`` in this process on a ``kafka://`` URL."""
    for name in ("EVENTBUS_CONFIG", "EVENTBUS_BROKER", "EVENTBUS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no eventbus.toml here
    s = kafka_settings
    monkeypatch.setenv("EVENTBUS_URL", f"kafka://{s.bootstrap_servers}?prefix={s.prefix}")

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out + out.err

    return run


def test_cli_lists_replays_and_purges(cli: Any, make_adapter: Make, word: str) -> None:
    a = make_adapter()
    group, topic = f"{word}.g", f"{word}.paid"
    c = a.consumer(group, [topic])
    _publish(a, topic, 4)
    order = _dead_letter(a, c, group, 4, "RuntimeError: card declined")

    code, out = cli("dlq", "list", group)
    assert code == 0, out
    assert [ln.split()[0] for ln in out.splitlines()[1:] if ln.strip()] == order
    code, out = cli("dlq", "replay", group, "--limit", "1", "--yes")
    assert code == 0 and "replayed 1 dead letter(s)" in out, out
    (first,) = _take(c, 1, "the replayed letter")
    assert first.message.headers["id"] == order[0] and first.attempt == 1
    c.ack([first])
    code, out = cli("dlq", "replay", group, "--yes")
    assert code == 0 and "replayed 3 dead letter(s)" in out, out
    rest = _take(c, 3, "the other replayed letters")
    assert [d.message.headers["id"] for d in rest] == order[1:]
    for d in rest:
        c.dead_letter(d, "again")
    eventually(lambda: len(a.dead_letters(group)) == 3, what="the letters dead again")
    code, out = cli("dlq", "purge", group, "--yes")
    assert code == 0 and "purged 3 dead letter(s)" in out, out
    code, out = cli("dlq", "list", group)
    assert code == 0 and "no dead letters" in out, out
    code, out = cli("dlq", "replay", group, "--yes")
    assert code == 0 and "nothing to replay" in out, out
    c.close()


def test_replay_in_several_rounds(
    make_adapter: Make, word: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tooling, "CHUNK", 2)  # 5 letters: rounds of 2, 2 and 1
    a = make_adapter()
    group, topic = f"{word}.g", f"{word}.paid"
    c = a.consumer(group, [topic])
    _publish(a, topic, 5)
    order = _dead_letter(a, c, group, 5, "bad")
    assert a.replay_dead_letters(group, 3) == 3
    assert _ids(a.dead_letters(group)) == order[3:]
    assert a.replay_dead_letters(group) == 2
    assert a.dead_letters(group) == []
    again = _take(c, 5, "the replayed letters")
    assert [d.message.headers["id"] for d in again] == order
    c.ack(again)
    c.close()
