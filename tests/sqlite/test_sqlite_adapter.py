"""The SQLite adapter on a real file: URLs, the log, dead letters, leases, keys,
restarts and the errors a user can meet (locked, corrupt, unwritable)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from eventbus import (
    BrokerError,
    BrokerUnavailable,
    BusConfig,
    ClosedError,
    ConfigError,
    Event,
    EventBus,
    LogEntry,
    PublishError,
    RetryPolicy,
    SqliteAdapter,
    create_adapter,
    encode,
    find_spec,
)

from .conftest import raw_publish, wait_for

pytestmark = [pytest.mark.sqlite]


def msg(topic: str = "order.created", data: object = None, key: str | None = None):
    return encode(Event(type=topic, data=data if data is not None else {}, source="/t", key=key))


def take(consumer, n: int, timeout: float = 10.0):
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += consumer.receive(n - len(got), 0.2)
    return got


# -- registration and URLs ---------------------------------------------------------------
def test_registered_as_entry_point_and_default(tmp_path, monkeypatch):
    spec = find_spec("sqlite")
    assert spec.default_url == "sqlite:///eventbus.db"
    assert spec.schemes == ("sqlite",)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTBUS_URL", raising=False)
    monkeypatch.delenv("EVENTBUS_BROKER", raising=False)
    monkeypatch.delenv("EVENTBUS_CONFIG", raising=False)
    bus = EventBus()
    try:
        assert isinstance(bus.adapter, SqliteAdapter)
        assert bus.adapter.path == str(tmp_path / "eventbus.db")
        caps = bus.adapter.capabilities
        assert caps.persistence and caps.replay and caps.ordering_per_key
        assert caps.delayed_delivery and caps.native_dead_letter and caps.cross_process
    finally:
        bus.close()


def test_urls_relative_absolute_and_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rel = create_adapter(None, "sqlite:///sub.db?lease=5&busy_timeout=1")
    absolute = create_adapter(None, f"sqlite:///{tmp_path}/abs.db", {"lease": 7})
    try:
        assert rel.path == str(tmp_path / "sub.db")
        assert rel.capabilities.lease_seconds == 5.0
        assert absolute.path == str(tmp_path / "abs.db")
        assert absolute.capabilities.lease_seconds == 7.0  # the mapping wins over the query
    finally:
        rel.close()
        absolute.close()


@pytest.mark.parametrize(
    ("url", "options", "needle"),
    [
        ("sqlite://host/x.db", {}, "host part"),
        ("sqlite://", {}, "names no file"),
        ("sqlite:///:memory:", {}, "memory://"),
        ("sqlite:///x.db?leese=3", {}, "did you mean 'lease'"),
        ("sqlite:///x.db", {"lease": "soon"}, "number of seconds"),
        ("sqlite:///x.db", {"retention": "forever"}, "'7d'"),
        ("sqlite:///x.db", {"synchronous": "sometimes"}, "synchronous"),
        ("sqlite:///no/such/dir/x.db", {}, "does not exist"),
    ],
)
def test_bad_urls_and_options_are_config_errors(tmp_path, monkeypatch, url, options, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=needle):
        create_adapter(None, url, options)


# -- errors a user meets -------------------------------------------------------------------
def test_locked_database_is_broker_unavailable(make_adapter, db_path):
    adapter = make_adapter(busy_timeout=0.2)
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="locked") as info:
            adapter.publish([msg()])
        assert time.monotonic() - started < 5
        assert db_path in str(info.value) and "busy_timeout" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    adapter.publish([msg()])  # fine once the lock is gone


def test_corrupt_or_foreign_file_is_a_clear_broker_error(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(BrokerError, match="not an SQLite database or is corrupt") as info:
        SqliteAdapter(path)
    assert str(path) in str(info.value)


def test_unwritable_path_is_a_config_error(tmp_path):
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "bus.db"
    else:  # root may write anywhere but in /proc, where no file can be created
        target = Path("/proc/eventbus-test.db")
        if not target.parent.is_dir():
            pytest.skip("running as root on a system without /proc: no unwritable directory")
    try:
        with pytest.raises(ConfigError, match="writable") as info:
            SqliteAdapter(target)
        assert str(target) in str(info.value)
    finally:
        if target.parent != Path("/proc"):
            target.parent.chmod(0o700)


def test_directory_as_path_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        SqliteAdapter(tmp_path)


def test_newer_schema_is_refused(db_path):
    SqliteAdapter(db_path).close()
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(ConfigError, match="newer eventbus"):
        SqliteAdapter(db_path)


def test_another_applications_database_is_refused_untouched(db_path):
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    with pytest.raises(ConfigError, match=r"another application's database .*customers"):
        SqliteAdapter(db_path)
    conn = sqlite3.connect(db_path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    conn.close()
    assert tables == ["customers"]


def test_closed_adapter_refuses(make_adapter):
    a = make_adapter()
    c = a.consumer("g", ["#"])
    a.close()
    a.close()  # idempotent
    with pytest.raises(ClosedError):
        a.publish([msg()])
    with pytest.raises(ClosedError):
        c.receive(1, 0.1)
    c.close()


# -- the log ---------------------------------------------------------------------------------
def test_log_lists_every_event_with_seq_time_and_filter(make_adapter):
    a = make_adapter()
    before = time.time()
    a.publish([msg("order.created", {"i": i}) for i in range(5)])
    a.publish([msg("user.created", {"u": 1}, key="k1")])
    entries = a.log()
    assert [type(e) for e in entries] == [LogEntry] * 6
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert all(before <= e.published_at <= time.time() for e in entries)
    assert entries[-1].message.topic == "user.created" and entries[-1].message.key == "k1"
    assert entries[-1].message.headers["type"] == "user.created"
    page = a.log(limit=2, after=entries[1].seq)
    assert [e.seq for e in page] == [entries[2].seq, entries[3].seq]
    assert [e.message.topic for e in a.log(pattern="user.#")] == ["user.created"]
    assert len(a.log(pattern="order.*", limit=3)) == 3
    assert a.log(after=entries[-1].seq) == []


def test_retention_by_count_keeps_what_groups_still_need(make_adapter):
    a = make_adapter(retention="10 events")
    a.declare("slow", ["keep.#"])
    a.publish([msg("keep.me", {"i": 0})])  # waits for group 'slow'
    a.publish([msg("drop.me", {"i": i}) for i in range(30)])
    removed = a.prune()
    assert removed == 20
    topics = [e.message.topic for e in a.log(limit=1000)]
    assert topics[0] == "keep.me" and len(topics) == 11


def test_retention_prunes_large_logs_in_chunks(make_adapter):
    a = make_adapter(retention="100 events")
    for start in range(0, 12_000, 2000):
        a.publish([msg("bulk.x", {"i": start + i}) for i in range(2000)])
    assert a.prune() == 10_000  # the first publish already pruned its own 1,900
    assert a.prune() == 0
    entries = a.log(limit=1000)
    assert len(entries) == 100 and entries[0].message.body == b'{"i":11900}'


def test_retention_by_age(make_adapter, db_path):
    a = make_adapter(retention="1h")
    a.publish([msg("old.x") for _ in range(3)])
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("UPDATE log SET published_at = published_at - 7200")
    conn.close()
    a.publish([msg("new.x")])
    a.prune()
    assert [e.message.topic for e in a.log()] == ["new.x"]


# -- dead letters --------------------------------------------------------------------------
def test_dead_letters_listed_purged_and_replayed(make_adapter):
    a = make_adapter()
    c = a.consumer("billing", ["order.#"])
    a.publish([msg("order.created", {"i": i}) for i in range(3)])
    got = take(c, 3)
    for d in got:
        c.dead_letter(d, f"bad {d.message.body.decode()}")
    letters = a.dead_letters("billing")
    assert [r for _, r in letters] == [f"bad {d.message.body.decode()}" for d in got]
    assert all(d.attempt == 1 for d, _ in letters)
    assert a.depth("billing") == 0
    assert a.dead_letters("nobody") == []
    assert a.replay_dead_letters("billing") == 3
    assert a.dead_letters("billing") == []
    again = take(c, 3)
    assert [d.message.body for d in again] == [d.message.body for d in got]
    assert all(d.attempt == 1 for d in again)  # attempts start again
    c.dead_letter(again[0], "once more")
    c.ack(again[1:])
    assert a.purge_dead_letters("billing") == 1
    assert a.purge_dead_letters("billing") == 0
    assert a.depth("billing") == 0
    c.close()


def test_foreign_rows_are_dead_lettered_and_the_worker_goes_on(make_adapter, db_path):
    a = make_adapter()
    bus = EventBus(a, config=BusConfig(retry=RetryPolicy(max_attempts=1)))
    seen: list[Event] = []
    bus.subscribe("ext.#", seen.append, group="ext")
    bus.declare()
    raw_publish(db_path, "ext.raw", b"\xff not json", headers="this is not json")
    raw_publish(db_path, "ext.raw", b"{}", headers='["a list"]')
    bus.start()
    ok = bus.publish("ext.ok", {"fine": True}).id
    wait_for(lambda: any(e.id == ok for e in seen), what="the good event")
    letters = wait_for(lambda: len(a.dead_letters("ext")) == 2 and a.dead_letters("ext"))
    assert all("undecodable" in reason for _, reason in letters)
    assert [d.message.headers for d, _ in letters] == [{}, {}]
    bus.close()


# -- leases, attempts, keys ------------------------------------------------------------------
def test_nack_delay_close_and_lease_expiry_count_attempts(make_adapter):
    a = make_adapter(lease=1.0)
    c1 = a.consumer("g", ["#"])
    a.publish([msg("x", {"i": 1})])
    (d,) = take(c1, 1)
    assert d.attempt == 1
    c1.nack(d, 0.3)
    assert c1.receive(1, 0.05) == []  # held back
    (d,) = take(c1, 1)
    assert d.attempt == 2
    c1.close()  # unsettled: back at once
    c2 = a.consumer("g", ["#"])
    (d,) = c2.receive(1, 0.5)
    assert d.attempt == 3
    # c2 "crashes": never settles; after the lease another member gets it
    c3 = a.consumer("g", ["#"])
    started = time.monotonic()
    (d3,) = take(c3, 1)
    assert time.monotonic() - started >= 0.5
    assert d3.attempt == 4
    c2.ack([d])  # a late ack from the old holder does not remove the new lease
    assert a.depth("g") == 1
    c3.ack([d3])
    assert a.depth("g") == 0
    c3.close()


def test_one_event_per_key_in_flight_across_members(make_adapter):
    a = make_adapter()
    c1, c2 = a.consumer("g", ["#"]), a.consumer("g", ["#"])
    a.publish([msg("x", {"i": i}, key=f"k{i % 2}") for i in range(6)] + [msg("x", {"free": 1})])
    first = c1.receive(10, 1)
    assert sorted(d.message.key or "-" for d in first) == ["-", "k0", "k1"]
    assert c2.receive(10, 0.2) == []  # both keys are held by c1
    by_key = {d.message.key: d for d in first}
    c1.nack(by_key["k0"], 0)  # a retry keeps its place: k0's next is not handed out
    (again,) = c2.receive(10, 1)
    assert again.message.key == "k0" and again.message.body == by_key["k0"].message.body
    c1.ack([by_key["k1"]])
    (nxt,) = c2.receive(10, 1)
    assert nxt.message.key == "k1" and nxt.message.body == b'{"i":3}'
    c1.close()
    c2.close()


def test_restart_keeps_undelivered_events(db_path):
    a = SqliteAdapter(db_path)
    a.declare("billing", ["order.#"])
    a.publish([msg("order.created", {"i": i}) for i in range(20)])
    c = a.consumer("billing", ["order.#"])
    got = take(c, 5)
    c.ack(got[:3])  # two taken but unsettled when the process "stops"
    c.close()
    a.close()
    b = SqliteAdapter(db_path)
    try:
        assert b.depth("billing") == 17
        c = b.consumer("billing", ["order.#"])
        rest = take(c, 17)
        bodies = sorted(int(d.message.body.decode()[5:-1]) for d in rest)
        assert bodies == list(range(3, 20))
        c.ack(rest)
        c.close()
    finally:
        b.close()


def test_publish_from_many_threads_while_consuming(make_adapter):
    a = make_adapter()
    bus = EventBus(a)
    got: list[int] = []
    lock = threading.Lock()

    def handle(e: Event) -> None:
        with lock:
            got.append(e.data["n"])

    bus.subscribe("t.#", handle, group="g", concurrency=2)
    bus.start()
    threads = [
        threading.Thread(
            target=lambda k=k: [bus.publish("t.x", {"n": k * 100 + i}) for i in range(100)]
        )
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: len(got) >= 400, what="400 events")
    assert sorted(got) == sorted(k * 100 + i for k in range(4) for i in range(100))
    bus.close()


def test_publish_error_leaves_nothing_half_sent(make_adapter, db_path):
    a = make_adapter()
    a.declare("g", ["#"])
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute(  # make the second insert of the batch fail inside the transaction
        "CREATE TRIGGER boom BEFORE INSERT ON log WHEN NEW.topic = 'bad' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    conn.close()
    with pytest.raises(PublishError, match="refused"):
        a.publish([msg("good"), msg("bad")])
    assert a.log() == [] and a.depth("g") == 0
