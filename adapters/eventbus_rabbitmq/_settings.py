"""Settings of the RabbitMQ adapter: one small typed record, read from a URL and options.

Nothing here imports pika: the plugin module reads :data:`CAPABILITIES` and
the factory validates settings before the SDK is loaded.

Every setting can come from the config's ``options`` table or from the URL's
query string (``amqp://host/vhost?exchange=shop&queue_type=quorum``); options
win; the rules are :class:`eventbus.adapter.Settings`'s. The query parameters
pika reads itself (``frame_max``, ``channel_max``, ``locale``, ``tcp_options``,
...: :data:`PIKA_QUERY`) are passed on to pika, which checks their values when
the adapter is made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from eventbus import Capabilities, ConfigError
from eventbus.adapter import Settings

__all__ = ["CAPABILITIES", "DEFAULT_URL", "PIKA_QUERY", "RabbitMQSettings", "delay_bucket"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
MiB = 1024 * 1024
#: RabbitMQ 3.10's own ``max_message_size`` default (and the largest it allows is 512 MiB).
BROKER_MAX_MESSAGE_SIZE = 128 * MiB
#: Attributes travel in the AMQP content-header frame, which must fit one frame
#: (``frame_max``, 128 KiB by default): we keep the attributes well under it.
MAX_HEADER_SIZE = 64 * 1024
_MAX_NAME = 255  # AMQP short string: queue, exchange and header names, routing keys
#: URL query parameters that are pika's own (``pika.URLParameters``), not settings of ours.
#: Those pika also has a setting of ours for (``heartbeat``, the timeouts) are ours.
PIKA_QUERY = frozenset(
    {"channel_max", "frame_max", "locale", "retry_delay", "ssl_options", "tcp_options"}
)

CAPABILITIES = Capabilities(
    ordering_per_key=False,  # competing members and delayed retries reorder; see the docs
    consumer_groups=True,
    persistence=True,  # durable queues, persistent messages, publisher confirms
    replay=False,
    redelivery=True,
    native_dead_letter=False,  # a dead-letter queue per group, made by the adapter
    delayed_delivery=True,  # TTL queues per delay bucket + dead-letter exchange
    max_message_size=16 * MiB,
    max_header_count=None,
    max_header_size=MAX_HEADER_SIZE,
    batching=True,  # publisher confirms are pipelined
    dedup=False,
    lease_seconds=30.0,
    cross_process=True,
)


@dataclass(frozen=True, repr=False)
class RabbitMQSettings(Settings):
    """How the adapter connects and lays out its exchange and queues.

    - ``url``: ``amqp://user:password@host:port/vhost`` (``amqps://`` for TLS).
    - ``exchange``: the topic exchange every event is published to.
    - ``queue_prefix``: prepended to group names to name their queues
      (default ``"<exchange>."``).
    - ``queue_type``: ``"classic"`` or ``"quorum"`` (replicated; native delivery counts).
    - ``delivery_limit``: quorum only: the broker dead-letters a message after this
      many failed deliveries (protects against events that crash their consumer).
    - ``prefetch``: per-consumer QoS; default: the worker's batch size.
    - ``lease``: seconds a delivery may stay unsettled with a consumer before its
      connection is dropped and the broker hands the delivery to another member.
    - ``heartbeat``: AMQP heartbeat in seconds (0 disables); a silent peer is
      declared dead after about three heartbeats.
    - ``confirm_timeout``: seconds without any publisher confirm before ``publish``
      gives up with :class:`~eventbus.PublishError`.
    - ``connect_timeout``: seconds to open a connection.
    - ``max_message_size``: largest encoded event (body + attributes), at most
      the broker's 128 MiB.
    - ``tls_*``: CA file, client certificate and key, verification, SNI name
      (``amqps://`` alone uses the system CAs).
    """

    adapter: ClassVar[str] = "rabbitmq"

    url: str = DEFAULT_URL
    exchange: str = "eventbus"
    queue_prefix: str | None = None
    queue_type: Literal["classic", "quorum"] = "classic"
    delivery_limit: int | None = None
    prefetch: int | None = None
    lease: float = 30.0
    heartbeat: int = 10
    confirm_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_message_size: int = 16 * MiB
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True
    tls_server_hostname: str | None = None

    @classmethod
    def from_url(
        cls, url: str | None = None, options: Mapping[str, Any] | None = None
    ) -> RabbitMQSettings:
        """Settings from ``url`` and ``options`` (these win); pika's own query parameters
        (:data:`PIKA_QUERY`) stay in :attr:`url` for pika."""
        url = url or DEFAULT_URL
        try:
            split = urlsplit(url)
        except ValueError:
            return super().from_url(url, options)  # the base words the error
        query = parse_qsl(split.query, keep_blank_values=True)
        if "url" in (options or {}) or any(k == "url" for k, _ in query):
            raise ConfigError("rabbitmq: the URL is the config's url, not an option")
        ours = [(k, v) for k, v in query if k not in PIKA_QUERY]
        if len(ours) == len(query):
            return super().from_url(url, options)
        settings = super().from_url(urlunsplit(split._replace(query=urlencode(ours))), options)
        return dataclasses.replace(settings, url=url)

    @classmethod
    def url_fields(cls, url: SplitResult) -> dict[str, Any]:
        scheme = url.scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise ConfigError(
                f"rabbitmq: URL scheme must be amqp or amqps, not {scheme or 'missing'!r} "
                f"(e.g. {DEFAULT_URL})"
            )
        return {"url": urlunsplit(url)}

    def validate(self) -> None:
        if self.delivery_limit is not None and self.queue_type != "quorum":
            raise ConfigError("rabbitmq: delivery_limit needs queue_type = 'quorum'")
        if not self.exchange or self.exchange.startswith("amq."):
            raise ConfigError(
                f"rabbitmq: exchange {self.exchange!r}: give a name that does not start with 'amq.'"
            )
        if len(self.delay_exchange.encode()) > _MAX_NAME:
            raise ConfigError(f"rabbitmq: exchange name {self.exchange!r} is too long")
        for name in ("lease", "confirm_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"rabbitmq: {name} must be > 0 seconds")
        if self.heartbeat < 0:
            raise ConfigError("rabbitmq: heartbeat must be >= 0 seconds (0 disables it)")
        if self.prefetch is not None and not 1 <= self.prefetch <= 65535:
            raise ConfigError("rabbitmq: prefetch must be between 1 and 65535")
        if self.tls_configured and urlsplit(self.url).scheme.lower() != "amqps":
            raise ConfigError("rabbitmq: the tls_* options need an amqps:// URL")
        if not 1024 <= self.max_message_size <= BROKER_MAX_MESSAGE_SIZE:
            raise ConfigError(
                f"rabbitmq: max_message_size must be between 1 KiB and "
                f"{BROKER_MAX_MESSAGE_SIZE} bytes (the broker's limit)"
            )

    @property
    def tls_configured(self) -> bool:
        """True if a ``tls_*`` option asks for more than ``amqps://``'s defaults."""
        return bool(
            self.tls_ca_file
            or self.tls_cert_file
            or self.tls_key_file
            or self.tls_server_hostname
            or not self.tls_verify
        )

    # -- names on the broker ------------------------------------------------------
    @property
    def prefix(self) -> str:
        return f"{self.exchange}." if self.queue_prefix is None else self.queue_prefix

    def queue(self, group: str) -> str:
        """The durable queue of ``group``."""
        name = self.prefix + group
        if not group or len(self.dead_queue_of(name).encode()) > _MAX_NAME:
            raise ConfigError(
                f"rabbitmq: group {group!r} makes queue name {name!r}, which must be "
                f"non-empty and at most {_MAX_NAME - 5} bytes"
            )
        return name

    @staticmethod
    def dead_queue_of(queue: str) -> str:
        return f"{queue}:dead"

    def dead_queue(self, group: str) -> str:
        """The dead-letter queue of ``group``."""
        return self.dead_queue_of(self.queue(group))

    @property
    def delay_exchange(self) -> str:
        """The headers exchange that routes a retried event to its delay bucket."""
        return f"{self.exchange}:delay"

    def delay_queue(self, ms: int) -> str:
        """The TTL queue holding retried events for ``ms`` milliseconds."""
        suffix = "" if self.queue_type == "classic" else f":{self.queue_type}"
        return f"{self.exchange}:delay:{ms}ms{suffix}"

    def queue_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": self.queue_type}
        if self.delivery_limit is not None:
            args["x-delivery-limit"] = self.delivery_limit
        return args

    @property
    def lease_seconds(self) -> float:
        """How long a crashed-but-connected consumer keeps its deliveries (see the docs)."""
        return max(self.lease, 3.0 * self.heartbeat) if self.heartbeat else self.lease

    def capabilities(self) -> Capabilities:
        return CAPABILITIES.replace(
            lease_seconds=self.lease_seconds, max_message_size=self.max_message_size
        )

    def pika_url(self) -> str:
        """The URL with this adapter's own query parameters removed (what pika reads)."""
        parts = urlsplit(self.url)
        query = [
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k in PIKA_QUERY
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))


# Delay buckets in ms: 1, 1.5, 2, 3, 5, 7.5 x 10^k from 10 ms to a day; a delay is
# rounded up to the next bucket, so an event never comes back early.
_BUCKETS = sorted(
    {int(m * 10**k) for k in range(1, 8) for m in (1, 1.5, 2, 3, 5, 7.5)} | {86_400_000}
)
_BUCKETS = [b for b in _BUCKETS if b <= 86_400_000]


def delay_bucket(seconds: float) -> int:
    """The delay bucket (ms) for ``seconds``: the smallest one not shorter; 0 for no delay.

    Delays over a day are cut to a day (the longest bucket).
    """
    if seconds <= 0:
        return 0
    ms = seconds * 1000.0
    for b in _BUCKETS:
        if b >= ms:
            return b
    return _BUCKETS[-1]
