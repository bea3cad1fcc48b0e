"""eventbus: one event bus API on RabbitMQ, Kafka, SQS, Azure Service Bus or an embedded broker.

from eventbus import EventBus

bus = EventBus()                      # broker from eventbus.toml, else embedded SQLite

@bus.subscribe("order.created", group="billing")
def invoice(event):
    print("invoice for", event.data["id"])

bus.publish("order.created", {"id": 1, "user": "Ana", "total": 42.9})
bus.run()
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._bus import EventBus, PublishResult
from ._config import BusConfig, load_config
from ._envelope import Delivery, Event, Message, decode, encode
from ._errors import (
    AdapterNotFound,
    BrokerError,
    BrokerUnavailable,
    ClosedError,
    ConfigError,
    DecodeError,
    EncodeError,
    EventBusError,
    HandlerTimeout,
    MessageTooLarge,
    PublishError,
    ValidationError,
)
from ._hooks import Outcome, current_handler
from ._plugins import AdapterSpec, adapter_specs, create_adapter, find_spec, require
from ._routing import Matcher, matches, pattern_to_regex, validate_pattern, validate_topic
from ._structured import from_structured, to_structured
from .adapter import Adapter, Capabilities, Consumer
from .brokers import LogEntry, MemoryAdapter, SqliteAdapter
from .hookspecs import hookimpl
from .observability import configure_logging, redact_text
from .resilience import (
    CircuitBreaker,
    Inbox,
    InboxError,
    OutboxRelay,
    PostgresInbox,
    PublishSettings,
    RedisInbox,
    RetryPolicy,
    SqliteInbox,
    TransactionalOutbox,
    open_inbox,
)

__all__ = [
    "Adapter",
    "AdapterNotFound",
    "AdapterSpec",
    "BrokerError",
    "BrokerUnavailable",
    "BusConfig",
    "Capabilities",
    "CircuitBreaker",
    "ClosedError",
    "ConfigError",
    "Consumer",
    "DecodeError",
    "Delivery",
    "EncodeError",
    "Event",
    "EventBus",
    "EventBusError",
    "HandlerTimeout",
    "Inbox",
    "InboxError",
    "LogEntry",
    "Matcher",
    "MemoryAdapter",
    "Message",
    "MessageTooLarge",
    "OutboxRelay",
    "Outcome",
    "PostgresInbox",
    "PublishError",
    "PublishResult",
    "PublishSettings",
    "RedisInbox",
    "RetryPolicy",
    "SqliteAdapter",
    "SqliteInbox",
    "TransactionalOutbox",
    "ValidationError",
    "__version__",
    "adapter_specs",
    "configure_logging",
    "create_adapter",
    "current_handler",
    "decode",
    "encode",
    "find_spec",
    "from_structured",
    "hookimpl",
    "load_config",
    "matches",
    "open_inbox",
    "pattern_to_regex",
    "redact_text",
    "require",
    "to_structured",
    "validate_pattern",
    "validate_topic",
]
