"""AMQP 1.0 message sections as raw bytes: split, read, rebuild.

The broker keeps each message as the raw bytes of its sections and only
decodes the few it must read (properties and application properties for
filters, message annotations for scheduling). Sections it does not change are
forwarded byte-exact. proton's ``Message`` keeps a single body section, so it
cannot hold a batch (one data section per encoded message): hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proton import Data, Described, symbol, timestamp, ulong

HEADER = 0x70
DELIVERY_ANNOTATIONS = 0x71
MESSAGE_ANNOTATIONS = 0x72
PROPERTIES = 0x73
APPLICATION_PROPERTIES = 0x74
DATA = 0x75
AMQP_SEQUENCE = 0x76
AMQP_VALUE = 0x77
FOOTER = 0x78
BODY = (DATA, AMQP_SEQUENCE, AMQP_VALUE)

#: Names of the 13 fields of the properties section, in order.
PROPERTY_FIELDS = (
    "message_id",
    "user_id",
    "to",
    "subject",
    "reply_to",
    "correlation_id",
    "content_type",
    "content_encoding",
    "absolute_expiry_time",
    "creation_time",
    "group_id",
    "group_sequence",
    "reply_to_group_id",
)


class CodecError(ValueError):
    """Bytes that are not a well-formed AMQP message."""


def split(raw: bytes | bytearray | memoryview) -> list[tuple[int, bytes, Any]]:
    """``[(section code, raw bytes, decoded value), ...]`` of an encoded message."""
    out: list[tuple[int, bytes, Any]] = []
    buf = bytes(raw)
    offset = 0
    data = Data()
    while offset < len(buf):
        data.clear()
        try:
            n = data.decode(buf[offset:])
        except Exception as exc:  # proton raises DataException and friends
            raise CodecError(f"undecodable section at byte {offset}: {exc}") from None
        if n <= 0:
            raise CodecError(f"empty section at byte {offset}")
        data.rewind()
        data.next()
        try:
            value = _own(data.get_object())
        except Exception as exc:  # proton raises ValueError and friends on odd values
            raise CodecError(f"undecodable value at byte {offset}: {exc}") from None
        if not isinstance(value, Described):
            raise CodecError(f"section at byte {offset} is not a described type")
        code = value.descriptor
        if isinstance(code, symbol) or not isinstance(code, int) or not 0x70 <= code <= 0x78:
            raise CodecError(f"unknown section descriptor {code!r}")
        out.append((int(code), buf[offset : offset + n], value.value))
        offset += n
    return out


def _own(value: Any) -> Any:
    """Copy what proton returns as views into its own buffer (binary values) into bytes."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, Described):
        return Described(value.descriptor, _own(value.value))
    if isinstance(value, dict):
        return (
            type(value)((_own(k), _own(v)) for k, v in value.items())
            if type(value) is dict
            else {_own(k): _own(v) for k, v in value.items()}
        )
    if isinstance(value, list):
        return [_own(v) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_own(v) for v in value)
    return value


def encode_section(code: int, value: Any) -> bytes:
    data = Data()
    data.put_object(Described(ulong(code), value))
    return bytes(data.encode())


@dataclass
class Parsed:
    """A message split into what the broker reads and what it forwards untouched."""

    header: list[Any] = field(default_factory=list)
    annotations: dict[Any, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    application_properties: dict[str, Any] = field(default_factory=dict)
    raw_properties: bytes = b""
    raw_application_properties: bytes = b""
    raw_rest: bytes = b""  # body sections and footer, byte-exact
    body_sections: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def bare_size(self) -> int:
        return len(self.raw_properties) + len(self.raw_application_properties) + len(self.raw_rest)


def parse(raw: bytes | bytearray | memoryview) -> Parsed:
    p = Parsed()
    for code, chunk, value in split(raw):
        if code == HEADER:
            p.header = list(value or [])
        elif code == MESSAGE_ANNOTATIONS:
            p.annotations = dict(value or {})
        elif code == PROPERTIES:
            p.raw_properties = chunk
            fields = list(value or [])
            p.properties = {
                name: (fields[i] if i < len(fields) else None)
                for i, name in enumerate(PROPERTY_FIELDS)
            }
        elif code == APPLICATION_PROPERTIES:
            p.raw_application_properties = chunk
            p.application_properties = {str(k): v for k, v in dict(value or {}).items()}
        elif code == DELIVERY_ANNOTATIONS:
            continue  # hop-by-hop: not stored
        else:
            p.raw_rest += chunk
            if code in BODY:
                p.body_sections.append((code, value))
    return p


def batch_parts(p: Parsed) -> list[bytes] | None:
    """The encoded messages inside a batch envelope, or None if ``p`` is not one.

    A batch (message-format 0x80013700, which proton does not expose) is a
    message whose body is data sections, each holding one whole encoded
    message. Recognised by shape: every data section parses as AMQP sections
    with at least one body section. A single message whose payload happens to
    be an encoded AMQP message would be taken for a batch; our adapter and the
    SDK never send that.
    """
    if not p.body_sections or any(code != DATA for code, _ in p.body_sections):
        return None
    parts: list[bytes] = []
    for _, value in p.body_sections:
        chunk = bytes(value)
        try:
            sections = split(chunk)
        except CodecError:
            return None
        if not any(code in BODY for code, _, _ in sections):
            return None
        parts.append(chunk)
    return parts


def now_ms() -> int:
    import time

    return int(time.time() * 1000)


def ts(ms: int | float) -> timestamp:
    return timestamp(int(ms))
