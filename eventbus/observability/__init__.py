"""Seeing the bus: logs that mask credentials, ``eventbus tail``, the AsyncAPI document.

The optional exporters are modules of their own, imported only when asked for
(their extras): :mod:`eventbus.observability.otel` (OpenTelemetry spans and
metrics) and :mod:`eventbus.observability.prometheus`.
"""

from __future__ import annotations

from ._asyncapi import asyncapi_document
from ._logging import (
    EventContextFilter,
    JsonFormatter,
    TextFormatter,
    configure_logging,
    redact_text,
)
from ._tail import TailItem, format_line, json_record, tail, tail_group

__all__ = [
    "EventContextFilter",
    "JsonFormatter",
    "TailItem",
    "TextFormatter",
    "asyncapi_document",
    "configure_logging",
    "format_line",
    "json_record",
    "redact_text",
    "tail",
    "tail_group",
]
