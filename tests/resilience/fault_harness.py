"""Fault scenarios that count every event, shared by the tests and ``benchmarks/fault_table.py``.

A *rig* is one adapter kind with a way to make its broker unavailable for
real: the SQLite file locked by another connection (writers get "database is
locked" → ``BrokerUnavailable``), RabbitMQ behind a TCP proxy that drops every
connection and refuses new ones (what clients see when a broker restarts or
the network fails; the shared broker itself keeps running). The in-memory
broker lives inside the process and cannot go down: those rows say so.

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
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventbus import Adapter, BusConfig, EventBus, MemoryAdapter, RetryPolicy
from eventbus._inbox import SqliteInbox

HERE = Path(__file__).resolve().parent
WORKER_SCRIPT = str(HERE / "worker_proc.py")
RABBITMQ_URL = os.environ.get("EVENTBUS_RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/"


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


# -- a TCP proxy that can cut the line --
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`cut` drops every connection.

    While cut, new connections are accepted and closed at once (the client sees
    the broker go away, as in a broker restart); :meth:`restore` lets them through.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._up = True
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.cuts = 0
        t = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._up:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            for s in (upstream, client):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delays
            pair = (client, upstream)
            with self._lock:
                if not self._up or self._closed:
                    _reset(client)
                    upstream.close()
                    continue
                self._pairs.add(pair)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(a, b, pair), daemon=True)
                t.start()
            self._threads = [t for t in self._threads if t.is_alive()]

    def _pump(
        self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for s in pair:
            _reset(s)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones."""
        with self._lock:
            self._up = False
            pairs = list(self._pairs)
            self._pairs.clear()
            self.cuts += 1
        for pair in pairs:
            for s in pair:
                _reset(s)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        for t in self._threads:
            t.join(2)


def _reset(s: socket.socket) -> None:
    """Close with RST, so the peer notices at once."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


# -- rigs: one per adapter kind --
class Rig:
    """An adapter kind plus a real way to take its broker away (if there is one)."""

    name = ""
    can_go_down = False
    cross_process = False

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = uuid.uuid4().hex[:6]
        self._n = 0
        self._adapters: list[Adapter] = []

    def names(self, what: str) -> tuple[str, str]:
        """A fresh (topic, group) pair for one scenario."""
        self._n += 1
        base = f"r{self.run}{self._n}"
        return f"{base}.{what}.created", f"{base}-{what}"

    def adapter(self) -> Adapter:
        raise NotImplementedError

    def url(self) -> str:
        """A URL another process can open (cross-process rigs)."""
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def up(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for a in self._adapters:
            with contextlib.suppress(Exception):
                a.close()


class MemoryRig(Rig):
    name = "memory"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.broker = MemoryAdapter(lease=3.0)

    def adapter(self) -> Adapter:
        return self.broker.client()


class SqliteRig(Rig):
    name = "sqlite"
    can_go_down = True
    cross_process = True

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.path = workdir / "broker.db"
        self._locker: sqlite3.Connection | None = None

    def url(self) -> str:
        return f"sqlite:///{self.path}?lease=2&busy_timeout=0.2"

    def adapter(self) -> Adapter:
        from eventbus._sqlite import SqliteAdapter

        a = SqliteAdapter(str(self.path), lease=2.0, busy_timeout=0.2)
        self._adapters.append(a)
        return a

    def down(self) -> None:
        """Another connection takes the write lock and keeps it: the file is unusable."""
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        db.execute("BEGIN EXCLUSIVE")
        self._locker = db

    def up(self) -> None:
        db, self._locker = self._locker, None
        if db is not None:
            db.execute("ROLLBACK")
            db.close()

    def close(self) -> None:
        self.up()
        super().close()


class RabbitRig(Rig):
    name = "rabbitmq"
    can_go_down = True
    cross_process = True

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        from urllib.parse import urlsplit

        target = urlsplit(RABBITMQ_URL)
        self.proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
        self.exchange = f"eventbus-res-{self.run}"

    def options(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "lease": 5.0,
            "heartbeat": 2,
            "connect_timeout": 2.0,
            "confirm_timeout": 5.0,
        }

    def url(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.proxy.url}?{q}"

    def adapter(self) -> Adapter:
        from eventbus_rabbitmq import RabbitMQAdapter

        a = RabbitMQAdapter(self.proxy.url, **self.options())
        self._adapters.append(a)
        return a

    def down(self) -> None:
        self.proxy.cut()

    def up(self) -> None:
        self.proxy.restore()

    def close(self) -> None:
        self.up()
        super().close()
        self.proxy.close()
        delete_rabbitmq_names(self.exchange)


def delete_rabbitmq_names(prefix: str) -> None:
    """Delete the queues and exchanges whose names start with ``prefix`` (this run's only)."""
    import pika

    names: dict[str, list[str]] = {}
    for kind in ("queues", "exchanges"):
        out = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{kind}", "name"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        names[kind] = [n for n in out.stdout.split() if n.startswith(prefix)]
    if not names["queues"] and not names["exchanges"]:
        return
    conn = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        for kind, items in names.items():
            for name in items:
                ch = conn.channel()
                try:
                    if kind == "queues":
                        ch.queue_delete(name)
                    else:
                        ch.exchange_delete(name)
                except pika.exceptions.ChannelClosedByBroker:
                    pass
                finally:
                    if ch.is_open:
                        ch.close()
    finally:
        conn.close()


RIGS: dict[str, type[Rig]] = {"memory": MemoryRig, "sqlite": SqliteRig, "rabbitmq": RabbitRig}


@contextlib.contextmanager
def rig(name: str, workdir: Path) -> Iterator[Rig]:
    r = RIGS[name](workdir)
    try:
        yield r
    finally:
        r.close()


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
    )
    ledger.close()
    return t


# -- 2. the broker goes away mid-stream and comes back --------------------------------------------
def outage_mid_stream(r: Rig, workdir: Path, n: int, outage: float = 1.5) -> Tally:
    name = "broker restart mid-stream"
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
        name, r.name, sent, ledger, dropped=drops, via_outbox=outcomes["outbox"], seconds=seconds
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
