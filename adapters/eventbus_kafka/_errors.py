"""librdkafka errors -> eventbus's: one table of error names, one function, one ``with``.

confluent-kafka raises one exception class (``KafkaException``) for everything
and says what happened in its ``KafkaError``'s name, so the "can't reach the
broker" cases are told apart by name (:data:`UNAVAILABLE`), not by class as
:func:`eventbus.adapter.translate_errors` does; :func:`kafka_errors` is its
counterpart for that; :func:`config_errors` uses ``translate_errors`` for the
exceptions a client's constructor raises for a bad property.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventbus import BrokerError, BrokerUnavailable, EventBusError
from eventbus.adapter import translate_errors

__all__ = ["TOO_LARGE", "UNAVAILABLE", "config_errors", "error", "kafka_errors", "log"]

log = logging.getLogger("eventbus.kafka")

UNAVAILABLE = frozenset(
    (
        "_TRANSPORT",
        "_ALL_BROKERS_DOWN",
        "_MSG_TIMED_OUT",
        "_TIMED_OUT",
        "_RESOLVE",
        "_TIMED_OUT_QUEUE",
        "REQUEST_TIMED_OUT",
        "NOT_COORDINATOR",
        "COORDINATOR_NOT_AVAILABLE",
        "NETWORK_EXCEPTION",
        "LEADER_NOT_AVAILABLE",
        "NOT_LEADER_FOR_PARTITION",
        "_DESTROY",
    )
)
TOO_LARGE = frozenset(
    ("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE")
)


def error(err: Any, doing: str) -> BrokerError:
    """Our exception for a librdkafka ``KafkaError`` (or anything else) met while ``doing``."""
    name = err.name() if hasattr(err, "name") else type(err).__name__
    text = err.str() if hasattr(err, "str") else str(err)
    message = f"kafka: {doing}: {text} ({name})"
    if name in UNAVAILABLE:
        return BrokerUnavailable(message)
    return BrokerError(message)


@contextmanager
def kafka_errors(ck: Any, doing: str) -> Iterator[None]:
    """Inside the block, a ``KafkaException`` becomes :func:`error`'s exception, ``from`` it;
    eventbus's own errors pass through."""
    try:
        yield
    except EventBusError:
        raise
    except ck.KafkaException as exc:
        raise error(exc.args[0] if exc.args else exc, doing) from exc


def config_errors(doing: str) -> Any:
    """A bad librdkafka property (``TypeError``/``ValueError`` from a client's constructor)
    becomes a :class:`BrokerError` naming it."""
    return translate_errors(f"kafka: {doing}", sdk=(TypeError, ValueError))
