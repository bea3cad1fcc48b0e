"""The wire form of an event on SQS and SNS: a body and at most three attributes.

SQS and SNS allow 10 message attributes, and an event may carry any number of
CloudEvents extensions, so the envelope is packed:

- ``type`` (String): the event type, a real attribute so SNS filter policies
  (and people reading the queue in the console) can see it;
- ``ce`` (String): every other attribute, as a compact JSON array:
  ``[enc, id, source, time, datacontenttype, subject, correlationid,
  causationid, traceparent, partitionkey, dataschema, {others}]``; an absent
  attribute is ``null``, trailing ``null`` are dropped, and the final object
  holds the rest (extensions; ``specversion`` when it is not ``"1.0"``; ``type``
  when it differs from the routing key). Positions instead of names keep the wire
  no bigger than :attr:`eventbus.Message.size`, so an event the core accepts at
  256 KiB fits SQS's limit as SQS counts it;
- the body is the payload as text when it is text SQS can carry (valid UTF-8,
  no control characters but tab and newline), else base64 (``enc`` = 1); an
  empty payload is sent as ``-`` (``enc`` = 2): SQS refuses empty bodies.

A message without a ``ce`` attribute (another producer's) is read as it is: its
String attributes become the headers and its body the payload, so the core can
dead-letter it with a reason. Nothing here is ever evaluated: ``json.loads`` of
a size-limited string is all the parsing there is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventbus import EncodeError
from eventbus.adapter import H_ATTEMPT, H_FAILED_AT, H_GROUP, H_REASON, Message, make_message

__all__ = [
    "DEAD_LETTER",
    "Wire",
    "dead_letter_note",
    "fifo_id",
    "filter_policy",
    "from_wire",
    "read_dead_letter_note",
    "sqs_size",
    "to_wire",
]

TYPE = "type"
CE = "ce"
#: Attributes the adapter adds to a dead-lettered copy (eventbus's header names).
DEAD_LETTER = (H_REASON, H_ATTEMPT, H_GROUP, H_FAILED_AT)
#: What dead letters carried before: one JSON attribute ``{"reason", "attempt", "group"}``.
_OLD_DEAD_LETTER = "deadletter"
_NOT_HEADERS = frozenset((*DEAD_LETTER, _OLD_DEAD_LETTER))
_FIELDS = (
    "id",
    "source",
    "time",
    "datacontenttype",
    "subject",
    "correlationid",
    "causationid",
    "traceparent",
    "partitionkey",
    "dataschema",
)
_POSITIONAL = frozenset(_FIELDS)
_KEY = "@key"  # Message.key, when it is not the partitionkey attribute
TEXT, BASE64, EMPTY = 0, 1, 2
EMPTY_BODY = "-"
# Characters SQS accepts in bodies and attribute values (XML 1.0's), without CR,
# which XML parsers may turn into LF on the way.
_UNSAFE = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FIFO_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)


@dataclass(frozen=True, slots=True)
class Wire:
    """A message as boto3 sends it, and its size as SQS counts it."""

    body: str
    attributes: dict[str, dict[str, Any]]
    size: int


def sqs_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes SQS counts against its limit: the body plus each attribute's name, type, value."""
    n = len(body.encode("utf-8", "surrogatepass"))
    for name, attr in attributes.items():
        value = attr.get("StringValue")
        if value is None:
            value = attr.get("BinaryValue", b"")
        data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else bytes(value)
        n += len(name) + len(attr.get("DataType", "")) + len(data)
    return n


def _text(value: str) -> bool:
    return _UNSAFE.search(value) is None


def _string(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def to_wire(message: Message) -> Wire:
    """The body and attributes that carry ``message``; raises :class:`EncodeError`."""
    raw = message.body
    if not raw:
        enc, body = EMPTY, EMPTY_BODY
    else:
        try:
            body = raw.decode("utf-8")
            enc = TEXT if _text(body) else BASE64
        except UnicodeDecodeError:
            enc = BASE64
        if enc == BASE64:
            body = base64.b64encode(raw).decode("ascii")
    headers = message.headers
    packed: list[Any] = [enc]
    for name in _FIELDS:
        packed.append(headers.get(name))
    while packed[-1] is None:
        packed.pop()
    extra: dict[str, str | None] = {}
    if headers.get("specversion") != "1.0":
        extra["specversion"] = headers.get("specversion")
    if headers.get("type") != message.topic:
        extra["type"] = headers.get("type")
    if message.key != headers.get("partitionkey"):
        extra[_KEY] = message.key
    for name, value in headers.items():
        if name not in _POSITIONAL and name not in ("specversion", "type"):
            extra[name] = value
    if extra:
        packed.append(extra)
    ce = json.dumps(packed, ensure_ascii=False, separators=(",", ":"))
    if not _text(ce):  # lone surrogates, U+FFFE...: escape everything instead
        ce = json.dumps(packed, ensure_ascii=True, separators=(",", ":"))
    attributes = {CE: _string(ce)}
    if message.topic:
        if not _text(message.topic):
            raise EncodeError(
                f"event type {message.topic!r} has characters SQS message attributes can't carry"
            )
        attributes[TYPE] = _string(message.topic)
    return Wire(body, attributes, sqs_size(body, attributes))


def _string_value(attr: Any) -> str | None:
    if not isinstance(attr, Mapping):
        return None
    value = attr.get("StringValue")
    return value if isinstance(value, str) else None


def from_wire(body: str, attributes: Mapping[str, Any] | None) -> tuple[Message, bool]:
    """The message a body and attributes carry, and whether it is in our format.

    Never raises: a message that is not ours (or is damaged) comes back with
    whatever String attributes it has as headers, for the core to dead-letter.
    """
    attributes = attributes or {}
    topic = _string_value(attributes.get(TYPE)) or ""
    ours = _unpack(body, topic, _string_value(attributes.get(CE)))
    if ours is not None:
        return ours, True
    headers = {}
    for name, attr in attributes.items():
        value = _string_value(attr)
        if value is not None and name not in _NOT_HEADERS:
            headers[name] = value
    return make_message(topic, body.encode("utf-8", "surrogatepass"), headers), False


def _unpack(body: str, topic: str, ce: str | None) -> Message | None:
    if ce is None:
        return None
    try:
        packed = json.loads(ce)
    except (ValueError, RecursionError):
        return None
    if not isinstance(packed, list) or not packed or type(packed[0]) is not int:
        return None
    if packed[0] not in (TEXT, BASE64, EMPTY):
        return None
    enc, values = packed[0], packed[1:]
    extra: Any = {}
    if values and isinstance(values[-1], dict):
        extra = values.pop()
    if len(values) > len(_FIELDS) or not all(v is None or isinstance(v, str) for v in values):
        return None
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in extra.items()):
        return None
    headers: dict[str, str] = {}
    for name, value in zip(_FIELDS[: len(values)], values, strict=True):
        if value is not None:
            headers[name] = value
    headers["specversion"] = "1.0"
    headers["type"] = topic
    for name, value in extra.items():
        if name == _KEY:
            continue
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    key = extra[_KEY] if _KEY in extra else headers.get("partitionkey")
    if enc == TEXT:
        data = body.encode("utf-8", "surrogatepass")
    elif enc == EMPTY:
        data = b""
    else:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    return make_message(topic, data, headers, key)


def dead_letter_note(reason: str, attempt: int, group: str, failed_at: str) -> dict[str, Any]:
    """The attributes that say why a dead-lettered copy is dead (String attributes)."""
    return {
        H_REASON: _string(reason[:4000] or "-"),
        H_ATTEMPT: {"DataType": "Number", "StringValue": str(attempt)},
        H_GROUP: _string(group or "-"),
        H_FAILED_AT: _string(failed_at),
    }


def read_dead_letter_note(attributes: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """The reason and attempt a dead letter's attributes carry (None: not there)."""
    reason = _string_value(attributes.get(H_REASON))
    attempt = _string_value(attributes.get(H_ATTEMPT))
    old = _string_value(attributes.get(_OLD_DEAD_LETTER))
    if reason is None and old is not None:  # written by an older version
        try:
            info = json.loads(old)
        except ValueError:
            info = None
        if isinstance(info, dict):
            reason = str(info["reason"]) if "reason" in info else None
            attempt = str(info["attempt"]) if "attempt" in info else None
    try:
        return reason, int(attempt) if attempt is not None else None
    except ValueError:
        return reason, None


def fifo_id(value: str) -> str:
    """``value`` if SQS takes it as a message group or dedup id, else a stable hash of it."""
    if value and len(value) <= 128 and all(c in _FIFO_ID_CHARS for c in value):
        return value
    return "h-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def filter_policy(patterns: Sequence[str]) -> dict[str, Any] | None:
    """The SNS filter policy on ``type`` that lets through at least what ``patterns`` match.

    Direct patterns become exact values; a wildcard pattern becomes a ``prefix``
    of its literal words (``order.*`` -> ``order.``; ``order.#`` -> ``order``, as
    ``#`` also matches zero words). A pattern starting with a wildcard can't be
    narrowed, so then there is no policy at all (every event reaches the queue
    and the consumer's exact check decides). ``None`` means "no policy".
    """
    values: list[Any] = []
    for pattern in dict.fromkeys(patterns):
        words = pattern.split(".")
        wild = next((i for i, w in enumerate(words) if w in ("*", "#")), None)
        if wild is None:
            values.append(pattern)
            continue
        if wild == 0:
            return None
        prefix = ".".join(words[:wild]) + ("." if words[wild] == "*" else "")
        values.append({"prefix": prefix})
    if not values or len(values) > 150:  # SNS: at most 150 values in one policy
        return None
    return {TYPE: values}
