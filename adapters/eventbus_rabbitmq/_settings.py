"""Settings of the RabbitMQ adapter: one small typed record, read from a URL and options.

Nothing here imports pika: the plugin module reads :data:`CAPABILITIES` and
the factory validates settings before the SDK is loaded.

Every setting can come from the config's ``options`` table or from the URL's
query string (``amqp://host/vhost?exchange=shop&queue_type=quorum``); options
win. Query parameters pika knows itself (``frame_max``, ``socket_timeout``,
``ssl_options``, ...) are passed on to pika untouched.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventbus import Capabilities, ConfigError

__all__ = ["CAPABILITIES", "DEFAULT_URL", "RabbitMQSettings"]

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
MiB = 1024 * 1024
#: RabbitMQ 3.10's own ``max_message_size`` default (and the largest it allows is 512 MiB).
BROKER_MAX_MESSAGE_SIZE = 128 * MiB
#: Attributes travel in the AMQP content-header frame, which must fit one frame
#: (``frame_max``, 128 KiB by default): we keep the attributes well under it.
MAX_HEADER_SIZE = 64 * 1024
_MAX_NAME = 255  # AMQP short string: queue, exchange and header names, routing keys

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


@dataclass(frozen=True)
class RabbitMQSettings:
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

    url: str = DEFAULT_URL
    exchange: str = "eventbus"
    queue_prefix: str | None = None
    queue_type: str = "classic"
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

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("amqp", "amqps"):
            raise ConfigError(
                f"rabbitmq: URL scheme must be amqp or amqps, not {scheme or 'missing'!r} "
                f"(e.g. {DEFAULT_URL})"
            )
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError(
                f"rabbitmq: queue_type must be 'classic' or 'quorum', not {self.queue_type!r}"
            )
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
        if self.tls_configured and scheme != "amqps":
            raise ConfigError("rabbitmq: the tls_* options need an amqps:// URL")
        if not 1024 <= self.max_message_size <= BROKER_MAX_MESSAGE_SIZE:
            raise ConfigError(
                f"rabbitmq: max_message_size must be between 1 KiB and "
                f"{BROKER_MAX_MESSAGE_SIZE} bytes (the broker's limit)"
            )

    @property
    def tls_configured(self) -> bool:
        """True if a ``tls_*`` option asks for more than ``amqps://``'s defaults."""
        return bool(self.tls_ca_file or self.tls_cert_file or self.tls_key_file
                    or self.tls_server_hostname or not self.tls_verify)  # fmt: skip

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
            (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _FIELDS
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_url(
        cls, url: str | None, options: Mapping[str, Any] | None = None
    ) -> RabbitMQSettings:
        """Settings from ``url`` (query parameters) and ``options`` (these win)."""
        url = url or DEFAULT_URL
        values: dict[str, Any] = {}
        for key, raw in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if key in _FIELDS:
                values[key] = _coerce(key, raw, "URL query parameter")
        for key, raw in (options or {}).items():
            if key not in _FIELDS or key == "url":
                close = difflib.get_close_matches(key, sorted(_FIELDS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"rabbitmq: unknown option {key!r}{hint}")
            values[key] = _coerce(key, raw, "option")
        return cls(url=url, **values)


_FIELDS = {f.name: f for f in dataclasses.fields(RabbitMQSettings)}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, raw: Any, where: str) -> Any:
    kind = str(_FIELDS[key].type)
    optional = "None" in kind
    if raw is None or (optional and isinstance(raw, str) and raw.lower() in ("", "none")):
        if optional:
            return None
        raise ConfigError(f"rabbitmq: {where} {key!r} needs a value")
    try:
        if kind.startswith("bool"):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(raw)
        if kind.startswith("int"):
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(raw)
        if kind.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if not isinstance(raw, str):
            raise ValueError(raw)
        return raw
    except (TypeError, ValueError):
        want = kind.replace(" | None", "").replace("str", "text")
        raise ConfigError(f"rabbitmq: {where} {key!r} must be {want}, not {raw!r}") from None
