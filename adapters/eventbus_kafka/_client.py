"""The librdkafka clients an adapter shares: configuration, creation, topic creation.

:class:`KafkaClients` is what the adapter, its consumers and the tooling are
given explicitly (nobody reaches into another's private state): the settings,
the SDK modules, one producer and one admin client made on first use, the
topics known to exist, and how to make more clients with the shared
configuration. It imports confluent-kafka (through ``eventbus.adapter.require``)
when it is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from eventbus import ClosedError
from eventbus.adapter import require

from ._errors import config_errors, error, kafka_errors
from ._settings import KafkaSettings

__all__ = ["KafkaClients", "TopicEpoch", "bump_epoch", "client_log"]

client_log = logging.getLogger("eventbus.kafka.client")  # librdkafka's own log lines


class TopicEpoch:
    """Counts topics created by this process; consumers with wildcards re-match on change."""

    value = 0


def bump_epoch() -> None:
    TopicEpoch.value += 1


class KafkaClients:
    """The clients of one adapter and what they share.

    Thread-safe: ``lock`` guards the shared producer and admin client, ``known``
    (topics known to exist) and ``closed``; everything else is read-only.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.ck: Any = require("confluent_kafka", "kafka", "kafka")
        self.ck_admin: Any = require("confluent_kafka.admin", "kafka", "kafka")
        self.lock = threading.Lock()
        self.known: set[str] = set()
        self.closed = False
        self._producer: Any = None
        self._admin: Any = None

    # -- configuration and creation ------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka properties shared by every client, plus ``extra``."""
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "logger": client_log,
            **self.settings.client,
            **extra,
        }

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        return self.config(
            **{
                "enable.idempotence": True,  # broker drops the producer's own retries
                "acks": "all",
                "linger.ms": s.linger * 1000,
                "message.timeout.ms": int(s.publish_timeout * 1000),
                "message.max.bytes": s.max_message_size + 64 * 1024,
                **extra,
            }
        )

    def make(self, cls: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> Any:
        """A new client of class ``cls`` (``ck.Consumer``, ...) with ``config``."""
        with kafka_errors(self.ck, "creating a client"), config_errors("client configuration"):
            return cls(config)

    def producer(self) -> Any:
        """The shared producer (made on first use)."""
        p = self._producer
        if p is None:
            with self.lock:
                if self.closed:
                    raise ClosedError("kafka adapter is closed")
                if self._producer is None:
                    config = self.producer_config(**{"delivery.report.only.error": True})
                    self._producer = self.make(self.ck.Producer, config)
                p = self._producer
        return p

    def admin(self) -> Any:
        """The shared admin client (made on first use)."""
        a = self._admin
        if a is None:
            with self.lock:
                if self._admin is None:
                    self._admin = self.make(self.ck_admin.AdminClient, self.config())
                a = self._admin
        return a

    def take_producer(self) -> Any:
        """Mark closed and hand back the producer (None if never made) for the caller to flush."""
        with self.lock:
            self.closed = True
            producer, self._producer = self._producer, None
            self._admin = None
        return producer

    # -- topics ----------------------------------------------------------------------------
    def ensure_topics(self, names: Iterable[str]) -> None:
        """Create the topics in ``names`` that don't exist yet (policy from the settings)."""
        names = sorted(set(names) - self.known)
        if not names:
            return
        s, ck = self.settings, self.ck
        new = self.ck_admin.NewTopic
        topics = [new(n, num_partitions=s.partitions, replication_factor=s.replication_factor)
                  for n in names]  # fmt: skip
        with kafka_errors(ck, "creating topics"):
            futures = self.admin().create_topics(topics, request_timeout=s.publish_timeout)
        created = False
        for name, future in futures.items():
            try:
                future.result()
                created = True
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    raise error(err, f"creating topic {name!r}") from exc
        with self.lock:
            self.known.update(names)
        if created:
            bump_epoch()

    def forget_topics(self, names: Iterable[str]) -> None:
        """``names`` were deleted: create them again when next needed."""
        with self.lock:
            self.known.difference_update(names)
