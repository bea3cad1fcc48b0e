"""The publish path: retry → circuit breaker → local outbox → in-order drain.

Faults are real: the SQLite broker file locked by another connection, or
RabbitMQ behind a proxy that drops connections (see ``fault_harness``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fault_harness import FAST_RETRY, Ledger, Rig, SqliteRig, consumer, finish, producer, wait_for

from eventbus import (
    BrokerUnavailable,
    BusConfig,
    ConfigError,
    EventBus,
    MemoryAdapter,
    PublishSettings,
    load_config,
)

pytestmark = pytest.mark.sqlite  # rig-parametrised tests also get their rig's marker


@pytest.fixture
def sqlite_rig(workdir: Path):
    r = SqliteRig(workdir)
    yield r
    r.close()


def _collect(r: Rig, workdir: Path, topic: str, group: str) -> tuple[EventBus, Ledger, list[int]]:
    ledger = Ledger(workdir / f"ledger-{group}.db")
    order: list[int] = []

    def handle(e) -> None:
        order.append(e.data["i"])
        ledger.record(e.id)

    c = consumer(r, workdir)
    c.subscribe(topic, handle, group=group, retry=FAST_RETRY)
    c.start()
    return c, ledger, order


def test_broker_down_publish_goes_to_outbox_then_drains_once(down_rig: Rig, workdir: Path) -> None:
    topic, group = down_rig.names("fallback")
    c, ledger, _ = _collect(down_rig, workdir, topic, group)
    p = producer(down_rig, workdir)
    first = p.publish(topic, {"i": -1})
    assert first.outcome == "sent"
    down_rig.down()
    try:
        results = [p.publish(topic, {"i": i}) for i in range(50)]
        assert {r.outcome for r in results} == {"outbox"}
        assert p.breaker.state in ("open", "half-open")
        assert p.outbox_pending() == 50
    finally:
        down_rig.up()
    ids = {first.id} | {r.id for r in results}
    wait_for(
        lambda: ids <= set(ledger.counts()), idle=30, what="drained events", progress=ledger.rows
    )
    assert p.flush(10)
    assert p.outbox_pending() == 0
    assert p.breaker.state == "closed"
    assert all(n == 1 for n in ledger.counts().values())
    finish(p, c)
    ledger.close()


def test_open_breaker_skips_the_broker(sqlite_rig: SqliteRig, workdir: Path) -> None:
    """While open, publish returns "outbox" at once, without waiting on the locked file."""
    topic, _ = sqlite_rig.names("open")
    p = producer(sqlite_rig, workdir, breaker_reset=60.0, retry_attempts=2, breaker_failures=2)
    sqlite_rig.down()
    try:
        assert p.publish(topic, {"i": 0}).outcome == "outbox"  # two tries, ~0.2 s busy each
        assert p.breaker.state == "open"
        t0 = time.monotonic()
        for i in range(200):
            assert p.publish(topic, {"i": i}).outcome == "outbox"
        per_publish = (time.monotonic() - t0) / 200
        assert per_publish < 0.05, (
            f"{per_publish * 1000:.1f} ms per publish: the broker was touched"
        )
    finally:
        sqlite_rig.up()
    p.close()


def test_retries_are_bounded_in_time(sqlite_rig: SqliteRig, workdir: Path) -> None:
    topic, _ = sqlite_rig.names("bounded")
    p = producer(
        sqlite_rig,
        workdir,
        retry_attempts=50,
        retry_timeout=0.6,
        breaker_failures=100,
        retry_initial_delay=0.05,
        retry_max_delay=0.1,
    )
    sqlite_rig.down()
    try:
        t0 = time.monotonic()
        assert p.publish(topic, {}).outcome == "outbox"
        took = time.monotonic() - t0
    finally:
        sqlite_rig.up()
    # the last try may start just before the deadline and take busy_timeout (0.2 s)
    assert took < 0.6 + 0.2 + 0.3
    p.close()


def test_without_outbox_the_error_is_raised(sqlite_rig: SqliteRig, workdir: Path) -> None:
    topic, _ = sqlite_rig.names("nooutbox")
    p = producer(sqlite_rig, workdir, outbox=False, breaker_failures=2)
    sqlite_rig.down()
    try:
        with pytest.raises(BrokerUnavailable):
            p.publish(topic, {})
        with pytest.raises(BrokerUnavailable, match="circuit breaker open"):
            p.publish(topic, {})
    finally:
        sqlite_rig.up()
    p.close()
    assert not (workdir / ".eventbus").exists()


def test_new_events_queue_behind_waiting_ones(sqlite_rig: SqliteRig, workdir: Path) -> None:
    """Publish order holds: while the outbox holds events, later ones join it, even once
    the broker is back, and the single consumer sees them in publish order."""
    topic, group = sqlite_rig.names("order")
    sqlite_rig.adapter().declare(group, [topic])
    p = producer(sqlite_rig, workdir, breaker_reset=0.3)
    sqlite_rig.down()
    try:
        early = [p.publish(topic, {"i": i}) for i in range(20)]
    finally:
        sqlite_rig.up()
    late = [p.publish(topic, {"i": i}) for i in range(20, 40)]
    assert all(r.outcome == "outbox" for r in early)
    assert late[0].outcome == "outbox"  # the drainer had not emptied the outbox yet
    assert p.flush(10)
    after = p.publish(topic, {"i": 40})
    assert after.outcome == "sent"
    c, ledger, order = _collect(sqlite_rig, workdir, topic, group)
    wait_for(lambda: len(order) >= 41, idle=20, what="all 41", progress=lambda: len(order))
    assert order == list(range(41))
    finish(p, c)
    ledger.close()


def test_close_flushes_the_outbox(sqlite_rig: SqliteRig, workdir: Path) -> None:
    topic, group = sqlite_rig.names("flush")
    admin = sqlite_rig.adapter()
    admin.declare(group, [topic])
    p = producer(sqlite_rig, workdir, breaker_reset=0.2)
    sqlite_rig.down()
    try:
        for i in range(30):
            p.publish(topic, {"i": i})
    finally:
        sqlite_rig.up()
    p.close()  # waits up to close_timeout for the drain
    assert admin.depth(group) == 30
    assert p.outbox_pending() == 0


def test_events_left_in_the_outbox_are_sent_by_the_next_bus(
    sqlite_rig: SqliteRig, workdir: Path
) -> None:
    topic, group = sqlite_rig.names("leftover")
    admin = sqlite_rig.adapter()
    admin.declare(group, [topic])
    outbox = str(workdir / "shared-outbox.db")
    settings = {"outbox_path": outbox, "close_timeout": 0.0, "breaker_failures": 1}
    url = sqlite_rig.url()
    first = EventBus(url, source="/a", config=BusConfig(publish=settings))
    sqlite_rig.down()
    try:
        ids = [first.publish(topic, {"i": i}).id for i in range(10)]
        first.close()  # broker still down: the events stay in the file
    finally:
        sqlite_rig.up()
    assert admin.depth(group) == 0
    second = EventBus(url, source="/b", config=BusConfig(publish=settings))
    wait_for(
        lambda: admin.depth(group) == 10,
        idle=10,
        what="drain on start",
        progress=lambda: admin.depth(group),
    )
    assert second.outbox_pending() == 0
    second.close()
    assert len(ids) == 10


def test_outbox_rows_are_kept_per_destination(sqlite_rig: SqliteRig, workdir: Path) -> None:
    """Two brokers, one outbox file: each bus drains only its own broker's events."""
    other = SqliteRig(workdir / "other")
    (workdir / "other").mkdir()
    topic, group = sqlite_rig.names("dest")
    a_admin, b_admin = sqlite_rig.adapter(), other.adapter()
    a_admin.declare(group, [topic])
    b_admin.declare(group, [topic])
    settings = {"outbox_path": str(workdir / "one.db"), "breaker_failures": 1, "breaker_reset": 0.2}
    a = EventBus(sqlite_rig.url(), source="/a", config=BusConfig(publish=settings))
    b = EventBus(other.url(), source="/b", config=BusConfig(publish=settings))
    sqlite_rig.down()
    other.down()
    try:
        for i in range(5):
            assert a.publish(topic, {"i": i}).outcome == "outbox"
        for i in range(7):
            assert b.publish(topic, {"i": i}).outcome == "outbox"
    finally:
        sqlite_rig.up()
        other.up()
    assert a.flush(10) and b.flush(10)
    assert (a_admin.depth(group), b_admin.depth(group)) == (5, 7)
    a.close()
    b.close()
    other.close()


def test_outbox_write_is_durable_before_publish_returns(
    sqlite_rig: SqliteRig, workdir: Path
) -> None:
    """A producer killed with SIGKILL right after publish returned "outbox" loses nothing."""
    topic, group = sqlite_rig.names("durable")
    admin = sqlite_rig.adapter()
    admin.declare(group, [topic])
    outbox = workdir / "kill-outbox.db"
    script = workdir / "producer.py"
    script.write_text(
        textwrap.dedent(f"""
        import sys
        from eventbus import BusConfig, EventBus
        settings = {{"outbox_path": {str(outbox)!r}, "breaker_failures": 1,
                    "breaker_reset": 3600.0}}
        bus = EventBus({sqlite_rig.url()!r}, source="/p", config=BusConfig(publish=settings))
        for i in range(100000):
            r = bus.publish({topic!r}, {{"i": i}})
            print(r.outcome, r.id, flush=True)
    """)
    )
    sqlite_rig.down()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    returned: list[str] = []
    try:
        assert proc.stdout is not None
        while len(returned) < 300:
            line = proc.stdout.readline()
            assert line, "producer died"
            outcome, event_id = line.split()
            assert outcome == "outbox"
            returned.append(event_id)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        rest = proc.stdout.read().split()
        returned += rest[1::2]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sqlite_rig.up()
    survivor = EventBus(
        sqlite_rig.url(), source="/s", config=BusConfig(publish={"outbox_path": str(outbox)})
    )
    assert survivor.flush(20)
    survivor.close()
    logged = {entry.message.headers["id"] for entry in admin.log(limit=1_000_000)}
    missing = set(returned) - logged
    assert not missing, f"{len(missing)} of {len(returned)} events published as 'outbox' were lost"


def test_memory_bus_without_faults_writes_no_outbox(workdir: Path) -> None:
    bus = EventBus(MemoryAdapter(), source="/m", config=BusConfig())
    assert bus.publish("a.b", {}).outcome == "sent"
    bus.close()
    assert not (workdir / ".eventbus").exists()


def test_publish_settings_are_checked(workdir: Path) -> None:
    (workdir / "eventbus.toml").write_text('broker = "memory"\n[publish]\nretry_atempts = 3\n')
    with pytest.raises(ConfigError, match="did you mean 'retry_attempts'"):
        load_config()
    (workdir / "eventbus.toml").write_text('broker = "memory"\n[publish]\nbreaker_failures = 0\n')
    with pytest.raises(ConfigError, match="breaker_failures must be at least 1"):
        load_config()
    (workdir / "eventbus.toml").write_text('broker = "memory"\n[publish]\noutbox = "yes"\n')
    with pytest.raises(ConfigError, match="must be bool"):
        load_config()
    (workdir / "eventbus.toml").write_text(
        'broker = "memory"\n[publish]\nretry_timeout = 2\noutbox_path = "x.db"\n'
        '[worker]\ninbox = "sqlite:///in.db"\ninbox_lease = 9\n'
    )
    cfg = load_config()
    assert cfg.publish_settings == PublishSettings(retry_timeout=2.0, outbox_path="x.db")
    assert (cfg.inbox, cfg.inbox_lease) == ("sqlite:///in.db", 9.0)
