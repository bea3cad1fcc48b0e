"""Our :class:`~eventbus.adapter.Message` to and from Service Bus messages.

- a message's ``subject`` is the event type, its ``message_id`` the event id,
  its ``content_type`` the ``datacontenttype``; every CloudEvents attribute is
  an application property ``cloudEvents_<name>`` (the AMQP binding's
  JMS-compatible prefix, a plain identifier in SQL filters); on receive
  ``cloudEvents:<name>`` is read too;
- a body is the message's data sections joined; an AMQP value or sequence
  body (sent by other clients) is shown as its ``repr``: readable, never evaluated.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime
from typing import Any

from eventbus.adapter import Delivery, Message, make_delivery, make_message

__all__ = [
    "ATTEMPT",
    "DEFAULT_SESSION",
    "PREFIX",
    "RETRY_TO",
    "body_of",
    "from_service_bus",
    "session_for_key",
    "to_service_bus",
]

#: Application-property prefix of CloudEvents attributes (the AMQP binding's JMS-compatible form).
PREFIX = "cloudEvents_"
_BINDING_PREFIX = "cloudEvents:"  # the AMQP binding's own prefix, read too
#: Application property naming the one subscription a scheduled retry copy is for.
RETRY_TO = "eventbus_to"
#: Application property carrying the attempt number of a scheduled retry copy.
ATTEMPT = "eventbus_attempt"
#: The session of events without a key when ``sessions=True``.
DEFAULT_SESSION = "eventbus-no-key"
_MAX_SESSION_ID = 128
_MAX_MESSAGE_ID = 128


def session_for_key(key: str | None) -> str:
    """The session id of events with ``key``: the key itself when it fits (1-128 chars).

    No key: :data:`DEFAULT_SESSION`. A longer key: a readable prefix plus a
    SHA-256 digest of the whole key (keys that differ stay apart).
    """
    if not key:
        return DEFAULT_SESSION
    if len(key) <= _MAX_SESSION_ID:
        return key
    return key[:63] + "#" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def to_service_bus(sb: Any, m: Message, sessions: bool = False) -> Any:
    """Our message as a ``ServiceBusMessage`` (with ``sessions``: in its key's session)."""
    props: dict[str, Any] = {PREFIX + k: v for k, v in m.headers.items()}
    event_id = m.headers.get("id")
    message_id = event_id if event_id and len(event_id) <= _MAX_MESSAGE_ID else None
    return sb.ServiceBusMessage(
        m.body,
        application_properties=props,
        subject=m.topic,
        message_id=message_id,
        content_type=m.headers.get("datacontenttype"),
        session_id=session_for_key(m.key) if sessions else None,
    )


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def body_of(raw: Any) -> bytes:
    """The body of an ``AmqpAnnotatedMessage``."""
    kind = str(getattr(raw, "body_type", "data")).lower()
    body = raw.body
    if "data" in kind:
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        return b"".join(bytes(part) for part in (body or ()))
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return repr(body).encode("utf-8")  # an AMQP value or sequence: readable, never evaluated


def from_service_bus(msg: Any, handle: Any) -> Delivery:
    """A received ``ServiceBusReceivedMessage`` as a Delivery; trusts nothing in it."""
    headers: dict[str, str] = {}
    base_attempt = 1
    for key, value in (msg.application_properties or {}).items():
        name = _text(key)
        if name == ATTEMPT:
            with contextlib.suppress(TypeError, ValueError):
                base_attempt = max(1, int(_text(value)))
            continue
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            headers[name[len(PREFIX) :]] = _text(value)  # ours wins over the binding's form
        elif name.startswith(_BINDING_PREFIX) and len(name) > len(_BINDING_PREFIX):
            headers.setdefault(name[len(_BINDING_PREFIX) :], _text(value))
    if "datacontenttype" not in headers and headers and msg.content_type:
        headers["datacontenttype"] = _text(msg.content_type)
    subject = msg.subject
    message = make_message(
        _text(subject) if subject is not None else "",
        body_of(msg.raw_amqp_message),
        headers,
        headers.get("partitionkey"),
    )
    return make_delivery(message, base_attempt + int(msg.delivery_count or 0), handle)
