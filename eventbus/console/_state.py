"""What the console knows about the configured broker, through the adapter's own APIs.

:class:`Console` holds one adapter (or the adapter of a bus handed over) and
answers the page's questions with the same library calls the CLI uses: the
:class:`~eventbus.adapter.DeadLetterTools`, :class:`~eventbus.adapter.EventLog`
and :class:`~eventbus.adapter.GroupAdmin` Protocols, a ``depth(group)`` method
where an adapter has one, the local outbox, the tail, the AsyncAPI document.
What an adapter cannot do is reported as a sentence (:class:`Unsupported`),
never as an error page.

Tooling calls are serialized by one lock: adapters promise thread safety for
publish/declare/close only, and the page's requests run on a thread pool.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .._bus import EventBus
from .._config import BusConfig, redact
from .._envelope import Delivery, Event, Message, decode
from .._errors import ConfigError, DecodeError, EventBusError
from .._hooks import Outcome
from .._plugins import AdapterSpec, create_adapter, find_spec, spec_for_url
from .._routing import Matcher
from ..adapter import H_FAILED_AT, Adapter, DeadLetterTools, EventLog, LogEntry
from ..observability import redact_text
from ..resilience import LocalOutbox

log = logging.getLogger("eventbus.console")

__all__ = ["Console", "GroupRow", "Letter", "LogPage", "OutboxState", "Unsupported"]

#: Dead letters counted per group on the overview (more shows as "1000+").
COUNT_LIMIT = 1000
#: Seconds a dead-letter count is reused on brokers where counting is a receive-and-return.
DEAD_TTL = 15.0
#: Dead letters looked through for one letter's page, or to replay up to one.
LETTER_SCAN = 10_000
#: Log entries one search request looks through at most (then: "continue").
LOG_SCAN = 20_000
#: Samples kept for the charts (one per ``sample_every`` seconds).
HISTORY = 60
#: Groups the console and ``eventbus check`` make for themselves: not shown as the app's.
OWN_GROUPS = ("eventbus-tail.", "eventbus-check")


class Unsupported(Exception):
    """The adapter (or this setup) cannot do what was asked; the message says so for the page."""


@dataclass(frozen=True)
class GroupRow:
    """One group on the overview. ``None`` counts: the adapter cannot tell."""

    name: str
    patterns: tuple[str, ...]
    waiting: int | None
    dead: int | None
    dead_more: bool = False


@dataclass(frozen=True)
class Letter:
    """A message shown on the page: a dead letter or a log entry, decoded where possible."""

    message: Message
    event: Event | None
    error: str | None
    reason: str | None = None
    attempt: int | None = None
    failed_at: str | None = None
    seq: int | None = None
    published_at: float | None = None

    @property
    def id(self) -> str:
        return str(self.message.headers.get("id", ""))

    @property
    def time(self) -> str:
        return str(self.message.headers.get("time", ""))

    @property
    def correlationid(self) -> str:
        return str(self.message.headers.get("correlationid", ""))


@dataclass(frozen=True)
class LogPage:
    entries: list[Letter]
    next_after: int | None  # more may match after this seq (None: the end of the log)
    scanned_to: int  # the last seq looked at
    truncated: bool  # stopped at LOG_SCAN entries without filling the page


@dataclass(frozen=True)
class OutboxState:
    enabled: bool
    path: str
    pending: int
    oldest_age: float | None  # seconds since the oldest waiting event's time


@dataclass
class _History:
    stamps: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY)
    )
    published: dict[str, collections.deque[int]] = field(default_factory=dict)
    dead: dict[str, collections.deque[int]] = field(default_factory=dict)


def letter_of(message: Message, delivered: int = 1, **extra: Any) -> Letter:
    """Decode ``message`` (delivery attempt ``delivered``) for display; a malformed one
    keeps its decode error."""
    try:
        return Letter(message, decode(message, delivered), None, **extra)
    except DecodeError as exc:
        return Letter(message, None, redact_text(str(exc)), **extra)


def _dead_letter(delivery: Delivery, reason: str) -> Letter:
    failed = delivery.message.headers.get(H_FAILED_AT)
    return letter_of(
        delivery.message,
        delivery.attempt,
        reason=reason,
        attempt=delivery.attempt,
        failed_at=str(failed) if failed else None,
    )


def _log_letter(entry: LogEntry) -> Letter:
    return letter_of(entry.message, seq=entry.seq, published_at=entry.published_at)


def _parse_time(text: str) -> float | None:
    """An ISO time (``2026-12-04T18:00``, UTC unless it names a zone) as epoch seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {text!r}; write e.g. 2026-12-04T18:00 (UTC)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


class Console:
    """The console's view of one broker. ``bus``: an app's bus, for its adapter and AsyncAPI;
    ``handlers_here``: that bus runs its handlers in this process (charts count them)."""

    def __init__(
        self,
        config: BusConfig,
        *,
        bus: EventBus | None = None,
        groups: Sequence[str] = (),
        sample_every: float = 5.0,
        handlers_here: bool = True,
    ) -> None:
        self.config = bus.config if bus is not None else config
        self.bus = bus
        self.spec: AdapterSpec = (
            find_spec(self.config.broker)
            if self.config.broker
            else spec_for_url(self.config.url or "sqlite:///eventbus.db")
        )
        self._own_adapter = bus is None
        self.adapter: Adapter = (
            bus.adapter
            if bus is not None
            else create_adapter(self.config.broker, self.config.url, self.config.options)
        )
        self.extra_groups = tuple(groups)
        self.lock = threading.RLock()
        self.sample_every = sample_every
        self.history = _History()
        self._last_seq: int | None = None
        self._dead_cache: dict[str, tuple[float, int]] = {}
        self._handled: collections.Counter[str] = collections.Counter()
        self._outcomes: Callable[[Outcome], None] | None = None
        if bus is not None and handlers_here and not self.has_log():  # this process's handlers
            self._outcomes = bus.on_outcome(self._count_outcome)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    # -- what the broker is and can do -----------------------------------------------
    @property
    def where(self) -> str:
        url = self.config.url or self.spec.default_url or ""
        return f"{self.spec.name} at {redact_text(redact(url))}" if url else self.spec.name

    @property
    def name(self) -> str:
        return self.spec.name

    def local_only(self) -> str | None:
        """Why this console sees nothing another process did (None: it does see it)."""
        if self.spec.capabilities.cross_process or self.bus is not None:
            return None
        return (
            f"the {self.spec.name!r} broker lives inside one process: this console sees "
            "only its own, empty copy. Start it inside the app (eventbus.console.serve("
            "bus=...)) or use a broker that processes share."
        )

    def has_dead_letters(self) -> bool:
        return isinstance(self.adapter, DeadLetterTools)

    def has_log(self) -> bool:
        return isinstance(self.adapter, EventLog)

    def has_depth(self) -> bool:
        return callable(getattr(self.adapter, "depth", None))

    def _tools(self) -> DeadLetterTools:
        if not isinstance(self.adapter, DeadLetterTools):
            raise Unsupported(f"the {self.name} adapter has no dead-letter tooling")
        return self.adapter

    def _log(self) -> EventLog:
        if not isinstance(self.adapter, EventLog):
            raise Unsupported(
                f"the event log is a feature of the embedded SQLite broker; "
                f"the {self.name} adapter keeps none (use the broker's own tools)"
            )
        return self.adapter

    @contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """Serialize a tooling call; a forbidden one (ConfigError) becomes Unsupported."""
        with self.lock:
            try:
                yield
            except ConfigError as exc:
                raise Unsupported(f"{action}: {redact_text(str(exc))}") from exc

    # -- groups ------------------------------------------------------------------------
    def group_patterns(self) -> dict[str, tuple[str, ...]]:
        """The groups the console knows of: the broker's (where it lists them), the app's,
        and those named on the command line."""
        found: dict[str, tuple[str, ...]] = {}
        if isinstance(self.adapter, EventLog):
            with self._calling("list groups"):
                found.update(self.adapter.groups())
        if self.bus is not None:
            for s in self.bus.subscriptions:
                known = found.get(s.group, ())
                found[s.group] = tuple(dict.fromkeys([*known, *s.patterns]))
        for g in self.extra_groups:
            found.setdefault(g, ())
        return {g: p for g, p in sorted(found.items()) if not g.startswith(OWN_GROUPS)}

    def groups(self) -> list[GroupRow]:
        rows = []
        for name, patterns in self.group_patterns().items():
            waiting = dead = None
            more = False
            with self._calling(f"group {name}"):
                if self.has_depth():
                    waiting = int(self.adapter.depth(name))  # type: ignore[attr-defined]
                dead = self.dead_count(name)
                more = dead is not None and dead >= COUNT_LIMIT
            rows.append(GroupRow(name, patterns, waiting, dead, more))
        return rows

    def dead_count(self, group: str) -> int | None:
        """How many dead letters ``group`` has (up to COUNT_LIMIT); None: cannot tell.

        Counting is a peek; on brokers where a peek receives and hands back
        (RabbitMQ, SQS) it runs at most every ``DEAD_TTL`` seconds, whoever asks.
        """
        if not isinstance(self.adapter, DeadLetterTools):
            return None
        ttl = 0.0 if self.has_depth() else DEAD_TTL
        with self._calling(f"dead letters of {group}"):
            stamp, count = self._dead_cache.get(group, (0.0, 0))
            now = time.monotonic()
            if not ttl or now - stamp >= ttl:
                count = len(self.adapter.dead_letters(group, COUNT_LIMIT))
                self._dead_cache[group] = (now, count)
            return count

    def groups_note(self) -> str | None:
        """What the overview cannot show on this adapter (None: everything)."""
        notes = []
        if not self.has_log() and self.bus is None:
            notes.append(
                f"the {self.name} adapter cannot list its groups: the console shows "
                "the groups named with --group or those of the app (--app)"
            )
        if not self.has_depth():
            what = "consumer lag" if self.name == "kafka" else "waiting and in-flight counts"
            notes.append(f"the {self.name} adapter does not report {what}")
        if not self.has_dead_letters():
            notes.append(f"the {self.name} adapter has no dead-letter tooling")
        return "; ".join(notes) + "." if notes else None

    # -- dead letters ------------------------------------------------------------------
    def dead_letters(self, group: str, limit: int = 100) -> list[Letter]:
        tools = self._tools()
        with self._calling(f"dead letters of {group}"):
            return [_dead_letter(d, r) for d, r in tools.dead_letters(group, limit)]

    def dead_letter(self, group: str, event_id: str) -> tuple[int, Letter] | None:
        """The dead letter with ``event_id`` and its place (0: the oldest), or None."""
        for i, letter in enumerate(self.dead_letters(group, LETTER_SCAN)):
            if letter.id == event_id:
                return i, letter
        return None

    def replay(self, group: str, *, upto: str | None = None, limit: int | None = None) -> int:
        """Replay the oldest ``limit`` dead letters (None: all), or up to and including the
        letter ``upto`` (replays go oldest first on every adapter). Returns how many moved."""
        tools = self._tools()
        with self._calling(f"replay dead letters of {group}"):
            if upto is not None:
                found = self.dead_letter(group, upto)
                if found is None:
                    raise LookupError(f"no dead letter {upto!r} in group {group!r} (any more)")
                limit = found[0] + 1
            self._dead_cache.pop(group, None)
            return tools.replay_dead_letters(group, limit)

    def purge(self, group: str) -> int:
        tools = self._tools()
        with self._calling(f"purge dead letters of {group}"):
            self._dead_cache.pop(group, None)
            return tools.purge_dead_letters(group)

    # -- the event log -------------------------------------------------------------------
    def search_log(
        self,
        *,
        pattern: str | None = None,
        since: str = "",
        until: str = "",
        event_id: str = "",
        correlation: str = "",
        after: int = 0,
        page: int = 50,
    ) -> LogPage:
        """One page of log entries matching every filter given, oldest first."""
        log = self._log()
        lo, hi = _parse_time(since), _parse_time(until)
        if pattern:
            Matcher([pattern])  # a bad pattern is a ValueError for the page, before reading
        found: list[Letter] = []
        cursor, scanned = after, 0
        while len(found) < page and scanned < LOG_SCAN:
            with self._calling("read the log"):
                batch = log.log(limit=500, after=cursor, pattern=pattern or None)
            if not batch:
                return LogPage(found, None, cursor, False)
            for entry in batch:
                cursor, scanned = entry.seq, scanned + 1
                if hi is not None and entry.published_at > hi:
                    return LogPage(found, None, cursor, False)  # the log is in time order
                headers = entry.message.headers
                if lo is not None and entry.published_at < lo:
                    continue
                if event_id and headers.get("id") != event_id:
                    continue
                if correlation and headers.get("correlationid") != correlation:
                    continue
                found.append(_log_letter(entry))
                if len(found) >= page:
                    return LogPage(found, entry.seq, cursor, False)
        return LogPage(found, cursor, cursor, len(found) < page)

    def log_entry(self, seq: int) -> Letter | None:
        with self._calling("read the log"):
            entries = self._log().log(limit=1, after=seq - 1)
        return _log_letter(entries[0]) if entries and entries[0].seq == seq else None

    # -- the local outbox ------------------------------------------------------------------
    def _outbox_destination(self) -> str:
        # The destination a bus built from this config files its outbox rows under.
        return redact(self.config.url or "") or str(self.config.broker)

    def outbox(self) -> OutboxState:
        """How many events wait in the local outbox for this broker, and since when.

        Read-only: opening the outbox through a bus would start draining it.
        """
        settings = self.config.publish_settings
        path = settings.outbox_path
        if not settings.outbox:
            return OutboxState(False, path, 0, None)
        if self.bus is not None:
            return OutboxState(True, path, self.bus.outbox_pending(), self._oldest(path))
        if not os.path.exists(path):
            return OutboxState(True, path, 0, None)
        box = LocalOutbox(path, self._outbox_destination())
        try:
            pending = box.count()
        finally:
            box.close()
        return OutboxState(True, path, pending, self._oldest(path) if pending else None)

    def _oldest(self, path: str) -> float | None:
        """Seconds since the oldest waiting row was written (its ``created`` column)."""
        if not os.path.exists(path):
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
            try:
                row = db.execute(
                    "SELECT min(created) FROM outbox WHERE destination = ?",
                    (self._outbox_destination(),),
                ).fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        return max(0.0, time.time() - float(row[0])) if row and row[0] is not None else None

    def drain_outbox(self, timeout: float = 10.0) -> tuple[int, int]:
        """Send what waits in the outbox now; returns (sent, still waiting)."""
        before = self.outbox().pending
        if not before:
            return 0, 0
        if self.bus is not None:
            self.bus.flush(timeout)
        else:
            with EventBus(config=self.config) as bus:  # its drainer starts on what waits
                bus.flush(timeout)
        left = self.outbox().pending
        return max(0, before - left), left

    # -- AsyncAPI ---------------------------------------------------------------------------
    def asyncapi(self) -> dict[str, Any]:
        if self.bus is None:
            raise Unsupported(
                "the AsyncAPI document describes an app: start the console with "
                "--app MODULE[:ATTR] (the module that builds your EventBus)"
            )
        from ..observability import asyncapi_document

        return asyncapi_document(self.bus, title="eventbus app", version="1.0.0")

    # -- charts -----------------------------------------------------------------------------
    def throughput(self) -> str | None:
        """What the charts' blue line counts on this setup (None: nothing can be counted)."""
        if self.has_log():
            return "events published to the group's patterns (from the event log)"
        if self._outcomes is not None:
            return "events the app's handlers finished in this process (acked or dead-lettered)"
        return None

    def _count_outcome(self, outcome: Outcome) -> None:
        if outcome.group is not None and outcome.kind in ("acked", "dead_lettered"):
            with self.lock:
                self._handled[outcome.group] += 1

    def sample(self) -> None:
        """Record, per group, its throughput since the last sample (see :meth:`throughput`)
        and its dead-letter count."""
        patterns = self.group_patterns()
        published: dict[str, int] = dict.fromkeys(patterns, 0)
        if isinstance(self.adapter, EventLog):
            if self._last_seq is None:  # start at the end: count only what comes from now on
                self._last_seq = self._last_end(self.adapter)
            matchers = {g: Matcher(list(p)) for g, p in patterns.items() if p}
            for _ in range(20):  # at most 10,000 entries per sample
                with self._calling("read the log"):
                    batch = self.adapter.log(limit=500, after=self._last_seq)
                if not batch:
                    break
                self._last_seq = batch[-1].seq
                for entry in batch:
                    for g, m in matchers.items():
                        if m(entry.message.topic):
                            published[g] += 1
        if self._outcomes is not None:
            with self.lock:
                for g in patterns:
                    published[g] = self._handled.pop(g, 0)
        dead = {g: n for g in patterns if (n := self.dead_count(g)) is not None}
        h = self.history
        with self.lock:
            h.stamps.append(time.time())
            for g in patterns:
                h.published.setdefault(
                    g, collections.deque([0] * (len(h.stamps) - 1), maxlen=HISTORY)
                ).append(published[g])
                if g in dead:
                    h.dead.setdefault(
                        g, collections.deque([dead[g]] * (len(h.stamps) - 1), maxlen=HISTORY)
                    ).append(dead[g])

    def history_of(self, group: str) -> dict[str, list[int]]:
        """The charts' samples of ``group``, oldest first: throughput and dead letters."""
        with self.lock:
            return {
                "throughput": list(self.history.published.get(group, [])),
                "dead_letters": list(self.history.dead.get(group, [])),
            }

    def _last_end(self, log: EventLog) -> int:
        """The last seq of the log, paged to once at start, a batch per lock hold (the
        broker's own reads are thread-safe; the page is not held up meanwhile)."""
        cursor = 0
        while True:
            with self._calling("read the log"):
                batch = log.log(limit=5000, after=cursor)
            if not batch:
                return cursor
            cursor = batch[-1].seq

    def start_sampling(self) -> None:
        if self._sampler is not None:
            return

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.sample()
                except (EventBusError, Unsupported):
                    pass  # the page shows the error where it asks; charts just miss a point
                except Exception:  # never let the charts die with one bad sample
                    log.exception("console: sampling for the charts failed")
                self._stop.wait(self.sample_every)

        self._sampler = threading.Thread(target=run, name="eventbus-console-sampler", daemon=True)
        self._sampler.start()

    def close(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(5.0)
        if self._outcomes is not None and self.bus is not None:
            try:
                self.bus.hooks.outcome.remove(self._outcomes)
            except ValueError:
                pass
            self._outcomes = None
        if self._own_adapter:
            self.adapter.close()


def pretty_json(value: Any) -> str:
    """JSON for display (indentation, non-ASCII kept); bytes are never passed here."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def safe_bytes(raw: bytes, limit: int = 4096) -> str:
    """Bytes as text for display: UTF-8 where it decodes, else escapes; cut at ``limit``."""
    cut = raw[:limit]
    text = cut.decode("utf-8", errors="backslashreplace")
    if len(raw) > limit:
        text += f"\n... ({len(raw) - limit} more bytes)"
    return text
