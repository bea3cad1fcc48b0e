"""CloudEvents structured content mode: the whole event as one JSON document.

Binary content mode (the default) puts each attribute in a broker header and
the payload in the body. Structured mode puts everything in the body, as the
CloudEvents JSON event format (``application/cloudevents+json``)::

    {"specversion": "1.0", "id": "...", "source": "...", "type": "order.created",
     "datacontenttype": "application/json", "data": {"id": 1}}

and the broker message carries one header, its content type (Kafka's
``content-type`` header, AMQP's ``content_type`` property, ...). Use it with
``EventBus(..., content_mode="structured")`` when a consumer outside eventbus
reads whole events from the body. Reading needs no option: :func:`eventbus.decode`
recognises a structured message by its content type (the bindings' rule:
``application/cloudevents`` prefix) and unwraps it, so a worker handles both
modes, from eventbus or from any CloudEvents SDK.

Payloads: JSON data is embedded as JSON (``data``), UTF-8 text as a JSON
string (``data``), anything else as base64 (``data_base64``), so bytes stay
byte-exact. Decoding trusts nothing: any failure is a :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError, DecodeError

__all__ = [
    "STRUCTURED",
    "check_content_mode",
    "from_structured",
    "is_structured",
    "to_structured",
]

STRUCTURED = "application/cloudevents+json; charset=utf-8"
MODES = ("binary", "structured")
_PREFIX = "application/cloudevents"
_BATCH = "application/cloudevents-batch"
_JSON_COMPACT = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}


def check_content_mode(mode: str) -> str:
    """``mode`` if it is ``"binary"`` or ``"structured"``, else :class:`ConfigError`."""
    if mode not in MODES:
        raise ConfigError(f"content_mode must be 'binary' or 'structured', not {mode!r}")
    return mode


def is_structured(headers: Mapping[str, Any]) -> bool:
    """True when ``headers`` say the body is a whole CloudEvent (structured mode)."""
    ct = headers.get("datacontenttype")
    return isinstance(ct, str) and ct[: len(_PREFIX)].lower() == _PREFIX


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _json_media(content_type: str | None) -> bool:
    media = _media(content_type)
    return media in ("application/json", "text/json") or media.endswith("+json")


def to_structured(message: Any) -> Any:
    """A :class:`~eventbus.Message` in structured mode carrying ``message`` (binary mode)."""
    from ._envelope import Message

    m: Message = message
    attrs = dict(m.headers)
    ct = attrs.get("datacontenttype")
    body = bytes(m.body)
    doc: dict[str, Any] = dict(attrs)
    data_json: str | None = None
    if body:
        text: str | None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and _json_media(ct):
            try:
                json.loads(text)
                data_json = text  # already valid JSON: embed it as it is
            except (ValueError, RecursionError):
                doc["data_base64"] = base64.b64encode(body).decode("ascii")
        elif text is not None and _media(ct).startswith("text/"):
            doc["data"] = text
        else:
            doc["data_base64"] = base64.b64encode(body).decode("ascii")
    encoded = json.dumps(doc, **_JSON_COMPACT)  # type: ignore[arg-type]
    if data_json is not None:
        encoded = f'{encoded[:-1]},"data":{data_json}}}' if doc else f'{{"data":{data_json}}}'
    return Message(
        topic=m.topic,
        body=encoded.encode("utf-8", "surrogatepass"),
        headers={"datacontenttype": STRUCTURED},
        key=m.key,
    )


def _attribute(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    raise DecodeError(
        f"structured event: attribute {name[:40]!r} is a JSON {type(value).__name__}; "
        "CloudEvents attributes are strings, integers or booleans"
    )


def from_structured(message: Any) -> Any:
    """The binary-mode :class:`~eventbus.Message` inside a structured one; :class:`DecodeError`."""
    from ._envelope import Message

    m: Message = message
    ct = m.headers.get("datacontenttype") or ""
    if _media(ct).startswith(_BATCH):
        raise DecodeError(
            "CloudEvents batch format (application/cloudevents-batch+json) is "
            "not supported; send one event per message"
        )
    if not _json_media(ct):
        raise DecodeError(f"structured event format {ct[:64]!r} is not supported (JSON only)")
    try:
        doc = json.loads(bytes(m.body).decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DecodeError(f"structured event is not UTF-8: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"structured event is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise DecodeError(f"structured event is a JSON {type(doc).__name__}, not an object")
    headers: dict[str, str] = {}
    has_data = "data" in doc
    data = doc.pop("data", None)
    data_b64 = doc.pop("data_base64", None)
    for name, value in doc.items():
        text = _attribute(name, value)
        if text is not None:
            headers[name] = text
    content_type = headers.get("datacontenttype")
    if data_b64 is not None:
        if has_data:
            raise DecodeError("structured event has both 'data' and 'data_base64'")
        if not isinstance(data_b64, str):
            raise DecodeError("structured event: 'data_base64' is not a string")
        try:
            body = base64.b64decode(data_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"structured event: 'data_base64' is not base64: {exc}") from None
        if content_type is None:
            headers["datacontenttype"] = "application/octet-stream"
    elif not has_data:
        body = b""
    elif isinstance(data, str) and content_type is not None and not _json_media(content_type):
        body = data.encode("utf-8", "surrogatepass")
    else:
        try:
            body = json.dumps(data, **_JSON_COMPACT).encode("utf-8")  # type: ignore[arg-type]
        except (ValueError, UnicodeEncodeError) as exc:
            raise DecodeError(f"structured event: 'data' cannot be re-encoded: {exc}") from None
    return Message(topic=m.topic, body=body, headers=headers, key=m.key)
