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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._errors import DecodeError, EncodeError, MessageTooLarge
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
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "datacontenttype",
        "dataschema",
        "subject",
        "correlationid",
        "causationid",
        "traceparent",
        "partitionkey",
    )
)
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+\Z")  # CloudEvents attribute naming

_json_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _not_json(obj: object) -> None:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _json_dumps() -> Callable[[Any], str]:
    """The strict encoder above without its per-call set-up (the C encoder, made once).

    No circular-reference bookkeeping (it would be shared between threads): a
    cycle ends in RecursionError instead, which ``encode`` reports like any
    other unserialisable payload.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _json_encoder.encode
    c = make(None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    join = "".join
    return lambda obj: join(c(obj, 0))


_dumps = _json_dumps()

# Unique ids without a syscall per event: a random 64-bit prefix per process
# (re-drawn in a forked child) and a counter. Same shape as a UUID for readability.
_id_prefix = ""
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    global _id_prefix, _id_counter
    p = uuid.uuid4().hex
    _id_prefix = f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-"
    _id_counter = itertools.count()


_new_id_prefix()
if hasattr(os, "register_at_fork"):  # a child must never repeat its parent's ids
    os.register_at_fork(after_in_child=_new_id_prefix)


def new_event_id() -> str:
    """A new unique event id (random per process, then a counter)."""
    return f"{_id_prefix}{next(_id_counter):012x}"


def default_source() -> str:
    """``//eventbus/<host>/<pid>``: used when neither config nor caller names a source."""
    return f"//eventbus/{socket.gethostname()}/{os.getpid()}"


if TYPE_CHECKING:  # a default, so a bare ``Event`` means Event[Any] (PEP 696); typing only
    from typing_extensions import TypeVar as _TypeVarWithDefault

    D = _TypeVarWithDefault("D", default=Any)
else:
    D = TypeVar("D")


@dataclass(frozen=True, slots=True)
class Event(Generic[D]):
    """One event as a handler sees it: CloudEvents attributes and decoded data.

    ``Event[OrderCreated]`` is the type of an event whose ``data`` is an
    ``OrderCreated`` model (typed contracts, see ``docs/contracts.md``); a plain
    ``Event`` carries JSON values.

    ``data`` is the decoded payload: JSON values for JSON content, ``str`` for
    ``text/*`` and ``bytes`` otherwise. ``extensions`` holds any other
    CloudEvents extension attributes, as strings. ``key`` is the ordering key
    (Kafka partition key, SQS message group, Service Bus session).

    ``attempt`` is delivery information, not part of the event: 1 the first
    time a group's member gets it, 2 on the first redelivery, and so on.
    """

    type: str
    data: D = None  # type: ignore[assignment]
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

    def replace(self, **changes: Any) -> Event[Any]:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def attributes(self) -> dict[str, str]:
        """The CloudEvents attributes as the wire carries them (strings)."""
        return _attributes(self, self.datacontenttype or _content_type_of(self.data))


_EMPTY: Mapping[str, str] = MappingProxyType({})


class _NewEvent(Generic[D]):
    """The very slots and bases of :class:`Event`, without its frozen ``__setattr__``
    (see make_event)."""

    __slots__ = Event.__slots__


_new = object.__new__


def make_event(
    type: str,
    data: Any,
    id: str,
    source: str,
    time: datetime | None,
    datacontenttype: str | None = None,
    dataschema: str | None = None,
    subject: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    traceparent: str | None = None,
    key: str | None = None,
    extensions: Mapping[str, str] | None = None,
    attempt: int = 1,
) -> Event:
    """An :class:`Event` for the hot paths (building and decoding), without the checks.

    The same object the dataclass constructor makes, at a sixth of its cost. A
    frozen dataclass sets each of its 15 fields through ``object.__setattr__``;
    this makes a ``_NewEvent`` (the very same slots, no frozen ``__setattr__``),
    stores the fields directly and then turns it into an ``Event`` (``__class__``
    assignment, allowed between identical slot layouts; a change to ``Event``'s
    fields that broke the match would fail every test at once). A function
    rather than a class's ``__init__``: on CPython 3.11 calling a class costs
    more, most of all with keyword arguments. Callers pass values of the right
    types (``bus.event`` and ``decode`` do).
    """
    e: Any = _new(_NewEvent)
    e.type = type
    e.data = data
    e.id = id
    e.source = source
    e.specversion = SPECVERSION
    e.time = time
    e.datacontenttype = datacontenttype
    e.dataschema = dataschema
    e.subject = subject
    e.correlationid = correlationid
    e.causationid = causationid
    e.traceparent = traceparent
    e.key = key
    e.extensions = _EMPTY if extensions is None else extensions
    e.attempt = attempt
    e.__class__ = Event
    return e  # type: ignore[no-any-return]


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
        h = self.headers
        return len(self.body) + len("".join(h).encode()) + len("".join(h.values()).encode())

    def fits(self, limit: int) -> bool:
        """``size <= limit``, without encoding the headers when they are clearly small."""
        h = self.headers
        chars = len("".join(h)) + len("".join(h.values()))
        return len(self.body) + 4 * chars <= limit or self.size <= limit  # UTF-8: <= 4 bytes


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


def with_data(event: Event[Any], data: Any) -> Event[Any]:
    """``event`` with ``data`` in place of its own: ``event.replace(data=data)`` at a
    fraction of the cost (slot stores, as :func:`make_event` builds events)."""
    e: Any = _new(_NewEvent)
    e.type = event.type
    e.data = data
    e.id = event.id
    e.source = event.source
    e.specversion = event.specversion
    e.time = event.time
    e.datacontenttype = event.datacontenttype
    e.dataschema = event.dataschema
    e.subject = event.subject
    e.correlationid = event.correlationid
    e.causationid = event.causationid
    e.traceparent = event.traceparent
    e.key = event.key
    e.extensions = event.extensions
    e.attempt = event.attempt
    e.__class__ = Event
    return e  # type: ignore[no-any-return]


def make_message(
    topic: str, body: bytes, headers: dict[str, str], key: str | None = None
) -> Message:
    """A :class:`Message` for an adapter's receive path: the same object as
    ``Message(topic, body, headers, key)``, filled by slot stores (cheaper on CPython)."""
    m: Any = _new(Message)
    m.topic = topic
    m.body = body
    m.headers = headers
    m.key = key
    return m  # type: ignore[no-any-return]


def make_delivery(message: Message, attempt: int = 1, handle: Any = None) -> Delivery:
    """A :class:`Delivery` for an adapter's receive path: the same object as
    ``Delivery(message, attempt, handle)``, filled by slot stores. Adapters build
    deliveries with this (or the constructor), never by knowing the slot layout."""
    d: Any = _new(Delivery)
    d.message = message
    d.attempt = attempt
    d.handle = handle
    return d  # type: ignore[no-any-return]


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
    if event.dataschema is not None:
        h["dataschema"] = event.dataschema
    if event.subject is not None:
        h["subject"] = event.subject
    if event.correlationid is not None:
        h["correlationid"] = event.correlationid
    if event.causationid is not None:
        h["causationid"] = event.causationid
    if event.traceparent is not None:
        h["traceparent"] = event.traceparent
    if event.key is not None:
        h["partitionkey"] = event.key
    if event.extensions:
        for name, value in event.extensions.items():
            if name in KNOWN:
                raise EncodeError(f"extension {name!r} shadows a CloudEvents attribute")
            h[name] = value
    return h


_UTC = timezone.utc
# The RFC 3339 text of the last whole second formatted, keyed by its fields
# (swapped as one tuple, so threads never see a key with another's text).
_last_second: tuple[tuple[int, ...], str] = ((), "")


def _format_time(t: datetime) -> str:
    """RFC 3339 with ``Z`` for UTC: ``isoformat``'s text at half its cost for UTC times.

    Events of one second share their date and time up to the second, so that
    part is formatted once per second and only the microseconds per event.
    """
    global _last_second
    tz = t.tzinfo
    if tz is not _UTC and tz is not None:
        return t.isoformat().replace("+00:00", "Z")
    key = (t.second, t.minute, t.hour, t.day, t.month, t.year)
    last = _last_second
    if last[0] == key:
        prefix = last[1]
    else:
        prefix = t.replace(microsecond=0, tzinfo=None).isoformat()
        _last_second = (key, prefix)
    us = t.microsecond
    return f"{prefix}.{us:06d}Z" if us else prefix + "Z"


_fromisoformat = datetime.fromisoformat


def _parse_time(s: str) -> datetime:
    try:
        t = _fromisoformat(s)  # 3.11 reads the "Z" suffix
    except ValueError:
        try:  # a lower-case "z", which RFC 3339 allows too
            t = _fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        except ValueError:
            raise DecodeError(
                f"attribute 'time' is not an RFC 3339 timestamp: {s[:64]!r}"
            ) from None
    if t.tzinfo is None:
        raise DecodeError(f"attribute 'time' has no time zone: {s[:64]!r}")
    return t


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise EncodeError(f"attribute {name!r} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise EncodeError(f"attribute {name!r} contains a NUL character")
    if not _utf8(value):
        raise EncodeError(f"attribute {name!r} is not valid Unicode (a lone surrogate)")
    return value


def _utf8(text: str) -> bool:
    """True if ``text`` can be encoded as UTF-8 (it has no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_valid_types: dict[str, None] = {}  # event types that passed _check_type (bounded)


def _check_type(event_type: str) -> None:
    try:
        validate_topic(event_type)
    except (TypeError, ValueError) as exc:
        raise EncodeError(str(exc)) from None
    if not event_type:
        raise EncodeError("event type must not be empty")
    if len(_valid_types) < 10_000:
        _valid_types[event_type] = None


_KNOWN_NAME_CHARS = sum(map(len, KNOWN))  # header names of an event without extensions, at most


def encode(event: Event, *, max_size: int | None = None) -> Message:
    """Serialise ``event`` for the wire; raises :class:`EncodeError` and sends nothing.

    With ``max_size``, an event over that many bytes encoded (body, header
    names and values) raises :class:`MessageTooLarge`.
    """
    if event.type.__class__ is not str or event.type not in _valid_types:
        _check_type(event.type)
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
            body = _dumps(data).encode("utf-8")
        except (TypeError, ValueError, UnicodeEncodeError, RecursionError) as exc:
            raise EncodeError(
                f"payload of {event.type!r} is not JSON-serialisable: {exc}; "
                "pass bytes, str, or JSON values (dict, list, str, int, float, bool, None)"
            ) from None
    content_type = event.datacontenttype or _content_type_of(data)
    headers = _attributes(event, content_type)
    try:  # the fast path: every value a str, none with a NUL, all encodable as UTF-8
        values = "".join(headers.values())
        bad = "\x00" in values or (not values.isascii() and not _utf8(values))
    except TypeError:
        values, bad = "", True
    if bad:
        for name, value in headers.items():
            _check_str(name, value)
    if event.extensions:
        for name in event.extensions:  # known names are valid by construction
            if not _ATTRIBUTE_NAME.match(name):
                raise EncodeError(
                    f"attribute name {name!r}: CloudEvents names are lower-case a-z and 0-9 only"
                )
    if not event.id or not event.source:
        raise EncodeError("attributes 'id' and 'source' must not be empty")
    message = Message(event.type, body, headers, event.key)
    if max_size is not None:
        names = len("".join(headers)) if event.extensions else _KNOWN_NAME_CHARS
        # UTF-8 takes at most 4 bytes a character: the exact size only when it may matter
        if len(body) + 4 * (len(values) + names) > max_size and message.size > max_size:
            raise too_large(event, message, max_size)
    return message


def too_large(event: Event, message: Message, limit: int) -> MessageTooLarge:
    return MessageTooLarge(
        f"event {event.id} of type {event.type!r} is {message.size} bytes encoded; "
        f"this broker takes at most {limit}"
    )


_STRUCTURED, _JSON_DATA, _TEXT_DATA, _BYTES_DATA = range(4)
_kinds: dict[str, int] = {}  # content type -> one of the four above (bounded)


def _kind(content_type: str) -> int:
    """How a body of ``content_type`` is read: structured event, JSON, text or bytes."""
    kind = _kinds.get(content_type)
    if kind is not None:
        return kind
    if content_type[:23].lower() == "application/cloudevents":
        kind = _STRUCTURED
    elif _is_json(content_type):
        kind = _JSON_DATA
    elif content_type.lower().startswith("text/"):
        kind = _TEXT_DATA
    else:
        kind = _BYTES_DATA
    if len(_kinds) < 1000:
        _kinds[content_type] = kind
    return kind


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or media.endswith("+json") or media == "text/json"


def decode(message: Message, attempt: int = 1) -> Event:
    """Turn a message from the broker into an :class:`Event`, or raise :class:`DecodeError`."""
    headers = message.headers
    if headers.__class__ is not dict and not isinstance(headers, Mapping):
        raise DecodeError("message headers are not a mapping")
    get = headers.get
    ct = get("datacontenttype")
    if not ct:
        kind = _JSON_DATA
    elif isinstance(ct, str):
        kind = _kinds.get(ct, -1)  # _kind's cache, read here: a call less per event
        if kind < 0:
            kind = _kind(ct)
        if kind == _STRUCTURED:
            from ._structured import from_structured  # structured mode: the event is the body

            message = from_structured(message)
            headers = message.headers
            get = headers.get
            ct = get("datacontenttype")
            kind = _kind(ct) if ct else _JSON_DATA
            if kind == _STRUCTURED:  # data that is itself an event: JSON, as it says
                kind = _JSON_DATA
    else:
        kind = _BYTES_DATA  # not a str: the strings check below names it
    id_, source, type_, spec = get("id"), get("source"), get("type"), get("specversion")
    time_s = get("time")
    # Nothing optional: the four required attributes, maybe datacontenttype and time.
    simple = len(headers) == 4 + (ct is not None) + (time_s is not None)
    if not (
        simple
        and id_.__class__ is str
        and source.__class__ is str
        and type_.__class__ is str
        and spec.__class__ is str
        and (time_s is None or time_s.__class__ is str)
        and (ct is None or ct.__class__ is str)
    ):
        try:  # every name and value a str: one check instead of one per attribute
            "".join(headers)
            "".join(headers.values())
        except TypeError:
            _not_strings(headers)
    if not (id_ and source and type_ and spec):
        missing = next(name for name in REQUIRED if not get(name))
        raise DecodeError(f"missing required CloudEvents attribute {missing!r}")
    if spec != SPECVERSION:
        raise DecodeError(f"unsupported CloudEvents specversion {spec[:16]!r}")
    body = message.body
    if body.__class__ is not bytes:
        if not isinstance(body, (bytes, bytearray)):
            raise DecodeError(f"message body is {type(body).__name__}, not bytes")
        body = bytes(body)
    data: Any
    if kind == _JSON_DATA:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"JSON payload is not UTF-8: {exc}") from None
        try:
            data = _json_decode(text) if text else None
        except (ValueError, RecursionError) as exc:
            raise DecodeError(f"payload is not valid JSON: {str(exc)[:200]}") from None
    elif kind == _TEXT_DATA:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"text payload is not UTF-8: {exc}") from None
    else:
        data = body
    t = None
    if time_s:
        try:  # _parse_time's common case, without the call
            t = _fromisoformat(time_s)
        except ValueError:
            t = _parse_time(time_s)
        if t.tzinfo is None:
            _parse_time(time_s)  # raises, naming the problem
    key = message.key if isinstance(message.key, str) else None
    content_type = ct or JSON
    if simple:
        return make_event(type_, data, id_, source, t, content_type, key=key, attempt=attempt)
    extensions = (
        None if KNOWN.issuperset(headers) else {n: v for n, v in headers.items() if n not in KNOWN}
    )
    return make_event(
        type_,
        data,
        id_,
        source,
        t,
        content_type,
        get("dataschema"),
        get("subject"),
        get("correlationid"),
        get("causationid"),
        get("traceparent"),
        get("partitionkey", key),
        extensions,
        attempt,
    )


_json_decoder = json.JSONDecoder()
_scan_once = _json_decoder.scan_once  # type: ignore[attr-defined]  # the C scanner


def _json_decode(text: str) -> Any:
    """``json.loads(text)`` for a str, through the C scanner when it can take it whole.

    Anything it cannot (leading whitespace, trailing data, invalid JSON) goes to
    the full decoder, so errors and results are exactly ``json.loads``'s.
    """
    try:
        value, end = _scan_once(text, 0)
    except StopIteration:
        return _json_decoder.decode(text)
    if end != len(text) and text[end:].strip(" \t\n\r"):
        return _json_decoder.decode(text)
    return value


def _not_strings(headers: Mapping[Any, Any]) -> None:
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise DecodeError(f"attribute {str(name)[:40]!r} is not a string")
