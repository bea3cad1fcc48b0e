"""Settings of the Kafka adapter: one small typed record, read from a URL and options.

Nothing here imports confluent-kafka. Every setting can come from the config's
``options`` table or the URL's query string (options win)::

    kafka://broker1:9092,broker2:9092?prefix=shop.&partitions=6

Query or option keys with a dot are librdkafka properties passed to every
client untouched (``security.protocol=SASL_SSL``, ``sasl.mechanism=PLAIN``,
...); so is the ``client`` option table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit

from eventbus import Capabilities, ConfigError
from eventbus.adapter import Settings

from ._names import check_prefix

__all__ = ["CAPABILITIES", "DEFAULT_URL", "KafkaSettings"]

DEFAULT_URL = "kafka://127.0.0.1:9092"

CAPABILITIES = Capabilities(
    ordering_per_key=True,  # key -> partition; one in-flight event per key in a member
    consumer_groups=True,
    persistence=True,  # Kafka's log (Tansu's memory:// storage is the exception)
    replay=False,  # a new group starts where it was declared; start="earliest" replays
    redelivery=True,
    native_dead_letter=False,  # a dead-letter topic per group, written by the adapter
    delayed_delivery=True,  # in-process delay, then the group's retry topic
    max_message_size=1_000_000,
    batching=True,
    dedup=False,  # the idempotent producer drops its own retries, not a second publish
    lease_seconds=310.0,
    cross_process=True,
)


@dataclass(frozen=True, repr=False)
class KafkaSettings(Settings):
    """How the adapter talks to Kafka and lays out topics and groups.

    - ``bootstrap_servers``: ``host:port[,host:port...]``.
    - ``prefix``: prepended to every topic and consumer-group id (``"shop."``);
      end it with a separator, and don't let one prefix start another.
    - ``create_topics``: the topic auto-creation policy. True: ``publish`` and
      ``declare`` create missing event topics with ``partitions`` and
      ``replication_factor``. False: topics must exist (or the broker's own
      ``auto.create.topics.enable`` makes them).
    - ``create_internal_topics``: True: ``declare`` creates the group's retry
      and dead-letter topics if missing. False (a cluster where the principal
      may not create topics): they must exist; ``declare`` only checks, and
      names the missing ones in a :class:`ConfigError`.
    - ``start``: where a group with no committed offsets begins on topics that
      existed when it was declared: ``"declared"`` (only newer events, like every
      other adapter) or ``"earliest"`` (replay the retained history).
    - ``session_timeout``: seconds without heartbeats before a crashed member's
      partitions go to another (Kafka's ``session.timeout.ms``; brokers require >= 6
      by default, Tansu takes lower).
    - ``max_poll_interval``: seconds a member may go without asking for events
      (a whole batch of handlers must fit) before it is put out of the group.
    - ``commit_interval``: seconds between offset commits while consuming;
      revoke and close always commit synchronously.
    - ``fetch_wait``: seconds the broker may hold a fetch while it has no new
      records (librdkafka's ``fetch.wait.max.ms``, 0.5 s by its default). Apache
      Kafka answers as soon as a record arrives, so this only sets how often an
      idle member asks (10 times a second at 0.1); brokers that answer only when
      the wait runs out (Tansu) add up to this much latency, so use 0.01 there.
    - ``metadata_refresh``: seconds between checks for new topics matching a
      wildcard (topics created through this process are seen at once).
    - ``local_retries`` / ``local_retry_max_delay``: a failed event is retried in
      the process (its key waits, the rest of the partition goes on) this many
      times if the delay is at most this long; later retries go through the
      group's retry topic and no longer hold its key back.
    - ``leave_grace``: seconds a closing member keeps polling to take part in a
      rebalance another member started, before it leaves. A member always
      finishes its own pending join first. Apache Kafka and Redpanda need
      neither; Tansu 0.6 wedges a group for good when a member leaves
      mid-rebalance, so on Tansu set this to about ``session_timeout / 4``.
    - ``marks_ahead``: after a crash, the next owner of a partition gives
      ``attempt`` 2 to the events the dead member had handed out and to up to
      this many after them ("may have been handed out before", as RabbitMQ's
      redelivered flag is set on prefetched messages its consumer never saw). The
      member records how far it got once per this many events instead of once
      per batch; 0 records every batch and marks exactly the events handed out.
    - ``max_held``: retry-topic events waiting for their time in memory before
      the consumer stops reading its retry topic for a while.
    - ``assignment``: ``partition.assignment.strategy`` (``"roundrobin"``: spreads
      single-partition topics; ``"cooperative-sticky"`` on Apache Kafka avoids
      stop-the-world rebalances, but Tansu 0.6 does not finish them).
    - ``linger``: seconds the producer waits to fill a batch (``publish`` of one
      event flushes at once, so this only helps concurrent publishers).
    - ``publish_timeout``: seconds ``publish`` waits for the broker's acks.
    - ``max_message_size``: largest encoded event (body + attributes); the
      broker's ``message.max.bytes`` (about 1 MiB by default) must allow it.
    - ``client``: extra librdkafka properties for every client (TLS, SASL, ...);
      masked in ``repr()`` (it holds SASL passwords).
    """

    adapter: ClassVar[str] = "kafka"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"client"})

    bootstrap_servers: str = "127.0.0.1:9092"
    prefix: str = ""
    create_topics: bool = True
    create_internal_topics: bool = True
    partitions: int = 4
    replication_factor: int = -1
    start: Literal["declared", "earliest"] = "declared"
    session_timeout: float = 10.0
    max_poll_interval: float = 300.0
    commit_interval: float = 1.0
    fetch_wait: float = 0.1
    metadata_refresh: float = 5.0
    local_retries: int = 3
    local_retry_max_delay: float = 5.0
    leave_grace: float = 0.0
    marks_ahead: int = 1_000
    max_held: int = 10_000
    assignment: str = "roundrobin"
    linger: float = 0.005
    publish_timeout: float = 30.0
    max_message_size: int = 1_000_000
    client: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()  # KafkaSettings(...) is checked like from_url's

    def validate(self) -> None:
        if not self.bootstrap_servers.strip():
            raise ConfigError("kafka: bootstrap_servers must name at least one host:port")
        try:
            check_prefix(self.prefix)
        except ValueError as exc:
            raise ConfigError(f"kafka: {exc}") from None
        if self.start not in ("declared", "earliest"):
            raise ConfigError(f"kafka: start must be 'declared' or 'earliest', not {self.start!r}")
        if self.partitions < 1:
            raise ConfigError("kafka: partitions must be >= 1")
        if self.replication_factor == 0 or self.replication_factor < -1:
            raise ConfigError("kafka: replication_factor must be >= 1, or -1 for the broker's")
        for name in ("session_timeout", "max_poll_interval", "metadata_refresh", "publish_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"kafka: {name} must be > 0 seconds")
        if self.max_poll_interval < self.session_timeout:
            raise ConfigError("kafka: max_poll_interval must be >= session_timeout")
        for name in (
            "commit_interval",
            "local_retry_max_delay",
            "linger",
            "leave_grace",
            "fetch_wait",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"kafka: {name} must be >= 0 seconds")
        if self.local_retries < 0 or self.max_held < 1:
            raise ConfigError("kafka: local_retries must be >= 0 and max_held >= 1")
        if self.marks_ahead < 0:
            raise ConfigError("kafka: marks_ahead must be >= 0 (events)")
        if not 1024 <= self.max_message_size <= 1 << 30:
            raise ConfigError("kafka: max_message_size must be between 1 KiB and 1 GiB")

    def replace(self, **changes: Any) -> KafkaSettings:
        return dataclasses.replace(self, **changes)

    @property
    def capabilities(self) -> Capabilities:
        """What an adapter with these settings declares."""
        return CAPABILITIES.replace(
            replay=self.start == "earliest",
            max_message_size=self.max_message_size,
            # a member that stops asking for events is put out after max_poll_interval
            # (a dead process after session_timeout); then the group rebalances.
            lease_seconds=self.max_poll_interval + self.session_timeout,
        )

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        if url.scheme.lower() != "kafka":
            raise ConfigError(f"kafka: the URL must be kafka://host:port, not {url.geturl()!r}")
        return {}  # the hosts: see from_url

    @classmethod
    def from_url(
        cls, url: str | None = None, options: Mapping[str, Any] | None = None
    ) -> KafkaSettings:
        """Settings from ``kafka://host:port[,host:port]?key=value`` and an options mapping.

        The base rules (:class:`eventbus.adapter.Settings`), plus: a key with a dot,
        in the query or the options, is a librdkafka property and joins ``client``;
        the URL's hosts are ``bootstrap_servers`` (a list the base's URL check would
        refuse as a port, so they are taken out here).
        """
        split = urlsplit(url or DEFAULT_URL)
        query = parse_qsl(split.query, keep_blank_values=True)
        opts = dict(options or {})
        table = opts.pop("client", None) or {}
        if not isinstance(table, Mapping):
            raise ConfigError(f"kafka: option 'client' must be a table, not {table!r}")
        client = dict(table)
        client.update((k, v) for k, v in query if "." in k)
        client.update((k, opts.pop(k)) for k in [k for k in opts if "." in k])
        ours = [(k, v) for k, v in query if "." not in k]
        hosts = unquote(split.netloc.rsplit("@", 1)[-1])
        named = "bootstrap_servers" in opts or any(k == "bootstrap_servers" for k, _ in ours)
        if hosts and not named:
            ours.insert(0, ("bootstrap_servers", hosts))
        elif not hosts and not named and split.scheme.lower() == "kafka":
            raise ConfigError(
                "kafka: the URL names no broker; write kafka://host:9092[,host:9092] "
                "or set the bootstrap_servers option"
            )
        rest = split._replace(netloc="", query=urlencode(ours)).geturl()
        return super().from_url(rest, {**opts, "client": client})
