"""The idempotent consumer: the inbox contract on SQLite, Redis and PostgreSQL,
and the worker dropping duplicates through it (on the memory broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_DSN

from eventbus import (
    BusConfig,
    ConfigError,
    Event,
    EventBus,
    Inbox,
    MemoryAdapter,
    PostgresInbox,
    RedisInbox,
    RetryPolicy,
    SqliteInbox,
    open_inbox,
)

pytestmark = pytest.mark.memory


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def make_inbox(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Any]:
    """``make_inbox()``: a new inbox (its own owner id) on one shared store."""
    made: list[Inbox] = []
    prefix = f"eventbus:test:{uuid.uuid4().hex[:8]}:"
    table = f"inbox_{uuid.uuid4().hex[:8]}"
    kind = request.param
    if kind == "redis":
        request.getfixturevalue("redis_url")
    if kind == "postgres":
        request.getfixturevalue("pg_conn")

    def make() -> Inbox:
        if kind == "sqlite":
            i: Inbox = SqliteInbox(workdir / "inbox.db")
        elif kind == "redis":
            i = RedisInbox(prefix=prefix)
        else:
            i = PostgresInbox(PG_DSN, table=table)
        made.append(i)
        return i

    yield make
    if kind == "redis":
        import redis

        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in r.scan_iter(f"{prefix}*"):
            r.delete(key)
        r.close()
    if kind == "postgres":
        import psycopg

        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    for i in made:
        i.close()


def test_claim_complete_release(make_inbox: Any) -> None:
    a, b = make_inbox(), make_inbox()
    assert a.claim("g", "e1", 30)[0] == "new"
    status, wait = b.claim("g", "e1", 30)
    assert status == "busy" and 25 < wait <= 30
    assert b.claim("other-group", "e1", 30)[0] == "new"  # groups are independent
    a.complete("g", "e1")
    assert b.claim("g", "e1", 30) == ("done", 0.0)
    assert a.claim("g", "e1", 30) == ("done", 0.0)

    assert a.claim("g", "e2", 30)[0] == "new"
    b.release("g", "e2")  # not b's claim: no effect
    assert b.claim("g", "e2", 30)[0] == "busy"
    a.release("g", "e2")
    assert b.claim("g", "e2", 30)[0] == "new"


def test_a_dead_members_claim_runs_out(make_inbox: Any) -> None:
    a, b = make_inbox(), make_inbox()
    assert a.claim("g", "e", 0.3)[0] == "new"
    assert b.claim("g", "e", 0.3)[0] == "busy"
    deadline = time.monotonic() + 5
    while b.claim("g", "e", 10)[0] != "new":
        assert time.monotonic() < deadline, "claim never ran out"
        time.sleep(0.05)  # polling until the lease ends
    assert a.claim("g", "e", 10)[0] == "busy"


def test_concurrent_claims_have_one_winner(make_inbox: Any) -> None:
    members = [make_inbox() for _ in range(4)]
    wins: Counter[str] = Counter()
    lock = threading.Lock()

    def race(inbox: Inbox) -> None:
        for n in range(50):
            if inbox.claim("g", f"e{n}", 30)[0] == "new":
                with lock:
                    wins[f"e{n}"] += 1

    threads = [threading.Thread(target=race, args=(m,)) for m in members]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 50 and set(wins.values()) == {1}


def test_open_inbox_by_url(workdir: Path) -> None:
    i = open_inbox("sqlite:///state/inbox.db")
    assert isinstance(i, SqliteInbox) and i.path == Path("state/inbox.db")
    i.close()
    assert (workdir / "state" / "inbox.db").exists()
    with pytest.raises(ConfigError, match="inbox URL"):
        open_inbox("kafka://nope")


# -- through the worker -----------------------------------------------------------------------


def _bus(broker: MemoryAdapter, inbox: Inbox, **config: Any) -> EventBus:
    return EventBus(
        broker.client(), source="/t", inbox=inbox, config=BusConfig(poll_interval=0.05, **config)
    )


def _wait(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)  # polling with a deadline


def test_worker_runs_a_handler_once_per_event_id(workdir: Path) -> None:
    broker = MemoryAdapter()
    inbox = SqliteInbox(workdir / "i.db")
    calls: Counter[str] = Counter()
    bus = _bus(broker, inbox)
    bus.subscribe("pay.*", lambda e: calls.update([e.id]), group="billing")
    bus.start()
    event = bus.event("pay.made", {"n": 1})
    other = bus.event("pay.made", {"n": 2})
    bus.publish_many([event, event, other, event])  # the same id three times
    _wait(lambda: broker.depth("billing") == 0 and sum(calls.values()) >= 2, "handled")
    bus.publish_many([event.replace(data={"n": 99})])  # same id, later: still a duplicate
    _wait(lambda: broker.depth("billing") == 0 and bus._worker.duplicates >= 3, "dropped")
    assert calls == {event.id: 1, other.id: 1}
    bus.close()
    inbox.close()


def test_failed_handler_releases_its_claim_so_the_retry_runs(workdir: Path) -> None:
    broker = MemoryAdapter()
    inbox = SqliteInbox(workdir / "i.db")
    attempts: list[int] = []

    def flaky(e: Event) -> None:
        attempts.append(e.attempt)
        if e.attempt < 3:
            raise RuntimeError("not yet")

    bus = _bus(broker, inbox)
    bus.subscribe(
        "job.run", flaky, group="jobs", retry=RetryPolicy(max_attempts=5, initial_delay=0.01)
    )
    bus.start()
    bus.publish("job.run", {})
    _wait(lambda: attempts == [1, 2, 3] and broker.depth("jobs") == 0, f"attempts {attempts}")
    bus.close()
    inbox.close()


def test_an_event_held_by_a_live_member_comes_back_later(workdir: Path) -> None:
    """Two copies reach two members at once: one runs the handler, the other waits
    for its claim, then drops the copy as done."""
    broker = MemoryAdapter()
    inbox = SqliteInbox(workdir / "i.db")
    started = threading.Event()
    release = threading.Event()
    calls: Counter[str] = Counter()

    def slow(e: Event) -> None:
        calls[e.id] += 1
        started.set()
        release.wait(10)

    bus = _bus(broker, inbox, concurrency=2, prefetch=1)
    bus.subscribe("x.y", slow, group="g")
    bus.start()
    e = bus.event("x.y", {})
    bus.publish_many([e, e])
    assert started.wait(5)
    _wait(lambda: broker.depth("g") == 2, "second copy in flight")
    release.set()
    _wait(lambda: broker.depth("g") == 0, "both settled")
    assert calls[e.id] == 1
    bus.close()
    inbox.close()


def test_inbox_from_config_url(workdir: Path) -> None:
    broker = MemoryAdapter()
    calls: Counter[str] = Counter()
    bus = EventBus(
        broker.client(),
        source="/t",
        config=BusConfig(poll_interval=0.05, inbox="sqlite:///.eventbus/inbox.db"),
    )
    bus.subscribe("a.b", lambda e: calls.update([e.id]), group="g")
    bus.start()
    e = bus.event("a.b", {})
    bus.publish_many([e, e])
    _wait(lambda: broker.depth("g") == 0 and sum(calls.values()) == 1, "handled once")
    bus.close()
    assert (workdir / ".eventbus" / "inbox.db").exists()
    assert calls == {e.id: 1}
