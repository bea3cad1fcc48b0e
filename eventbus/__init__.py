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

from ._adapter import Adapter, Consumer
from ._bus import EventBus, PublishResult
from ._capabilities import Capabilities
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
)
from ._memory import MemoryAdapter
from ._plugins import AdapterSpec, adapter_specs, create_adapter, find_spec, require
from ._retry import RetryPolicy
from ._routing import Matcher, matches, pattern_to_regex
from ._sqlite import LogEntry, SqliteAdapter
from .hookspecs import hookimpl

__all__ = [
    "Adapter",
    "AdapterNotFound",
    "AdapterSpec",
    "BrokerError",
    "BrokerUnavailable",
    "BusConfig",
    "Capabilities",
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
    "LogEntry",
    "Matcher",
    "MemoryAdapter",
    "Message",
    "MessageTooLarge",
    "PublishError",
    "PublishResult",
    "RetryPolicy",
    "SqliteAdapter",
    "__version__",
    "adapter_specs",
    "create_adapter",
    "decode",
    "encode",
    "find_spec",
    "hookimpl",
    "load_config",
    "matches",
    "pattern_to_regex",
    "require",
]
