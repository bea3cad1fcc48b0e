"""An AsyncAPI 3.0 document describing a bus: its broker, its groups and handlers.

:func:`asyncapi_document` reads what a bus knows: the configured broker (a
server; the URL without credentials), each subscription (a ``receive``
operation per handler, on a channel per pattern) and how events look on that
broker's wire (a CloudEvents message whose headers use the broker binding's
names: ``ce_id`` on Kafka, ``cloudEvents:id`` on RabbitMQ, ...). Handler
docstrings become summaries and descriptions; groups, retry policies and
timeouts are ``x-eventbus-*`` extensions.

Patterns with wildcards are channel addresses as they are (``order.*``); the
channel's description says they are AMQP-style topic patterns.

Event types bound to model classes (``eventbus.contracts``) get a message of
their own whose payload is the model's JSON Schema, in ``components/schemas``,
listed on every channel whose pattern matches the type.
"""

from __future__ import annotations

import inspect
import re
from typing import Any
from urllib.parse import urlsplit

from .._bus import EventBus
from .._config import redact
from .._hooks import adapter_name
from .._routing import matches
from ..contracts import REGISTRY, Contract

__all__ = ["asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
_ID = re.compile(r"[^A-Za-z0-9_\-]+")

# CloudEvents attributes (name, description) as the document lists them.
_ATTRIBUTES = (
    ("id", "Unique event id (duplicates are the same event)"),
    ("source", "Who published it (a URI reference)"),
    ("type", "The event type; also the topic it is routed by"),
    ("specversion", "CloudEvents version: 1.0"),
    ("time", "When it happened (RFC 3339)"),
    ("subject", "What it is about, within the source"),
    ("dataschema", "URI of the payload's schema"),
    ("correlationid", "Correlation id (extension)"),
    ("causationid", "Id of the event that caused this one (extension)"),
    ("traceparent", "W3C trace context (distributed-tracing extension)"),
    ("partitionkey", "Ordering key (partitioning extension)"),
)
# How each adapter names attribute ``a`` on its wire, and where datacontenttype goes.
_PROTOCOLS = {
    "rabbitmq": ("amqp", "cloudEvents:{}", "AMQP content_type property"),
    "kafka": ("kafka", "ce_{}", "content-type header"),
    "sqs": ("sqs", None, "packed in the 'ce' message attribute"),
    "azure_servicebus": ("amqps", "cloudEvents_{}", "AMQP content_type property"),
    "memory": ("memory", "{}", "datacontenttype"),
    "sqlite": ("sqlite", "{}", "datacontenttype"),
}
_DESCRIPTIONS = {
    "rabbitmq": "RabbitMQ: one topic exchange, a durable queue per group bound by pattern",
    "kafka": "Kafka: a topic per event type, a consumer group per group",
    "sqs": "Amazon SQS (+ SNS): a queue per group",
    "azure_servicebus": "Azure Service Bus: one topic, a subscription per group",
    "memory": "the in-memory broker (one process)",
    "sqlite": "the embedded SQLite broker (one file)",
}


def _ident(text: str) -> str:
    out = _ID.sub("_", text).strip("_")
    return out or "x"


def _server(bus: EventBus, name: str) -> dict[str, Any]:
    protocol = _PROTOCOLS.get(name, (name, None, ""))[0]
    url = redact(_broker_url(bus, name))
    server: dict[str, Any] = {"host": "localhost", "protocol": protocol}
    if url and "://" in url:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if host:
            server["host"] = host
        if parts.path and parts.path != "/":
            server["pathname"] = parts.path
        if parts.scheme in ("amqps", "kafka+ssl"):
            server["protocol"] = "amqps" if parts.scheme == "amqps" else "kafka-secure"
    server["description"] = f"{_DESCRIPTIONS.get(name, name)} (eventbus adapter {name!r})"
    return server


def _broker_url(bus: EventBus, name: str) -> str:
    """The URL of ``bus``'s broker: the config's if it names this adapter, else the adapter's."""
    from .._plugins import spec_for_url

    url = bus.config.url or ""
    try:
        if url and spec_for_url(url).name == name:
            return url
    except Exception:  # noqa: S110 - an unknown scheme: look at the adapter instead
        pass
    settings = getattr(bus.adapter, "settings", None)
    found = getattr(settings, "url", None)
    if isinstance(found, str):
        return found
    servers = getattr(settings, "bootstrap_servers", None)
    if isinstance(servers, str) and servers:
        return f"{name}://{servers.split(',')[0]}"
    return ""


def _headers_schema(name: str) -> dict[str, Any]:
    pattern = _PROTOCOLS.get(name, (name, "{}", ""))[1]
    if pattern is None:  # SQS: attributes are packed into two message attributes
        return {
            "type": "object",
            "description": "SQS message attributes: 'type' (the event type) and 'ce' (every "
            "other CloudEvents attribute, packed as a JSON array; docs/adapters/sqs.md)",
            "properties": {"type": {"type": "string"}, "ce": {"type": "string"}},
            "required": ["type", "ce"],
        }
    props = {pattern.format(a): {"type": "string", "description": text} for a, text in _ATTRIBUTES}
    required = [pattern.format(a) for a in ("id", "source", "type", "specversion")]
    where = _PROTOCOLS.get(name, ("", "", "datacontenttype"))[2]
    return {
        "type": "object",
        "description": "CloudEvents 1.0 attributes, binary content mode; datacontenttype is "
        f"the {where}. Other extension attributes use the same prefix.",
        "properties": props,
        "required": required,
        "additionalProperties": {"type": "string"},
    }


def _doc_parts(handler: Any) -> tuple[str | None, str | None]:
    doc = inspect.getdoc(handler)
    if not doc:
        return None, None
    first, _, rest = doc.partition("\n\n")
    return " ".join(first.split()), (rest.strip() or None)


def asyncapi_document(
    bus: EventBus,
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``bus`` as JSON-ready data."""
    name = adapter_name(bus.adapter)
    server_id = _ident(name)
    wire = _headers_schema(name)
    correlation = (_PROTOCOLS.get(name, (name, "{}", ""))[1] or "{}").format("correlationid")
    message = {
        "name": "CloudEvent",
        "title": "CloudEvents 1.0 event",
        "summary": "An eventbus event: CloudEvents attributes in headers, the data as the body",
        "contentType": "application/json",
        "headers": wire,
        "payload": {
            "description": "The event's data: JSON by default; text or bytes as "
            "its datacontenttype says"
        },
        "correlationId": {"location": f"$message.header#/{correlation}"},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    messages: dict[str, Any] = {"cloudEvent": message}
    schemas: dict[str, Any] = {}
    contracts = REGISTRY.contracts()
    for sub in bus.subscriptions:
        groups.setdefault(sub.group, [])
        for pattern in sub.patterns:
            channel_id = _ident(pattern.replace("*", "star").replace("#", "hash"))
            if channel_id not in channels:
                wild = "*" in pattern or "#" in pattern
                channels[channel_id] = {
                    "address": pattern,
                    "title": pattern,
                    "description": (
                        f"Events whose type matches the topic pattern {pattern!r} "
                        "('*' one word, '#' zero or more words)"
                        if wild
                        else f"Events of type {pattern!r}"
                    ),
                    "servers": [{"$ref": f"#/servers/{server_id}"}],
                    "messages": _channel_messages(
                        pattern, wild, contracts, message, messages, schemas
                    ),
                }
            op_id = _ident(f"{sub.group}.{sub.name}.{channel_id}")
            summary, details = _doc_parts(sub.handler)
            op: dict[str, Any] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{m}"}
                    for m in channels[channel_id]["messages"]
                ],
                "summary": summary or f"{sub.name} handles {pattern} in group {sub.group}",
                "x-eventbus-group": sub.group,
                "x-eventbus-handler": sub.name,
                "x-eventbus-retry": {
                    "max_attempts": sub.retry.max_attempts,
                    "initial_delay": sub.retry.initial_delay,
                    "max_delay": sub.retry.max_delay,
                },
            }
            if details:
                op["description"] = details
            if sub.timeout is not None:
                op["x-eventbus-timeout"] = sub.timeout
            operations[op_id] = op
            groups[sub.group].append(pattern)
    info: dict[str, Any] = {
        "title": title or "eventbus application",
        "version": version,
        "description": description
        or (
            f"Handlers of an eventbus application on {_DESCRIPTIONS.get(name, name)}. "
            "Every group gets each matching event; members of one group share them. "
            "Groups: "
            + "; ".join(f"{g} <- {', '.join(dict.fromkeys(p))}" for g, p in groups.items())
        ),
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": info,
        "defaultContentType": "application/json",
        "servers": {server_id: _server(bus, name)},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, **({"schemas": schemas} if schemas else {})},
    }


def _channel_messages(
    pattern: str,
    wild: bool,
    contracts: list[Contract],
    generic: dict[str, Any],
    messages: dict[str, Any],
    schemas: dict[str, Any],
) -> dict[str, Any]:
    """A channel's messages: one per bound type it matches, and the generic CloudEvent
    where unbound types may arrive (a wildcard, or no bound type)."""
    out: dict[str, Any] = {}
    for c in contracts:
        if not matches(pattern, c.type):
            continue
        key = _ident(c.type)
        if key not in messages:
            schemas[key] = _hoist(c.schema(), schemas)
            messages[key] = {
                **{k: v for k, v in generic.items() if k not in ("payload", "summary")},
                "name": c.cls.__name__,
                "title": f"{c.type} (version {c.version})",
                "summary": (inspect.getdoc(c.cls) or f"A {c.type} event").split("\n\n")[0],
                "payload": {"$ref": f"#/components/schemas/{key}"},
                "x-eventbus-event-type": c.type,
                "x-eventbus-version": c.version,
            }
        out[key] = {"$ref": f"#/components/messages/{key}"}
    if wild or not out:
        out["cloudEvent"] = {"$ref": "#/components/messages/cloudEvent"}
    return out


def _hoist(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` moved into ``components/schemas`` and refs rewritten."""
    schema = dict(schema)
    for name, sub in (schema.pop("$defs", None) or {}).items():
        schemas.setdefault(name, _hoist(sub, schemas))

    def fix(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    f"#/components/schemas/{v[len('#/$defs/') :]}"
                    if k == "$ref" and isinstance(v, str) and v.startswith("#/$defs/")
                    else fix(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return dict(fix(schema))
