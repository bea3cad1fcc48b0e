"""Fixtures for the console: a SQLite bus with a billing worker whose handler fails on
demand (so events go to the dead letter), and the console served on a free port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from eventbus import BusConfig, Event, EventBus, Message, RetryPolicy, SqliteAdapter
from eventbus.console import serve
from eventbus.testing import eventually

TOKEN = "test-token-5b1d"
GROUP = "billing"


@dataclass
class Worker:
    """A running bus on the broker file: group ``billing`` on ``order.*``."""

    db: Path
    bus: EventBus
    failing: threading.Event = field(default_factory=threading.Event)
    handled: list[Event] = field(default_factory=list)

    def dead(self, n: int, reason: str = "card declined") -> list[Event]:
        """Publish ``n`` events the handler rejects; return them once they are dead letters.

        Call it when no other event is in flight: those would be rejected too."""
        self.failing.set()
        events = [
            Event(
                type="order.paid",
                data={"order": i, "total": 10 + i},
                source="/shop",
                correlationid=f"corr-{i}",
            )
            for i in range(n)
        ]
        self.bus.publish_many(events)
        probe = SqliteAdapter(self.db)
        try:
            eventually(
                lambda: len(probe.dead_letters(GROUP, 1000)) >= n or None, what="the dead letters"
            )
        finally:
            probe.close()
        self.failing.clear()
        return events

    def publish_raw(self, topic: str, body: bytes, headers: dict[str, str]) -> None:
        """A message as a foreign producer might send it (maybe malformed)."""
        a = SqliteAdapter(self.db)
        try:
            a.publish([Message(topic=topic, body=body, headers=headers)])
        finally:
            a.close()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "EVENTBUS_CONFIG",
        "EVENTBUS_URL",
        "EVENTBUS_BROKER",
        "EVENTBUS_PROFILE",
        "EVENTBUS_CONSOLE_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "bus.db"


@pytest.fixture
def config(db: Path) -> BusConfig:
    # Relative to the test's directory (the current one), as a project's config would be.
    return BusConfig(url=f"sqlite:///{db.name}", poll_interval=0.1)


@pytest.fixture
def worker(db: Path, config: BusConfig) -> Iterator[Worker]:
    bus = EventBus(SqliteAdapter(db), config=config, retry=RetryPolicy(max_attempts=1))
    w = Worker(db, bus)

    @bus.subscribe("order.*", group=GROUP)
    def bill(event: Event) -> None:
        """Bill an order."""
        if w.failing.is_set():
            raise RuntimeError(f"card declined for order {event.data['order']}")
        w.handled.append(event)

    bus.start()
    try:
        yield w
    finally:
        bus.close()


@pytest.fixture
def start_console() -> Iterator[Callable[..., str]]:
    """start_console(config, **serve_options) serves a console on a free port; returns its
    base URL. Stopped at the end of the test."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(config: BusConfig | None, **options: object) -> str:
        stop = threading.Event()
        ready: list[str] = []
        kwargs = {
            "port": 0,
            "token": TOKEN,
            "on_ready": ready.append,
            "stop": stop,
            "sample_every": 0.2,
            **options,
        }
        thread = threading.Thread(target=serve, args=(config,), kwargs=kwargs, daemon=True)
        thread.start()
        stops.append((stop, thread))
        eventually(lambda: ready or None, what="the console to listen")
        return ready[0].split("/?")[0]

    yield start
    for stop, thread in stops:
        stop.set()
        thread.join(10)


@pytest.fixture
def served(
    config: BusConfig, worker: Worker, start_console: Callable[..., str]
) -> Callable[[str], str]:
    """The console on the worker's broker file; returns url(path)."""
    base = start_console(config)
    return lambda path: base + path


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def client(served: Callable[[str], str]) -> Iterator[httpx.Client]:
    """An HTTP client on the served console."""
    with httpx.Client(base_url=served(""), timeout=20) as c:
        yield c
