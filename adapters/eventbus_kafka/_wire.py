"""The wire format: CloudEvents Kafka binding, our own headers, error mapping.

Binary content mode of the CloudEvents Kafka binding: each attribute is a
``ce_<name>`` header (UTF-8), ``datacontenttype`` is the ``content-type``
header, the body is the record value and the event key is the record key.

Retry and dead-letter copies keep the original record's value, key and headers
(foreign ones too) and add ``eventbus-*`` headers: the event's topic, the
attempt, the due time (retries) or the reason, group and time (dead letters).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from eventbus import BrokerError, BrokerUnavailable

from ._names import WORD

log = logging.getLogger("eventbus.kafka")
client_log = logging.getLogger("eventbus.kafka.client")  # librdkafka's own log lines

# Headers of our own on retry and dead-letter copies.
H_TOPIC = "eventbus-topic"  # the event's topic (type); the copy sits on another topic
H_ATTEMPT = "eventbus-attempt"  # the attempt this copy is (retry) / was (dead letter)
H_DUE = "eventbus-due"  # epoch milliseconds before which a retry copy is not handed out
H_REASON = "eventbus-reason"
H_GROUP = "eventbus-group"
H_FAILED_AT = "eventbus-failed-at"
OWN = "eventbus-"
UNAVAILABLE = frozenset(
    ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_MSG_TIMED_OUT", "_TIMED_OUT", "_RESOLVE",
     "_TIMED_OUT_QUEUE", "REQUEST_TIMED_OUT", "NOT_COORDINATOR", "COORDINATOR_NOT_AVAILABLE",
     "NETWORK_EXCEPTION", "LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION", "_DESTROY")
)  # fmt: skip
TOO_LARGE = frozenset(("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "MESSAGE_TOO_LARGE",
                       "RECORD_LIST_TOO_LARGE"))  # fmt: skip
_KNOWN = ("id", "source", "type", "specversion", "time", "subject", "dataschema",
          "correlationid", "causationid", "traceparent", "partitionkey")  # fmt: skip
OUT_NAMES = {name: f"ce_{name}" for name in _KNOWN} | {"datacontenttype": "content-type"}
_IN_NAMES = {header: name for name, header in OUT_NAMES.items()}
is_event_topic = re.compile(f"{WORD}(\\.{WORD})*\\Z").match


class TopicEpoch:
    """Counts topics created by this process; consumers with wildcards re-match on change."""

    value = 0


def bump_epoch() -> None:
    TopicEpoch.value += 1


def error(err: Any, doing: str) -> BrokerError:
    """Our exception for a librdkafka ``KafkaError`` (or anything else) met while ``doing``."""
    name = err.name() if hasattr(err, "name") else type(err).__name__
    text = err.str() if hasattr(err, "str") else str(err)
    message = f"kafka: {doing}: {text} ({name})"
    if name in UNAVAILABLE:
        return BrokerUnavailable(message)
    return BrokerError(message)


def out_headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    """CloudEvents Kafka binding: ``ce_<attribute>`` headers, ``content-type``."""
    return [(OUT_NAMES.get(k) or "ce_" + k, v) for k, v in headers.items()]


def in_attributes(raw: Any) -> dict[str, str]:
    """The attributes of :func:`in_headers` alone: one pass when every header is a known one."""
    attrs: dict[str, str] = {}
    if raw:
        names = _IN_NAMES
        try:
            for name, value in raw:
                attrs[names[name]] = value.decode()
        except (KeyError, AttributeError, UnicodeDecodeError):  # another header, no value...
            return in_headers(raw)[0]
    return attrs


def in_headers(raw: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Attributes (``ce_`` and ``content-type``) and our own ``eventbus-`` headers.

    Header values that are not UTF-8 get U+FFFD (a foreign record still becomes a
    delivery, and the core dead-letters it if it does not decode).
    """
    attrs: dict[str, str] = {}
    own: dict[str, str] = {}
    if raw:
        known = _IN_NAMES.get
        for name, value in raw:
            if value is None:
                continue
            attr = known(name)
            if attr is not None:
                attrs[attr] = value.decode("utf-8", "replace")
            elif name[:3] == "ce_":
                attrs[name[3:]] = value.decode("utf-8", "replace")
            elif name[:9] == OWN:
                own[name] = value.decode("utf-8", "replace")
    return attrs, own


def to_int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
