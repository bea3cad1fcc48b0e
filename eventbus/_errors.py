"""The exception tree of eventbus.

Every error eventbus raises derives from :class:`EventBusError`. Broker SDK
exceptions never reach the caller raw: adapters catch them and raise one of
these ``from`` the original, so ``err.__cause__`` still holds the SDK's error.

    EventBusError
    ├── ConfigError            bad or missing config file, key or value
    ├── AdapterNotFound        unknown broker name, or its SDK is not installed
    ├── BrokerError            the broker failed or could not be reached
    │   ├── BrokerUnavailable  connection refused / lost; worth retrying later
    │   └── PublishError       the broker did not take the event(s)
    ├── EncodeError            an event that cannot be serialised (nothing is sent)
    │   └── MessageTooLarge    over the adapter's declared maximum size
    ├── DecodeError            a message from the broker that is not a valid event
    │   └── ValidationError    its data does not fit the handler's typed contract
    ├── HandlerTimeout         a handler ran past its timeout
    ├── InboxError             the idempotent inbox's store failed (the event comes back)
    └── ClosedError            the bus or adapter was already closed

``DecodeError`` never escapes a worker and is never retried: the message goes
to the group's dead letter at once with the error text as its reason.
"""

from __future__ import annotations

__all__ = [
    "AdapterNotFound",
    "BrokerError",
    "BrokerUnavailable",
    "ClosedError",
    "ConfigError",
    "DecodeError",
    "EncodeError",
    "EventBusError",
    "HandlerTimeout",
    "MessageTooLarge",
    "PublishError",
    "ValidationError",
]


class EventBusError(Exception):
    """Root of every error eventbus raises."""


class ConfigError(EventBusError):
    """A config file, key or value is wrong; the message names the file, key and fix."""


class AdapterNotFound(EventBusError):
    """No adapter is installed under that name (the message suggests one and its extra)."""


class BrokerError(EventBusError):
    """The broker failed, refused an operation, or could not be reached."""


class BrokerUnavailable(BrokerError):
    """The broker cannot be reached right now (refused, lost, timed out)."""


class PublishError(BrokerError):
    """The broker did not confirm the event(s); none of them may be assumed delivered."""


class EncodeError(EventBusError):
    """An event cannot be serialised; nothing was sent."""


class MessageTooLarge(EncodeError):
    """An encoded event is larger than the adapter's declared ``max_message_size``."""


class DecodeError(EventBusError):
    """Bytes and headers from the broker do not make a valid event."""


class HandlerTimeout(EventBusError):
    """A handler did not return within its timeout."""


class ClosedError(EventBusError):
    """The bus, adapter or consumer was already closed."""


class ValidationError(DecodeError):
    """An event whose data does not fit the model its handler takes (typed contracts).

    ``problems`` lists ``(field path, message)`` pairs, e.g. ``("total", "expected
    number, got string")``. Never retried: the event is dead-lettered at once.
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
