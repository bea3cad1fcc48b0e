"""The RabbitMQ adapter (pika).

Mapping (docs/adapters/rabbitmq.md says why):

- every event goes to one durable topic exchange, routing key = event type;
- a group is a durable queue ``<prefix><group>`` bound by the group's patterns
  (RabbitMQ's topic matching is exactly ours); its members compete on it;
- CloudEvents attributes travel as ``cloudEvents:<name>`` headers, except
  ``datacontenttype``, which is the AMQP ``content_type`` property;
- messages are persistent, publisher confirms are pipelined (``_client``);
- ``nack(delay)`` republishes the event, with ``eventbus-attempt`` + 1, into a
  TTL queue per delay bucket that dead-letters back into the group's queue;
- ``dead_letter`` republishes into ``<queue>:dead`` with the reason in headers;
- ``attempt`` = ``eventbus-attempt`` + the broker's redelivery count
  (``x-delivery-count`` on quorum queues, the ``redelivered`` flag on classic).

Modules: ``_settings`` (settings, capabilities, delay buckets), ``_codec``
(Message <-> pika properties), ``_errors`` (pika's exceptions -> ours),
``_client`` (connection parameters, the admin connection, topology, the
publisher), ``_consumer`` (:class:`RabbitMQConsumer`), ``_tooling`` (dead-letter
tools, ``delete_group``), this module (:class:`RabbitMQAdapter`).

Threading: the adapter (``publish``, ``declare``, ``dead_letters``, ``close``)
is thread-safe. Each :class:`RabbitMQConsumer` owns a ``BlockingConnection``
used by its worker thread, and by the adapter's *keeper* thread only while the
worker is not inside pika (one lock per consumer): the keeper answers
heartbeats while handlers run and enforces the lease, so a slow handler does
not lose its connection and a consumer that stops without closing hands its
deliveries back after ``lease`` seconds, as on every other adapter.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from eventbus import ClosedError, ConfigError, EncodeError, Matcher, MessageTooLarge
from eventbus.adapter import Adapter, Delivery, Message, require

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing

from . import _tooling  # noqa: E402
from ._client import Admin, Outgoing, Publisher, Topology, connection_parameters  # noqa: E402
from ._codec import to_properties  # noqa: E402
from ._consumer import RabbitMQConsumer  # noqa: E402
from ._settings import MAX_HEADER_SIZE, RabbitMQSettings  # noqa: E402

__all__ = ["RabbitMQAdapter", "RabbitMQConsumer"]

log = logging.getLogger("eventbus.rabbitmq")


# -- the adapter ---------------------------------------------------------------------------
class RabbitMQAdapter(Adapter):
    """Events on RabbitMQ: a topic exchange, a durable queue per group. Thread-safe.

    ``RabbitMQAdapter("amqp://guest:guest@localhost/", exchange="shop", lease=60)``;
    keyword options are the fields of :class:`RabbitMQSettings`. A
    :class:`RabbitMQSettings` may be given instead of the URL (or as ``settings=``).
    """

    def __init__(
        self,
        url: str | RabbitMQSettings | None = None,
        *,
        settings: RabbitMQSettings | None = None,
        **options: Any,
    ) -> None:
        if isinstance(url, RabbitMQSettings):
            url, settings = None, url
        self.settings = s = settings or RabbitMQSettings.from_url(url, options)
        try:
            self._parameters("check")  # pika's own URL checks, before anything connects
        except ValueError as exc:
            raise ConfigError(f"rabbitmq: pika cannot use the broker URL: {exc}") from None
        self.capabilities = s.capabilities()
        self._closed = False
        self._publisher = Publisher(
            lambda: self._parameters("publisher"), s.exchange, s.confirm_timeout, s.connect_timeout
        )
        self._admin = Admin(self._parameters)
        self._topology = Topology(s)
        self._consumers_lock = threading.Lock()  # guards _consumers, _keeper and _closed
        self._consumers: set[RabbitMQConsumer] = set()
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()

    def _parameters(self, role: str) -> Any:
        return connection_parameters(self.settings, role)

    # -- publishing ---------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        if self._closed:
            raise ClosedError("the RabbitMQ adapter is closed")
        if not messages:
            return
        limit = self.settings.max_message_size
        items: list[Outgoing] = []
        try:
            for m in messages:
                size = m.size
                if size > limit:
                    raise MessageTooLarge(
                        f"message of {m.topic!r} is {size} bytes; this RabbitMQ adapter takes at "
                        f"most {limit} (option max_message_size)"
                    )
                if size - len(m.body) > MAX_HEADER_SIZE:
                    raise MessageTooLarge(
                        f"attributes of {m.topic!r} take {size - len(m.body)} bytes; AMQP "
                        f"carries them in one frame, so at most {MAX_HEADER_SIZE}"
                    )
                items.append((m.topic, m.body, to_properties(m)))
        except UnicodeEncodeError as exc:  # a Message made by hand, not by eventbus.encode
            raise EncodeError(
                f"message of {m.topic!r}: an attribute is not encodable as UTF-8 ({exc.reason})"
            ) from None
        self._publisher.publish(items)

    # -- topology ---------------------------------------------------------------------------
    def declare(self, group: str, patterns: Sequence[str]) -> None:
        wanted = frozenset(Matcher(patterns).patterns)
        if self._topology.bound.get(group) == wanted:
            return
        self._admin.call(
            f"declaring group {group!r}", lambda ch: self._topology.bind(ch, group, wanted)
        )

    # -- consuming ------------------------------------------------------------------------
    def consumer(self, group: str, patterns: Sequence[str]) -> RabbitMQConsumer:
        if self._closed:
            raise ClosedError("the RabbitMQ adapter is closed")
        self.declare(group, patterns)
        c = RabbitMQConsumer(
            self.settings, self._topology, group, patterns, self._parameters, self._forget
        )
        with self._consumers_lock:
            if self._closed:
                c.shut()
                raise ClosedError("the RabbitMQ adapter is closed")
            self._consumers.add(c)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep, name="eventbus-rabbitmq-keeper", daemon=True
                )
                self._keeper.start()
        return c

    def _forget(self, c: RabbitMQConsumer) -> None:
        with self._consumers_lock:
            self._consumers.discard(c)

    def _keep(self) -> None:
        s = self.settings
        pump_every = s.heartbeat / 3 if s.heartbeat else 5.0
        tick = min(0.5, s.lease / 10, pump_every)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._consumers_lock:
                consumers = list(self._consumers)
            for c in consumers:
                c.keep(now, s.lease, pump_every)
                if c.done:
                    self._forget(c)

    # -- dead letters and groups (eventbus.adapter.DeadLetterTools, GroupAdmin) ---------------
    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """Peek at ``group``'s dead letters; they stay in the dead-letter queue."""
        return _tooling.dead_letters(self._admin, self.settings, group, limit)

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Move up to ``limit`` dead letters back to the group's queue, oldest first."""
        return _tooling.replay_dead_letters(self._admin, self.settings, group, limit)

    def purge_dead_letters(self, group: str) -> int:
        return _tooling.purge_dead_letters(self._admin, self.settings, group)

    def delete_group(self, group: str) -> None:
        """Delete the group's queue and its dead-letter queue (with what they hold)."""
        _tooling.delete_group(self._admin, self._topology, group)

    # -- lifecycle ---------------------------------------------------------------------------
    def simulate_crash(self) -> None:
        """Drop every connection as a killed process would (for the conformance suite)."""
        with self._consumers_lock:
            consumers = list(self._consumers)
        for c in consumers:
            c.abort()
        self._publisher.abort()

    def close(self) -> None:
        with self._consumers_lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
            self._consumers.clear()
        self._stop.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(5)
        for c in consumers:
            c.shut()
        self._publisher.close()
        self._admin.close()

    def __repr__(self) -> str:
        from eventbus.observability import redact_text

        url, exchange = redact_text(self.settings.url), self.settings.exchange
        return f"<RabbitMQAdapter {url} exchange={exchange!r}>"
