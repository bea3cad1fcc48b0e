"""Message <-> Kafka record: the CloudEvents Kafka binding and our own headers.

Binary content mode of the CloudEvents Kafka binding: each attribute is a
``ce_<name>`` header (UTF-8), ``datacontenttype`` is the ``content-type``
header, the body is the record value and the event key is the record key.

Retry and dead-letter copies keep the original record's value, key and headers
(foreign ones too) and add ``eventbus-*`` headers: the event's topic, the
attempt, the due time (retries) or the reason, group and time (dead letters).
"""

from __future__ import annotations

import re
from typing import Any

from eventbus.adapter import H_ATTEMPT, H_DUE, H_FAILED_AT, H_GROUP, H_REASON, H_SIZE, H_TOPIC

from ._names import INTERNAL, WORD, unescape

__all__ = [
    "H_ATTEMPT",
    "H_DUE",
    "H_FAILED_AT",
    "H_GROUP",
    "H_REASON",
    "H_SIZE",
    "H_TOPIC",
    "OWN",
    "event_type_of",
    "in_attributes",
    "in_headers",
    "out_headers",
    "to_int",
]

OWN = "eventbus-"  # the start of every header eventbus adds (eventbus.adapter's H_*)
_KNOWN = (
    "id",
    "source",
    "type",
    "specversion",
    "time",
    "subject",
    "dataschema",
    "correlationid",
    "causationid",
    "traceparent",
    "partitionkey",
)
OUT_NAMES = {name: f"ce_{name}" for name in _KNOWN} | {"datacontenttype": "content-type"}
_IN_NAMES = {header: name for name, header in OUT_NAMES.items()}
is_event_topic = re.compile(f"{WORD}(\\.{WORD})*\\Z").match


def event_type_of(prefix: str, kafka_topic: str) -> str | None:
    """The event type a Kafka topic carries, or None if it is not an event topic of ours."""
    if not kafka_topic.startswith(prefix):
        return None
    body = kafka_topic[len(prefix) :]
    if body.startswith(INTERNAL) or not is_event_topic(body):
        return None
    return unescape(body)


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
