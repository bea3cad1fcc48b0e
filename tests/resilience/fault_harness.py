"""Fault scenarios that count every event, shared by the tests and ``benchmarks/fault_table.py``.

A *rig* (``rigs.py``) is one adapter kind with a way to make its broker
unavailable for real: the SQLite file locked by another connection (writers get
"database is locked" → ``BrokerUnavailable``); RabbitMQ, Kafka (Tansu), SQS
(moto) and Service Bus (the test broker) behind a TCP proxy that drops every
connection and refuses new ones (what clients see in a network partition or a
broker failover). The in-memory broker lives inside the process and cannot go
down: those rows say so.

Each scenario returns a :class:`Tally`: events sent, events handled
(distinct ids), lost (sent, never handled, not dead-lettered), duplicated
(handler ran again for an id it had already handled), dead-lettered, and the
copies the inbox dropped before any handler saw them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventbus import Adapter, BusConfig, EventBus, RetryPolicy, SqliteInbox

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loaded by path from other test directories
    sys.path.insert(0, str(HERE))

from rigs import (  # noqa: E402  # re-exported: the tests import them from here
    RIGS,
    MemoryRig,
    Rig,
    SqliteRig,
    TcpProxy,
    rig,
)

__all__ = [
    "FAST_RETRY",
    "RIGS",
    "SCENARIOS",
    "Ledger",
    "MemoryRig",
    "Rig",
    "SqliteRig",
    "Tally",
    "TcpProxy",
    "broker_down",
    "consumer",
    "finish",
    "hanging",
    "outage_mid_stream",
    "poison",
    "producer",
    "rig",
    "wait_for",
    "worker_killed",
]

WORKER_SCRIPT = str(HERE / "worker_proc.py")


# -- counting --
class Ledger:
    """Handled event ids in a SQLite file: one row per handler call, from any process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS handled (id TEXT NOT NULL, pid INTEGER)")

    def record(self, event_id: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO handled VALUES (?, ?)", (event_id, os.getpid()))

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(r[0] for r in self._db.execute("SELECT id FROM handled"))

    def rows(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM handled").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class Tally:
    fault: str
    adapter: str
    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    dead: int = 0
    dropped: int = 0
    via_outbox: int = 0
    seconds: float = 0.0
    note: str = ""

    @classmethod
    def count(
        cls,
        fault: str,
        adapter: str,
        sent: set[str],
        ledger: Ledger,
        dead: set[str] | None = None,
        **extra: Any,
    ) -> Tally:
        counts = ledger.counts()
        handled = {i for i in sent if counts[i]}
        dead = dead or set()
        return cls(
            fault=fault,
            adapter=adapter,
            sent=len(sent),
            received=len(handled),
            lost=len(sent - handled - dead),
            duplicated=sum(max(0, counts[i] - 1) for i in sent),
            dead=len(dead),
            **extra,
        )


def wait_for(
    check: Callable[[], bool],
    *,
    idle: float,
    what: str,
    progress: Callable[[], int],
    state: Callable[[], str] | None = None,
) -> None:
    """Poll ``check`` until true; fail only after ``idle`` seconds without progress.

    ``state`` describes the system for the failure message.
    """
    last, seen = time.monotonic(), progress()
    while not check():
        time.sleep(0.05)  # polling with a deadline, not waiting a fixed time for delivery
        now_seen = progress()
        if now_seen != seen:
            last, seen = time.monotonic(), now_seen
        elif time.monotonic() - last > idle:
            more = f"; {state()}" if state is not None else ""
            raise AssertionError(f"{what}: no progress for {idle:.0f}s (at {seen}){more}")


def describe(p: EventBus, c: EventBus) -> Callable[[], str]:
    """What the producer's breaker/outbox and the consumer's worker look like."""

    def state() -> str:
        w = c._worker
        threads = [t.is_alive() for t in w._threads] if w is not None else []
        return (
            f"breaker {p.breaker.state}, outbox holds {p.outbox_pending()}, "
            f"worker threads alive {threads}, inbox dropped {dropped(c)}"
        )

    return state


# -- the buses a scenario uses --
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=0.2, jitter=0.2)


def producer(r: Rig, workdir: Path, **publish: Any) -> EventBus:
    settings = {
        "outbox_path": str(workdir / f"outbox-{uuid.uuid4().hex[:6]}.db"),
        "retry_attempts": 2,
        "retry_timeout": 1.0,
        "breaker_failures": 2,
        "breaker_reset": 0.5,
        "drain_interval": 0.2,
        "close_timeout": 10.0,
        **publish,
    }
    return EventBus(r.adapter(), source="/faults", config=BusConfig(publish=settings))


def consumer(r: Rig, workdir: Path, **config: Any) -> EventBus:
    inbox = SqliteInbox(workdir / f"inbox-{uuid.uuid4().hex[:6]}.db")
    cfg = BusConfig(poll_interval=0.1, inbox_lease=config.pop("inbox_lease", 3.0), **config)
    bus = EventBus(r.adapter(), source="/faults", config=cfg, inbox=inbox)
    bus._test_inbox = inbox  # type: ignore[attr-defined]  # closed by finish()
    return bus


def finish(*buses: EventBus) -> None:
    for b in buses:
        b.close()
        inbox = getattr(b, "_test_inbox", None)
        if inbox is not None:
            inbox.close()


def dropped(bus: EventBus) -> int:
    w = bus._worker
    return w.duplicates if w is not None else 0


def dead_ids(adapter: Adapter, group: str) -> set[str]:
    return {d.message.headers.get("id", "?") for d, _ in adapter.dead_letters(group, limit=10_000)}


# -- 1. broker down while publishing, then back --
def broker_down(r: Rig, workdir: Path, n: int) -> Tally:
    if not r.can_go_down:
        return Tally(
            "broker down, publish, broker up", r.name, note="n/a: in-process broker cannot go down"
        )
    topic, group = r.names("down")
    ledger = Ledger(workdir / f"ledger-{group}.db")
    c = consumer(r, workdir)
    c.subscribe(topic, lambda e: ledger.record(e.id), group=group, retry=FAST_RETRY)
    c.start()
    p = producer(r, workdir)
    t0 = time.monotonic()
    r.down()
    outcomes: Counter[str] = Counter()
    sent: set[str] = set()
    try:
        for i in range(n):
            res = p.publish(topic, {"i": i})
            outcomes[res.outcome] += 1
            sent.add(res.id)
    finally:
        r.up()
    wait_for(
        lambda: len(set(ledger.counts()) & sent) >= n,
        idle=60,
        what="delivery after the outage",
        progress=ledger.rows,
        state=describe(p, c),
    )
    seconds = time.monotonic() - t0
    drops = dropped(c)
    finish(p, c)
    t = Tally.count(
        "broker down, publish, broker up",
        r.name,
        sent,
        ledger,
        dropped=drops,
        via_outbox=outcomes["outbox"],
        seconds=seconds,
        note=r.outage,
    )
    ledger.close()
    return t


# -- 2. the broker goes away mid-stream and comes back --------------------------------------------
def outage_mid_stream(r: Rig, workdir: Path, n: int, outage: float = 1.5) -> Tally:
    name = "broker unreachable mid-stream"
    if not r.can_go_down:
        return Tally(name, r.name, note="n/a: in-process broker cannot go down")
    topic, group = r.names("blip")
    ledger = Ledger(workdir / f"ledger-{group}.db")
    c = consumer(r, workdir)
    c.subscribe(topic, lambda e: ledger.record(e.id), group=group, retry=FAST_RETRY)
    c.start()
    p = producer(r, workdir)
    outcomes: Counter[str] = Counter()
    sent: set[str] = set()
    published = threading.Event()

    def fault() -> None:
        wait_for(
            lambda: len(sent) >= n // 3, idle=30, what="first third", progress=lambda: len(sent)
        )
        r.down()
        published.wait(outage)  # the outage lasts `outage` seconds (or until publishing ends)
        r.up()

    t0 = time.monotonic()
    ft = threading.Thread(target=fault, daemon=True)
    ft.start()
    try:
        for i in range(n):
            res = p.publish(topic, {"i": i})
            outcomes[res.outcome] += 1
            sent.add(res.id)
            time.sleep(0.002)  # a steady producer, so the outage lands mid-stream
    finally:
        published.set()
        ft.join(30)
        r.up()
    wait_for(
        lambda: len(set(ledger.counts()) & sent) >= n,
        idle=60,
        what="delivery after the restart",
        progress=ledger.rows,
        state=describe(p, c),
    )
    seconds = time.monotonic() - t0
    drops = dropped(c)
    finish(p, c)
    t = Tally.count(
        name,
        r.name,
        sent,
        ledger,
        dropped=drops,
        via_outbox=outcomes["outbox"],
        seconds=seconds,
        note=f"{r.outage} for {outage:g} s",
    )
    ledger.close()
    return t


# -- 3. a worker process killed with SIGKILL mid-batch --
def start_worker(
    r: Rig, topic: str, group: str, ledger: Path, inbox: Path, delay: float
) -> subprocess.Popen[str]:
    args = [
        sys.executable,
        WORKER_SCRIPT,
        r.url(),
        topic,
        group,
        str(ledger),
        str(inbox),
        str(delay),
    ]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert p.stdout is not None
    line = p.stdout.readline().strip()
    if line != "ready":
        p.kill()
        raise AssertionError(f"worker process did not start: {line!r}")
    return p


def worker_killed(r: Rig, workdir: Path, n: int) -> Tally:
    name = "worker SIGKILLed mid-batch"
    if not r.cross_process:
        return Tally(name, r.name, note="n/a: in-process broker has no separate worker process")
    topic, group = r.names("kill")
    ledger_path, inbox_path = workdir / f"ledger-{group}.db", workdir / f"inbox-{group}.db"
    ledger = Ledger(ledger_path)
    p = producer(r, workdir)
    p.adapter.declare(group, [topic])
    t0 = time.monotonic()
    sent = {res.id for res in p.publish_many([p.event(topic, {"i": i}) for i in range(n)])}
    procs: list[subprocess.Popen[str]] = []
    try:
        first = start_worker(r, topic, group, ledger_path, inbox_path, delay=0.002)
        procs.append(first)
        wait_for(
            lambda: ledger.rows() >= n // 3, idle=30, what="first worker", progress=ledger.rows
        )
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = ledger.rows()
        second = start_worker(r, topic, group, ledger_path, inbox_path, delay=0.0)
        procs.append(second)
        wait_for(
            lambda: len(set(ledger.counts()) & sent) >= n,
            idle=60,
            what="second worker",
            progress=ledger.rows,
        )
        os.killpg(second.pid, signal.SIGTERM)  # graceful stop
        second.wait(30)
        assert second.stdout is not None
        out = second.stdout.read()  # not communicate(): it skips what readline() buffered
        words = [ln.split() for ln in out.splitlines()]
        drops = sum(int(w[1]) for w in words if w[:1] == ["dropped"])  # by the second worker
    finally:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
    seconds = time.monotonic() - t0
    finish(p)
    t = Tally.count(
        name,
        r.name,
        sent,
        ledger,
        seconds=seconds,
        dropped=drops,
        note=f"killed after {killed_at} handled; second worker exit {procs[-1].returncode}",
    )
    ledger.close()
    return t


# -- 4. poison events among good ones --
class Poison(ValueError):
    """An event that will never be processable: straight to the dead letter."""


def poison(r: Rig, workdir: Path, n: int, bad: int = 10) -> Tally:
    topic, group = r.names("poison")
    ledger = Ledger(workdir / f"ledger-{group}.db")

    def handle(e: Any) -> None:
        kind = e.data.get("kind")
        if kind == "fatal":
            raise Poison(f"cannot process {e.id}")
        if kind == "flaky":
            raise RuntimeError(f"always fails {e.id}")
        ledger.record(e.id)

    retry = RetryPolicy(max_attempts=3, initial_delay=0.05, max_delay=0.2, dead_letter_on=(Poison,))
    c = consumer(r, workdir)
    c.subscribe(topic, handle, group=group, retry=retry)
    c.start()
    p = producer(r, workdir)
    t0 = time.monotonic()
    total = n + 2 * bad
    step = total // (2 * bad)
    bad_at = {k * step: ("flaky" if k % 2 else "fatal") for k in range(2 * bad)}
    events = [p.event(topic, {"i": i, "kind": bad_at.get(i, "good")}) for i in range(total)]
    p.publish_many(events)
    sent = {e.id for e in events}
    poisoned = {e.id for e in events if e.data["kind"] != "good"}
    good = sent - poisoned
    admin = r.adapter()
    wait_for(
        lambda: good <= set(ledger.counts()) and dead_ids(admin, group) >= poisoned,
        idle=30,
        what="good handled, poison dead-lettered",
        progress=lambda: ledger.rows() + len(dead_ids(admin, group)),
    )
    dead = dead_ids(admin, group) & sent
    seconds = time.monotonic() - t0
    finish(p, c)
    t = Tally.count(
        "poison events among good ones",
        r.name,
        sent,
        ledger,
        dead=dead,
        seconds=seconds,
        note=f"{len(poisoned)} poison: half fatal (no retry), half failing 3 attempts",
    )
    t.lost = len(sent - set(ledger.counts()) - dead)
    ledger.close()
    return t


# -- 5. a hanging handler: timeout → retry → dead letter --
def hanging(r: Rig, workdir: Path, n: int, hangs: int = 4, *, use_async: bool = False) -> Tally:
    topic, group = r.names("hang")
    ledger = Ledger(workdir / f"ledger-{group}.db")
    release = threading.Event()
    tries: Counter[str] = Counter()

    def sync_handler(e: Any) -> None:
        if e.data.get("hang"):
            tries[e.id] += 1
            release.wait(60)  # hangs until the scenario ends
            return
        ledger.record(e.id)

    async def async_handler(e: Any) -> None:
        if e.data.get("hang"):
            tries[e.id] += 1
            await asyncio.sleep(60)
            return
        ledger.record(e.id)

    retry = RetryPolicy(max_attempts=2, initial_delay=0.05, max_delay=0.1)
    c = consumer(r, workdir)
    c.subscribe(
        topic, async_handler if use_async else sync_handler, group=group, retry=retry, timeout=0.3
    )
    c.start()
    p = producer(r, workdir)
    t0 = time.monotonic()
    events = [p.event(topic, {"i": i, "hang": i % (n // hangs) == 1}) for i in range(n)]
    p.publish_many(events)
    sent = {e.id for e in events}
    hung = {e.id for e in events if e.data["hang"]}
    admin = r.adapter()
    try:
        wait_for(
            lambda: (sent - hung) <= set(ledger.counts()) and dead_ids(admin, group) >= hung,
            idle=30,
            what="good handled, hanging ones dead-lettered",
            progress=lambda: ledger.rows() + len(dead_ids(admin, group)) + sum(tries.values()),
        )
        dead = dead_ids(admin, group) & sent
        w = c._worker
        overrun = w.overrunning if w is not None else 0
    finally:
        release.set()
    seconds = time.monotonic() - t0
    finish(p, c)
    kind = "async def" if use_async else "def"
    note = f"{len(hung)} hang ({kind}, timeout 0.3s, 2 attempts); tries {sorted(tries.values())}"
    if not use_async:
        note += f"; {overrun} threads were still overrunning"
    t = Tally.count(
        f"hanging handler ({kind})", r.name, sent, ledger, dead=dead, seconds=seconds, note=note
    )
    ledger.close()
    return t


SCENARIOS: list[tuple[str, Callable[..., Tally]]] = [
    ("broker_down", broker_down),
    ("outage_mid_stream", outage_mid_stream),
    ("worker_killed", worker_killed),
    ("poison", poison),
    ("hanging", hanging),
]
