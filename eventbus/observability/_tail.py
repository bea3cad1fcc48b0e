"""Live tail: watch the events matching a pattern through a group of one's own.

:func:`tail` declares a temporary group bound to the pattern, prints (or hands
to a callback) every event that arrives from then on, acks it, and removes the
group when it stops, where the adapter can remove groups (an optional
``delete_group(group)`` method). On an adapter that cannot, the group is named
after the pattern (``eventbus-tail.<hash>``), so repeated tails reuse one group
instead of leaving a new one each time, and events that waited in it since the
previous tail are skipped (by their ``time``), not shown as new.

Tailing never disturbs other groups: it is one more group, like any service.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from .._envelope import Delivery, Event, Message, decode
from .._errors import ConfigError, DecodeError
from .._routing import validate_pattern
from ..adapter._contract import Adapter, Consumer, GroupAdmin

__all__ = ["TailItem", "can_delete_groups", "format_line", "json_record", "tail", "tail_group"]

#: How far back (seconds) an event's ``time`` may be and still count as new: clock skew.
SKEW = 5.0


@dataclass(frozen=True, slots=True)
class TailItem:
    """One message seen by the tail: the event, or why it could not be decoded."""

    message: Message
    event: Event | None
    error: str | None
    received: datetime


def can_delete_groups(adapter: Adapter) -> bool:
    """Whether ``adapter`` can remove groups (implements :class:`~eventbus.adapter.GroupAdmin`)."""
    return isinstance(adapter, GroupAdmin)


def tail_group(pattern: str, adapter: Adapter) -> str:
    """The group a tail of ``pattern`` uses on ``adapter``."""
    digest = hashlib.sha256(pattern.encode()).hexdigest()[:10]
    if can_delete_groups(adapter):
        host = socket.gethostname().split(".")[0][:20] or "host"
        return f"eventbus-tail.{host}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    return f"eventbus-tail.{digest}"


def tail(
    adapter: Adapter,
    pattern: str,
    on_item: Callable[[TailItem], None],
    *,
    limit: int | None = None,
    stop: threading.Event | None = None,
    group: str | None = None,
    poll: float = 0.5,
    on_ready: Callable[[str], None] | None = None,
) -> tuple[int, str, bool]:
    """Hand ``on_item`` every message matching ``pattern`` until ``stop``, ``limit`` or Ctrl+C.

    Returns ``(count, group, removed)``: how many items were handed over, the
    group used, and whether it was removed from the broker afterwards.
    ``on_ready(group)`` is called once the group exists (events published from
    then on are seen).
    """
    validate_pattern(pattern)
    name = group or tail_group(pattern, adapter)
    reused = not can_delete_groups(adapter)
    adapter.declare(name, [pattern])
    started = datetime.now(timezone.utc) - timedelta(seconds=SKEW)
    count = 0
    consumer: Consumer | None = None
    try:
        consumer = adapter.consumer(name, [pattern])
        if on_ready is not None:
            on_ready(name)
        while (stop is None or not stop.is_set()) and (limit is None or count < limit):
            batch = consumer.receive(min(100, limit - count) if limit is not None else 100, poll)
            if not batch:
                continue
            shown: list[Delivery] = []
            for d in batch:
                if limit is not None and count >= limit:
                    break
                shown.append(d)
                item = _item(d)
                if reused and item.event is not None and item.event.time is not None:
                    if item.event.time < started:
                        continue  # waited in the reused group since an earlier tail
                on_item(item)
                count += 1
            consumer.ack(shown)  # the rest go back to the group, which is removed anyway
    finally:
        if consumer is not None:
            try:
                consumer.close()
            except Exception:  # noqa: S110 - closing is best effort; the group goes next
                pass
        removed = False
        if not reused and isinstance(adapter, GroupAdmin):
            try:
                adapter.delete_group(name)
                removed = True
            except ConfigError:  # e.g. Service Bus on entities it may not manage
                pass
    return count, name, removed


def _item(d: Delivery) -> TailItem:
    now = datetime.now(timezone.utc)
    try:
        return TailItem(d.message, decode(d.message, d.attempt), None, now)
    except DecodeError as exc:
        return TailItem(d.message, None, str(exc), now)


# -- presentation ----------------------------------------------------------------------------


def _preview(data: Any, body: bytes, width: int) -> str:
    if isinstance(data, bytes):
        text = f"<{len(data)} bytes>"
    elif isinstance(data, str):
        text = json.dumps(data, ensure_ascii=False)
    elif data is None and not body:
        text = "-"
    else:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def format_line(item: TailItem, width: int = 100) -> str:
    """One readable line: time, type, id, key, correlation id, attempt, payload preview."""
    local = item.received.astimezone()
    stamp = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    e = item.event
    if e is None:
        raw = item.message.body
        try:
            shown = raw.decode("utf-8")
        except UnicodeDecodeError:
            shown = f"<{len(raw)} bytes>"
        shown = " ".join(shown.split())[:60]
        return f"{stamp}  {item.message.topic or '-'}  ! undecodable: {item.error}  {shown}"
    parts = [stamp, e.type, f"id={e.id}"]
    if e.key is not None:
        parts.append(f"key={e.key}")
    if e.correlationid:
        parts.append(f"corr={e.correlationid}")
    if e.subject:
        parts.append(f"subject={e.subject}")
    if e.attempt > 1:
        parts.append(f"attempt={e.attempt}")
    parts.append(_preview(e.data, item.message.body, width))
    return "  ".join(parts)


def json_record(item: TailItem) -> dict[str, Any]:
    """A JSON-ready record: topic, key, attributes, data (or data_base64), received."""
    m = item.message
    record: dict[str, Any] = {
        "received": item.received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "topic": m.topic,
        "key": m.key,
    }
    if item.event is None:
        record["attributes"] = dict(m.headers)
        record["decode_error"] = item.error
        record["data_base64"] = base64.b64encode(m.body).decode("ascii")
        return record
    e = item.event
    record["attributes"] = e.attributes
    record["attempt"] = e.attempt
    if isinstance(e.data, bytes):
        record["data_base64"] = base64.b64encode(e.data).decode("ascii")
    else:
        record["data"] = e.data
    return record
