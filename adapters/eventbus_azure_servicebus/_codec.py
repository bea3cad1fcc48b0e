"""Our :class:`~eventbus.adapter.Message` to and from Service Bus messages.

- a message's ``subject`` is the event type, its ``message_id`` the event id
  (a new one on a retry or replay copy: duplicate detection would drop it),
  its ``content_type`` the ``datacontenttype``; every CloudEvents attribute is
  an application property ``cloudEvents_<name>`` (the AMQP binding's
  JMS-compatible prefix, a plain identifier in SQL filters); on receive
  ``cloudEvents:<name>`` is read too;
- a message with no CloudEvents properties keeps its ``content_type`` as its
  ``datacontenttype``, so the core decodes ``application/cloudevents+json`` as
  a structured-mode event (the whole event in the body);
- a body is the message's data sections joined; an AMQP value or sequence
  body (sent by other clients) is shown as JSON where it can be, else its
  ``repr``: readable, never evaluated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
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


def to_service_bus(sb: Any, m: Message, sessions: bool = False, *, copy: bool = False) -> Any:
    """Our message as a ``ServiceBusMessage`` (with ``sessions``: in its key's session).

    ``copy``: a retry or a replay of an event sent before gets a message id of
    its own, or a topic's duplicate detection would drop it silently; the event
    id stays in ``cloudEvents_id``.
    """
    props: dict[str, Any] = {PREFIX + k: v for k, v in m.headers.items()}
    if copy:
        message_id: str | None = uuid.uuid4().hex
    else:
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


def _plain(value: Any) -> Any:
    """An AMQP value as JSON-able data (bytes as text, unknown types as their repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_text(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def body_of(raw: Any) -> bytes:
    """The body of an ``AmqpAnnotatedMessage``: data sections joined; a value or a
    sequence body as JSON (else its repr)."""
    kind = str(getattr(raw, "body_type", "data")).lower()
    body = raw.body
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if "data" in kind:
        return b"".join(bytes(part) for part in (body or ()))
    if "sequence" in kind:  # the SDK hands out a generator of sections
        body = [
            list(section) if isinstance(section, (list, tuple)) else section
            for section in (body or ())
        ]
        if len(body) == 1:
            body = body[0]
    if isinstance(body, str):
        return body.encode("utf-8", "replace")
    try:
        return json.dumps(_plain(body), ensure_ascii=False).encode("utf-8", "replace")
    except (TypeError, ValueError):
        return repr(body).encode("utf-8", "replace")


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
    if "datacontenttype" not in headers and msg.content_type:
        # binary mode: the data's content type; a foreign message without CloudEvents
        # properties: how to read it (application/cloudevents+json: structured mode)
        headers["datacontenttype"] = _text(msg.content_type)
    subject = msg.subject
    message = make_message(
        _text(subject) if subject is not None else "",
        body_of(msg.raw_amqp_message),
        headers,
        headers.get("partitionkey"),
    )
    return make_delivery(message, base_attempt + int(msg.delivery_count or 0), handle)
