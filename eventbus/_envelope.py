"""The event envelope (CloudEvents 1.0) and its wire form.

An :class:`Event` is plain data: CloudEvents attributes plus the decoded
payload. A :class:`Message` is what adapters move: the event's attributes as a
flat ``str -> str`` mapping (CloudEvents *binary content mode*, attribute names
without any binding prefix) and the payload as bytes. Each adapter maps
``Message.headers`` to its broker's headers (``ce_`` for Kafka, ``cloudEvents:``
for AMQP, ...) and back.

Payloads:

- ``bytes``/``bytearray``/``memoryview`` pass through byte-exact
  (``datacontenttype`` defaults to ``application/octet-stream``);
- ``str`` is sent as UTF-8 text (``text/plain; charset=utf-8``);
- anything else is JSON (``application/json``), encoded strictly: no NaN, no
  objects JSON can't represent. Nothing is ever pickled.

Decoding trusts nothing: :func:`decode` returns an :class:`Event` or raises
:class:`~eventbus.DecodeError`, whatever the bytes and headers.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ._errors import DecodeError, EncodeError
from ._routing import validate_topic

__all__ = ["Delivery", "Event", "Message", "decode", "encode", "new_event_id"]

SPECVERSION = "1.0"
JSON = "application/json"
OCTETS = "application/octet-stream"
TEXT = "text/plain; charset=utf-8"

#: Attributes every message must carry to decode.
REQUIRED = ("id", "source", "type", "specversion")
#: Attributes with a field of their own on :class:`Event`.
KNOWN = frozenset(
    (
        "id", "source", "type", "specversion", "time", "datacontenttype", "dataschema",
        "subject", "correlationid", "causationid", "traceparent", "partitionkey",
    )
)  # fmt: skip
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+\Z")  # CloudEvents attribute naming

_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

# Unique ids without a syscall per event: a random 64-bit prefix per process
# (re-drawn after fork) and a counter. Same shape as a UUID for readability.
_id_prefix = ""
_id_pid = -1
_id_counter = itertools.count()


def new_event_id() -> str:
    """A new unique event id (random per process, then a counter)."""
    global _id_prefix, _id_pid, _id_counter
    pid = os.getpid()
    if pid != _id_pid:
        _id_prefix = uuid.uuid4().hex[:20]
        _id_pid = pid
        _id_counter = itertools.count()
    n = next(_id_counter)
    p = _id_prefix
    return f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{n:012x}"


def default_source() -> str:
    """``//eventbus/<host>/<pid>``: used when neither config nor caller names a source."""
    return f"//eventbus/{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a handler sees it: CloudEvents attributes and decoded data.

    ``data`` is the decoded payload: JSON values for JSON content, ``str`` for
    ``text/*`` and ``bytes`` otherwise. ``extensions`` holds any other
    CloudEvents extension attributes, as strings. ``key`` is the ordering key
    (Kafka partition key, SQS message group, Service Bus session).

    ``attempt`` is delivery information, not part of the event: 1 the first
    time a group's member gets it, 2 on the first redelivery, and so on.
    """

    type: str
    data: Any = None
    id: str = field(default_factory=new_event_id)
    source: str = ""
    specversion: str = SPECVERSION
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    subject: str | None = None
    correlationid: str | None = None
    causationid: str | None = None
    traceparent: str | None = None
    key: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 1

    def replace(self, **changes: Any) -> Event:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def attributes(self) -> dict[str, str]:
        """The CloudEvents attributes as the wire carries them (strings)."""
        return _attributes(self, self.datacontenttype or _content_type_of(self.data))


@dataclass(slots=True)
class Message:
    """An encoded event as adapters move it.

    ``topic`` is the routing key (the event type); ``headers`` are the
    CloudEvents attributes as strings, unprefixed; ``key`` is the ordering key
    or None. Adapters must deliver ``body`` byte-exact and ``headers`` exactly.
    """

    topic: str
    body: bytes
    headers: dict[str, str]
    key: str | None = None

    @property
    def size(self) -> int:
        """Bytes on the wire, roughly: body plus header names and values."""
        return len(self.body) + sum(len(k) + len(v.encode()) for k, v in self.headers.items())


@dataclass(slots=True)
class Delivery:
    """A message handed to a consumer, with what the worker needs to settle it.

    ``attempt`` is 1 on first delivery and grows by one on each redelivery
    (native delivery counts where the broker keeps them). ``handle`` is the
    adapter's own token for ack/nack; the core never looks inside it.
    """

    message: Message
    attempt: int = 1
    handle: Any = None


def _content_type_of(data: Any) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return OCTETS
    if isinstance(data, str):
        return TEXT
    return JSON


def _attributes(event: Event, content_type: str) -> dict[str, str]:
    h = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "specversion": event.specversion,
        "datacontenttype": content_type,
    }
    if event.time is not None:
        h["time"] = _format_time(event.time)
    for name in ("dataschema", "subject", "correlationid", "causationid", "traceparent"):
        value = getattr(event, name)
        if value is not None:
            h[name] = value
    if event.key is not None:
        h["partitionkey"] = event.key
    for name, value in event.extensions.items():
        if name in KNOWN:
            raise EncodeError(f"extension {name!r} shadows a CloudEvents attribute")
        h[name] = value
    return h


def _format_time(t: datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.isoformat().replace("+00:00", "Z")


def _parse_time(s: str) -> datetime:
    try:
        t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise DecodeError(f"attribute 'time' is not an RFC 3339 timestamp: {s[:64]!r}") from None
    if t.tzinfo is None:
        raise DecodeError(f"attribute 'time' has no time zone: {s[:64]!r}")
    return t


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise EncodeError(f"attribute {name!r} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise EncodeError(f"attribute {name!r} contains a NUL character")
    return value


def encode(event: Event) -> Message:
    """Serialise ``event`` for the wire; raises :class:`EncodeError` and sends nothing."""
    try:
        validate_topic(event.type)
    except (TypeError, ValueError) as exc:
        raise EncodeError(str(exc)) from None
    if not event.type:
        raise EncodeError("event type must not be empty")
    data = event.data
    if isinstance(data, (bytes, bytearray, memoryview)):
        body = bytes(data)
    elif isinstance(data, str):
        try:
            body = data.encode("utf-8")
        except UnicodeEncodeError:
            raise EncodeError("str payload is not valid Unicode (lone surrogate)") from None
    else:
        try:
            body = _json_encoder.encode(data).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError) as exc:
            raise EncodeError(
                f"payload of {event.type!r} is not JSON-serialisable: {exc}; "
                "pass bytes, str, or JSON values (dict, list, str, int, float, bool, None)"
            ) from None
    content_type = event.datacontenttype or _content_type_of(data)
    headers = _attributes(event, content_type)
    try:  # the fast path: every value a str, none with a NUL
        bad = "\x00" in "".join(headers.values())
    except TypeError:
        bad = True
    if bad:
        for name, value in headers.items():
            _check_str(name, value)
    for name in event.extensions:  # known names are valid by construction
        if not _ATTRIBUTE_NAME.match(name):
            raise EncodeError(
                f"attribute name {name!r}: CloudEvents names are lower-case a-z and 0-9 only"
            )
    if not event.id or not event.source:
        raise EncodeError("attributes 'id' and 'source' must not be empty")
    return Message(topic=event.type, body=body, headers=headers, key=event.key)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json") or media == "text/json"


def decode(message: Message, attempt: int = 1) -> Event:
    """Turn a message from the broker into an :class:`Event`, or raise :class:`DecodeError`."""
    headers = message.headers
    if not isinstance(headers, Mapping):
        raise DecodeError("message headers are not a mapping")
    ct = headers.get("datacontenttype")
    if isinstance(ct, str) and ct[:23].lower() == "application/cloudevents":
        from ._structured import from_structured  # structured mode: the event is the body

        message = from_structured(message)
        headers = message.headers
    for name in REQUIRED:
        value = headers.get(name)
        if not isinstance(value, str) or not value:
            raise DecodeError(f"missing required CloudEvents attribute {name!r}")
    if headers["specversion"] != SPECVERSION:
        raise DecodeError(f"unsupported CloudEvents specversion {headers['specversion'][:16]!r}")
    body = message.body
    if not isinstance(body, (bytes, bytearray)):
        raise DecodeError(f"message body is {type(body).__name__}, not bytes")
    content_type = headers.get("datacontenttype") or JSON
    if not isinstance(content_type, str):
        raise DecodeError("attribute 'datacontenttype' is not a string")
    data: Any
    if _is_json(content_type):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"JSON payload is not UTF-8: {exc}") from None
        try:
            data = json.loads(text) if text else None
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"payload is not valid JSON: {str(exc)[:200]}") from None
    elif content_type.lower().startswith("text/"):
        try:
            data = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"text payload is not UTF-8: {exc}") from None
    else:
        data = bytes(body)
    extensions: dict[str, str] = {}
    for name, value in headers.items():
        if name not in KNOWN:
            if not isinstance(name, str) or not isinstance(value, str):
                raise DecodeError(f"attribute {str(name)[:40]!r} is not a string")
            extensions[name] = value
    time_s = headers.get("time")
    key = headers.get("partitionkey", message.key)
    return Event(
        type=headers["type"],
        data=data,
        id=headers["id"],
        source=headers["source"],
        specversion=SPECVERSION,
        time=_parse_time(time_s) if isinstance(time_s, str) and time_s else None,
        datacontenttype=content_type,
        dataschema=_opt(headers, "dataschema"),
        subject=_opt(headers, "subject"),
        correlationid=_opt(headers, "correlationid"),
        causationid=_opt(headers, "causationid"),
        traceparent=_opt(headers, "traceparent"),
        key=key if isinstance(key, str) else None,
        extensions=extensions,
        attempt=attempt,
    )


def _opt(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise DecodeError(f"attribute {name!r} is not a string")
    return value
