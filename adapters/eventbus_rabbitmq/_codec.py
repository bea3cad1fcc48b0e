"""The wire form of an event on RabbitMQ: Message <-> pika's body and properties.

- CloudEvents attributes travel as ``cloudEvents:<name>`` headers (the AMQP
  binding's prefix; ``cloudEvents_`` is read too), except ``datacontenttype``,
  which is the AMQP ``content_type`` property; ``id`` is also the ``message_id``;
- messages are persistent (``delivery_mode`` 2);
- ``eventbus-*`` headers carry what the adapter itself needs across a republish:
  the attempt number, the original topic (a retry is routed by queue name), the
  delay bucket, and a dead letter's reason, group and time (the names of
  :mod:`eventbus.adapter`, but for the delay bucket's).

Whatever arrives becomes a :class:`~eventbus.Message` without raising: headers
that are not CloudEvents attributes stay on the broker message (and in the
dead-letter queue), and the core decides what the rest is worth.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from eventbus import Message
from eventbus.adapter import H_ATTEMPT, H_KEY, H_TOPIC, make_message, require

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["Handle", "carried", "from_amqp", "republished", "to_properties"]

CE = "cloudEvents:"  # the AMQP binding's attribute prefix (``cloudEvents_`` is read too)
H_DELAY = "eventbus-delay-ms"  # which delay bucket a retry goes to (this adapter's own)
H_DEAD_AT_OLD = "eventbus-dead-at"  # H_FAILED_AT's older name here: dropped on replay too
# Broker bookkeeping not carried over when an event is republished for a retry.
_TRANSIENT = frozenset(
    (
        "x-death",
        "x-delivery-count",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        H_DELAY,
    )
)
_PERSISTENT = 2
MAX_REASON = 4000


# -- the wire form -------------------------------------------------------------------------
def text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def attribute(name: str, value: Any) -> str:
    """An attribute's string form; the AMQP binding lets senders use typed values.

    The official CloudEvents SDKs send ``time`` as an AMQP timestamp (an integer
    of milliseconds, or a timestamp field) and booleans as booleans.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if name == "time" and isinstance(value, (int, datetime)):
        t = value if isinstance(value, datetime) else _EPOCH + timedelta(milliseconds=value)
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.isoformat().replace("+00:00", "Z")
    return text(value)


def to_int(value: Any, default: int) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return default


def to_properties(m: Message) -> Any:
    """AMQP properties for ``m``: CloudEvents attributes as ``cloudEvents:`` headers."""
    headers: dict[str, Any] = {}
    content_type = None
    for name, value in m.headers.items():
        if name == "datacontenttype" and len(value) < 128 and value.isascii():
            content_type = value
        else:
            headers[CE + name] = value
    if m.key is not None and m.headers.get("partitionkey") != m.key:
        headers[H_KEY] = m.key
    event_id = m.headers.get("id")
    return pika.BasicProperties(
        content_type=content_type,
        delivery_mode=_PERSISTENT,
        headers=headers,
        message_id=event_id if event_id and len(event_id) < 128 and event_id.isascii() else None,
    )


def from_amqp(routing_key: str, redelivered: bool, props: Any, body: bytes) -> tuple[Message, int]:
    """The message and its attempt number, from whatever arrived (never raises on content)."""
    headers: dict[str, str] = {}
    topic, key, attempt = routing_key, None, 1
    count: Any = None
    raw = props.headers
    if raw:
        for name, value in raw.items():
            if name.startswith("cloudEvents") and name[11:12] in (":", "_"):
                headers[name[12:]] = attribute(name[12:], value)
            elif name == H_ATTEMPT:
                attempt = to_int(value, 1) or 1
            elif name == H_TOPIC:
                topic = text(value)
            elif name == H_KEY:
                key = text(value)
            elif name == "x-delivery-count":
                count = value
    if "datacontenttype" not in headers and props.content_type:
        headers["datacontenttype"] = text(props.content_type)
    if count is not None:  # quorum queues count returns
        attempt += to_int(count, 1)
    elif redelivered:  # classic queues only say "not the first time"
        attempt += 1
    return make_message(topic, body, headers, headers.get("partitionkey", key)), attempt


def republished(props: Any, headers: dict[str, Any]) -> Any:
    """A copy of ``props`` for a republish: persistent, no TTL, no user-id check."""
    return pika.BasicProperties(
        content_type=props.content_type,
        content_encoding=props.content_encoding,
        headers=headers,
        delivery_mode=_PERSISTENT,
        priority=props.priority,
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        message_id=props.message_id,
        timestamp=props.timestamp,
        type=props.type,
        app_id=props.app_id,
    )


def carried(props: Any) -> dict[str, Any]:
    return {k: v for k, v in (props.headers or {}).items() if k not in _TRANSIENT}


class Handle:
    __slots__ = ("props", "tag")

    def __init__(self, tag: int, props: Any) -> None:
        self.tag = tag
        self.props = props
