"""The transactional outbox on the local PostgreSQL (psycopg 3 and SQLAlchemy) and on
sqlite3: the event commits or rolls back with the business rows; a relay publishes
committed rows in order, keeps them while the broker is down, and two relays don't
publish a row twice."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PG_DSN
from fault_harness import SqliteRig

from eventbus import (
    BusConfig,
    EncodeError,
    Event,
    EventBus,
    MemoryAdapter,
    OutboxRelay,
    TransactionalOutbox,
)

pytestmark = pytest.mark.memory


def _wait(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)  # polling with a deadline


def _drain(broker: MemoryAdapter, group: str) -> tuple[list[Event], EventBus]:
    got: list[Event] = []
    bus = EventBus(broker.client(), source="/c", config=BusConfig(poll_interval=0.05))
    bus.subscribe("order.*", got.append, group=group)
    bus.start()
    return got, bus


def test_postgres_commit_publishes_rollback_does_not(pg_conn: Any, pg_table: str) -> None:
    import psycopg

    outbox = TransactionalOutbox(pg_table, source="/shop")
    outbox.create_table(pg_conn)
    pg_conn.execute(f"CREATE TABLE {pg_table}_orders (id int PRIMARY KEY, total numeric)")
    pg_conn.commit()
    broker = MemoryAdapter()
    broker.declare("billing", ["order.*"])

    with pg_conn.transaction():  # committed: order + event
        pg_conn.execute(f"INSERT INTO {pg_table}_orders VALUES (1, 42.9)")
        ok = outbox.add(pg_conn, Event("order.created", {"id": 1, "total": 42.9}))
    with pytest.raises(RuntimeError), pg_conn.transaction():  # rolled back: neither
        pg_conn.execute(f"INSERT INTO {pg_table}_orders VALUES (2, 10)")
        outbox.add(pg_conn, Event("order.created", {"id": 2}))
        raise RuntimeError("payment declined")
    with pytest.raises(EncodeError), pg_conn.transaction():  # bad event: the txn fails
        pg_conn.execute(f"INSERT INTO {pg_table}_orders VALUES (3, 1)")
        outbox.add(pg_conn, Event("order.created", {"bad": object()}))
    pg_conn.commit()

    relay = OutboxRelay(broker.client(), lambda: psycopg.connect(PG_DSN), outbox)
    assert relay.run_once() == 1
    assert relay.run_once() == 0
    relay.stop()
    got, bus = _drain(broker, "billing")
    _wait(lambda: len(got) == 1, "one event")
    assert got[0].id == ok[0] and got[0].data == {"id": 1, "total": 42.9}
    assert got[0].source == "/shop"
    assert pg_conn.execute(f"SELECT count(*) FROM {pg_table}").fetchone()[0] == 0
    bus.close()


def test_postgres_relay_thread_keeps_order_and_two_relays_never_double_send(
    pg_conn: Any, pg_table: str
) -> None:
    import psycopg

    outbox = TransactionalOutbox(pg_table, source="/shop")
    outbox.create_table(pg_conn)
    pg_conn.commit()
    broker = MemoryAdapter()
    broker.declare("billing", ["order.*"])
    n = 600
    for start in range(0, n, 50):
        with pg_conn.transaction():
            outbox.add(
                pg_conn, [Event("order.created", {"i": i}) for i in range(start, start + 50)]
            )
    relays = [
        OutboxRelay(
            broker.client(), lambda: psycopg.connect(PG_DSN), outbox, batch=40, interval=0.05
        )
        for _ in range(2)
    ]
    for r in relays:
        r.start()
    got, bus = _drain(broker, "billing")
    _wait(lambda: len(got) >= n and sum(r.sent for r in relays) >= n, f"{len(got)} of {n}")
    for r in relays:
        r.stop()
    order = [e.data["i"] for e in got]
    assert sorted(order) == list(range(n))  # none lost, none twice
    assert order == list(range(n))  # one consumer: relay order = commit order
    bus.close()


def test_postgres_with_sqlalchemy(pg_conn: Any, pg_table: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy", reason="SQLAlchemy not installed")
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(PG_DSN.replace("postgresql://", "postgresql+psycopg://"))
    outbox = TransactionalOutbox(pg_table, source="/shop")
    with engine.begin() as conn:
        outbox.create_table(conn)
    with Session(engine) as session, session.begin():
        ids = outbox.add(session, [Event("order.created", {"i": i}) for i in range(3)])
    broker = MemoryAdapter()
    broker.declare("billing", ["order.*"])
    relay = OutboxRelay(broker.client(), engine, outbox)
    assert relay.run_once() == 3
    got, bus = _drain(broker, "billing")
    _wait(lambda: len(got) == 3, "three events")
    assert [e.id for e in got] == ids
    bus.close()
    engine.dispose()


@pytest.mark.sqlite
def test_sqlite3_relay_keeps_rows_while_the_broker_is_down(workdir: Path) -> None:
    app_db = str(workdir / "app.db")
    conn = sqlite3.connect(app_db)
    outbox = TransactionalOutbox(source="/shop")
    outbox.create_table(conn)
    with conn:
        outbox.add(conn, [Event("order.created", {"i": i}) for i in range(5)])
    conn.close()

    rig = SqliteRig(workdir)
    adapter = rig.adapter()
    adapter.declare("billing", ["order.*"])
    relay = OutboxRelay(
        rig.adapter(), lambda: sqlite3.connect(app_db), outbox, interval=0.05, max_backoff=0.2
    )
    rig.down()
    try:
        relay.start()
        _wait(lambda: relay.failures >= 2, "relay tried and failed")
        check = sqlite3.connect(app_db)
        assert check.execute("SELECT count(*) FROM eventbus_outbox").fetchone()[0] == 5
        check.close()
        assert relay.sent == 0
    finally:
        rig.up()
    _wait(lambda: relay.sent == 5, "relayed after the broker came back")
    relay.stop()
    assert adapter.depth("billing") == 5
    rig.close()


def test_sqlite3_add_is_part_of_the_callers_transaction(workdir: Path) -> None:
    conn = sqlite3.connect(str(workdir / "app.db"))
    outbox = TransactionalOutbox("events_out")
    outbox.create_table(conn)
    conn.commit()
    outbox.add(conn, Event("order.created", {}))
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM events_out").fetchone()[0] == 0
    outbox.add(conn, Event("order.created", {}))
    conn.commit()
    assert conn.execute("SELECT count(*) FROM events_out").fetchone()[0] == 1
    conn.close()


def test_relay_needs_a_bus_or_adapter() -> None:
    with pytest.raises(TypeError):
        OutboxRelay(object(), lambda: None)
    bus = EventBus(MemoryAdapter(), config=BusConfig())
    assert OutboxRelay(bus, lambda: None).adapter is bus.adapter
    bus.close()


def test_models_of_bound_classes_go_through_the_outbox(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from eventbus.contracts import event_type

    @event_type("txshop.order.created", version=2)
    @dataclass
    class TxOrderCreated:
        id: int
        total: float

    db = tmp_path / "shop.db"
    outbox = TransactionalOutbox(source="/shop")
    conn = sqlite3.connect(db)
    outbox.create_table(conn)
    with conn:
        ids = outbox.add(conn, TxOrderCreated(id=1, total=2.5))
        ids += outbox.add(conn, [TxOrderCreated(id=2, total=1.0), Event("txshop.order.paid", {})])
    with pytest.raises(EncodeError, match="total: expected number"), conn:
        outbox.add(conn, TxOrderCreated(id=3, total="x"))  # type: ignore[arg-type]
    conn.close()
    assert len(ids) == 3
    broker = MemoryAdapter()
    broker.declare("billing", ["txshop.order.*"])
    got: list[Any] = []
    bus = EventBus(broker.client(), source="/c", config=BusConfig(poll_interval=0.05))

    @bus.subscribe("txshop.order.created", group="billing")
    def invoice(order: TxOrderCreated) -> None:
        got.append(order)

    bus.start()
    relay = OutboxRelay(broker.client(), lambda: sqlite3.connect(db), outbox)
    try:
        assert relay.run_once() == 3
        _wait(lambda: len(got) == 2, "both typed orders handled")
    finally:
        relay.stop()
        bus.close()
    assert sorted(o.id for o in got) == [1, 2]
