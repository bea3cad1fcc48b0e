"""Structured logs: every line names its event, and no line carries a credential.

``eventbus.configure_logging(json=True)`` puts one handler on the root logger
that writes one JSON object per line::

    {"time": "2026-11-28T05:31:02.120Z", "level": "WARNING", "logger": "eventbus.worker",
     "message": "group billing: ... failed on ...; retrying", "event_id": "5b7f...",
     "event_type": "order.created", "correlation_id": "c-1", "group": "billing",
     "handler": "shop.billing.invoice"}

``event_id``, ``event_type``, ``correlation_id``, ``group`` and ``handler`` come
from the event being handled on that thread (so a handler's own ``log.info``
lines have them too) or, while publishing, the event being published.

Credentials: :func:`redact_text` masks URL passwords (``amqp://user:***@host``)
and ``password=`` / ``SharedAccessKey=`` / ``sasl.password=`` style values in any
text; both formatters here pass their whole output through it, exception text
included. eventbus itself only ever logs redacted URLs; this is the second line
of defence for SDK messages and user code.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import IO, Any

from .._hooks import current_events, current_handler

__all__ = [
    "EventContextFilter",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "redact_text",
]

# scheme://user:password@  ->  scheme://user:***@; the password runs to the last "@"
# before the host (pika and urllib split there), so "p@ss" is masked whole.
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^/?#\s:@'\"]*:)[^/?#\s'\"]*@")
# name=value / name: value pairs whose name says secret
_SECRET_PAIR = re.compile(
    r"(?i)\b([a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|signature|sig|"
    r"accesskey|access_key|sharedaccesskey|apikey|api_key|private_key|credential)"
    r"[a-z0-9_.\-]*['\"]?\s*[=:]\s*['\"]?)([^\s&;'\",}]+)"
)
_FIELDS = ("event_id", "event_type", "correlation_id", "group", "handler")


def redact_text(text: str) -> str:
    """``text`` with URL passwords and secret-named values replaced by ``***``."""
    if not text:
        return text
    text = _USERINFO.sub(r"\1***@", text)
    return _SECRET_PAIR.sub(r"\1***", text)


class EventContextFilter(logging.Filter):
    """Adds ``event_id``, ``event_type``, ``correlation_id``, ``group``, ``handler`` to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        info = current_handler()
        events = current_events()
        event = events[0] if events else None
        values = {
            "event_id": event.id if event is not None else None,
            "event_type": event.type if event is not None else None,
            "correlation_id": event.correlationid if event is not None else None,
            "group": info.group if info is not None else None,
            "handler": (info.handler or None) if info is not None else None,
        }
        if len(events) > 1:
            values["event_id"] = ",".join(e.id for e in events[:20])
        for name, value in values.items():
            if getattr(record, name, None) is None:  # an explicit extra= wins
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The usual text format, plus ``[event=... corr=...]`` when known, redacted."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [
            f"{k}={getattr(record, k)}"
            for k in ("event_id", "correlation_id")
            if getattr(record, k, None)
        ]
        if tags:
            first, nl, rest = line.partition("\n")
            line = f"{first} [{' '.join(tags)}]{nl}{rest}"
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the event fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return redact_text(json.dumps(doc, ensure_ascii=False, default=str))


#: Loggers of the broker SDKs: WARNING and no tracebacks unless asked (``--debug``).
THIRD_PARTY = (
    "pika",
    "kafka",
    "confluent_kafka",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "azure",
    "uamqp",
    "proton",
    "pyamqp",
)


def _third_party(name: str) -> bool:
    return name.partition(".")[0] in THIRD_PARTY


class NoSdkTracebacks(logging.Filter):
    """A handler filter: an SDK's record keeps the first line of its message, no traceback.

    Some SDKs put a traceback in the message itself (pika's "Caller's stack:"), so
    the message is cut at its first line break too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _third_party(record.name):
            return True
        message = record.getMessage()
        first, newline, _ = message.partition("\n")
        if newline or record.exc_info or record.exc_text or record.stack_info:
            record.msg, record.args = f"{first} (--debug shows the traceback)", None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def quiet_sdk_loggers(level: int | str = logging.WARNING) -> dict[str, int]:
    """Set the SDK loggers to ``level``; returns their levels before, for :func:`restore_levels`."""
    before = {}
    for name in THIRD_PARTY:
        logger = logging.getLogger(name)
        before[name] = logger.level
        logger.setLevel(level)
    return before


def restore_levels(levels: dict[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is when a record comes (tests swap it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def remove_logging(handler: logging.Handler, logger: str | None = None) -> None:
    """Take off a handler :func:`configure_logging` added."""
    logging.getLogger(logger).removeHandler(handler)


def configure_logging(
    level: int | str = "INFO",
    *,
    json: bool = False,
    stream: IO[str] | None = None,
    logger: str | None = None,
) -> logging.Handler:
    """Log to ``stream`` (default: the current stderr) with event context and redaction.

    Returns the handler (:func:`remove_logging` takes it off).

    The handler goes on the root logger (``logger=None``) so handlers' own log
    lines get the event fields too; pass ``logger="eventbus"`` to cover only
    eventbus's lines. Calling it again replaces the handler it added before.
    """
    target = logging.getLogger(logger)
    for h in list(target.handlers):
        if getattr(h, "_eventbus", False):
            target.removeHandler(h)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    setattr(handler, "_eventbus", True)  # noqa: B010 - a mark on a stdlib object
    handler.addFilter(EventContextFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    target.addHandler(handler)
    target.setLevel(level if isinstance(level, int) else level.upper())
    return handler
