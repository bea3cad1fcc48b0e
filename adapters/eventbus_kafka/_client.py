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
import time
from collections.abc import Callable, Iterable
from typing import Any

from eventbus import BrokerError, ClosedError, ConfigError
from eventbus.adapter import require

from ._errors import config_errors, error, kafka_errors, log
from ._settings import KafkaSettings

__all__ = ["FORCED_PRODUCER", "Health", "KafkaClients", "TopicEpoch", "bump_epoch", "client_log"]

client_log = logging.getLogger("eventbus.kafka.client")  # librdkafka's own log lines
_NOT_ALLOWED = frozenset(
    ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED", "POLICY_VIOLATION")
)


class TopicEpoch:
    """Counts topics created by this process; consumers with wildcards re-match on change."""

    value = 0


def bump_epoch() -> None:
    TopicEpoch.value += 1


#: librdkafka errors that mean "the brokers do not answer" (the error callback's).
_DOWN = frozenset(("_ALL_BROKERS_DOWN", "_TRANSPORT", "_RESOLVE", "_AUTHENTICATION", "_SSL"))


class Health:
    """Whether this adapter's clients reach the brokers, from librdkafka's error callbacks.

    One WARNING when an outage starts and one when it ends, however many
    clients report it. ``up``/``down_since``/``error`` are read without the lock
    (each is one store); :meth:`KafkaAdapter.health` reports them.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.lock = threading.Lock()
        self.up = True
        self.down_since: float | None = None  # epoch seconds
        self.error: str | None = None  # the last error reported while down

    def on_error(self, err: Any) -> None:
        """librdkafka's ``error_cb``, for every client of the adapter."""
        name = err.name() if hasattr(err, "name") else ""
        if name not in _DOWN:
            log.warning("kafka: %s: %s", self.where, err.str() if hasattr(err, "str") else err)
            return
        with self.lock:
            self.error = f"{err.str()} ({name})"
            if not self.up:
                return
            self.up, self.down_since = False, time.time()
        log.warning(
            "kafka: the brokers at %s do not answer (%s); publishing and consuming wait for them",
            self.where,
            self.error,
        )

    def answered(self) -> None:
        """A request went through: if the brokers were down, they are back."""
        with self.lock:
            if self.up:
                return
            since, self.up, self.down_since = self.down_since or time.time(), True, None
        log.warning(
            "kafka: the brokers at %s answer again (after %.0f s)", self.where, time.time() - since
        )


#: Producer properties a ``client`` table cannot change: the idempotent producer is what
#: keeps a key's order and drops the producer's own retries (no duplicates from a
#: resend), and it requires ``acks=all``, which is also what makes an acknowledged
#: publish survive a broker's loss.
FORCED_PRODUCER: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}


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
        self._fatal = False  # the producer hit a fatal error: make a new one
        self.health = Health(settings.bootstrap_servers)

    # -- configuration and creation ------------------------------------------------------
    def config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka properties shared by every client, plus ``extra``."""
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            "logger": client_log,
            "error_cb": self.health.on_error,
            **self.settings.client,
            **extra,
        }

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        """The producer's properties: ours as defaults, the ``client`` table's win, except
        :data:`FORCED_PRODUCER` (what publish's guarantees rest on) and ``extra``."""
        s = self.settings
        defaults = {
            "linger.ms": s.linger * 1000,
            "message.timeout.ms": int(s.publish_timeout * 1000),
            "message.max.bytes": s.max_message_size + 64 * 1024,
        }
        return {**defaults, **self.config(**FORCED_PRODUCER, **extra)}

    def make(self, cls: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> Any:
        """A new client of class ``cls`` (``ck.Consumer``, ...) with ``config``."""
        with kafka_errors(self.ck, "creating a client"), config_errors("client configuration"):
            return cls(config)

    def producer(self) -> Any:
        """The shared producer (made on first use)."""
        p = self._producer
        if p is None or self._fatal:
            with self.lock:
                if self.closed:
                    raise ClosedError("kafka adapter is closed")
                if self._producer is None or self._fatal:
                    if self._fatal:
                        log.warning("kafka: the producer hit a fatal error; making a new one")
                    self._fatal = False
                    config = self.producer_config(**{"delivery.report.only.error": True})
                    self._producer = self.make(self.ck.Producer, config)
                p = self._producer
        return p

    def producer_failed(self, err: Any) -> None:
        """``err`` came from the shared producer: after a fatal one (the idempotent
        producer's state is lost for good), the next publish makes a new producer."""
        if hasattr(err, "fatal") and err.fatal():
            self._fatal = True

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
    def existing_topics(self) -> set[str]:
        """The topics the cluster lists (to this principal: Describe is needed per topic)."""
        with kafka_errors(self.ck, "listing topics"):
            listed = self.admin().list_topics(timeout=self.settings.publish_timeout).topics
        return {name for name, meta in listed.items() if meta.error is None}

    def ensure_topics(self, names: Iterable[str], create: bool = True) -> None:
        """Make sure the topics in ``names`` exist: create the missing ones, or with
        ``create=False`` raise :class:`ConfigError` naming them.

        The cluster is asked which exist first, and only the missing ones are
        created: on an ACL'd cluster (Confluent Cloud, MSK) a principal may have
        no Create permission, and CreateTopics then fails with an authorization
        error even for a topic that exists. Such an error is accepted when the
        topic turns out to exist after all.
        """
        names = sorted(set(names) - self.known)
        if not names:
            return
        existing = self.existing_topics()
        missing = [n for n in names if n not in existing]
        if missing and not create:
            raise ConfigError(
                f"kafka: topic(s) {', '.join(missing)} do not exist and this adapter does not "
                "create them (create_internal_topics=false): create them, or grant the "
                "principal Describe on them"
            )
        if missing:
            self._create(missing)
        with self.lock:
            self.known.update(names)

    def _create(self, names: list[str]) -> None:
        s, ck = self.settings, self.ck
        new = self.ck_admin.NewTopic
        topics = [
            new(n, num_partitions=s.partitions, replication_factor=s.replication_factor)
            for n in names
        ]
        with kafka_errors(ck, "creating topics"):
            futures = self.admin().create_topics(topics, request_timeout=s.publish_timeout)
        created = False
        refused: list[tuple[str, Any, BaseException]] = []
        for name, future in futures.items():
            try:
                future.result()
                created = True
            except ck.KafkaException as exc:
                err = exc.args[0]
                if err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                if err.name() in _NOT_ALLOWED:
                    refused.append((name, err, exc))
                    continue
                raise error(err, f"creating topic {name!r}") from exc
        if refused:  # another principal may have made it meanwhile
            existing = self.existing_topics()
            for name, err, cause in refused:
                if name not in existing:
                    raise BrokerError(
                        f"kafka: creating topic {name!r}: {err.str()} ({err.name()}); the "
                        "principal needs Create on it (or the cluster), or create it beforehand"
                    ) from cause
        if created:
            bump_epoch()

    def forget_topics(self, names: Iterable[str]) -> None:
        """``names`` were deleted: create them again when next needed."""
        with self.lock:
            self.known.difference_update(names)
