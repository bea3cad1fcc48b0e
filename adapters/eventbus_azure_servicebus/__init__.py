"""The ``azure_servicebus`` adapter plugin: eventbus on Azure Service Bus.

Found through the ``eventbus.adapters`` entry point; importing this package
does not import the SDK (``pip install 'eventbus[azure-servicebus]'``).

URLs (schemes ``azure-servicebus``, ``servicebus``, ``sb``)::

    sb://<namespace>.servicebus.windows.net/<topic>?SharedAccessKeyName=...&SharedAccessKey=...
    sb://127.0.0.1:5672/eventbus?UseDevelopmentEmulator=true&entities=existing

or options ``connection_string`` (wins over the URL's host and keys), ``topic``,
``entities`` (``create`` | ``existing``), ``lock_duration``,
``max_delivery_count``, ``max_message_size``, ``lock_renewal``, ``sessions``
(``true``: per-key order through sessions), ``max_sessions``.
See ``docs/adapters/azure_servicebus.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from eventbus import ConfigError, hookimpl

from ._adapter import CAPABILITIES
from ._entities import (
    AdministrationEntities,
    Entities,
    ExistingEntities,
    RuleSpec,
    SubscriptionSpec,
    pattern_sql,
    subscription_name,
)

if TYPE_CHECKING:
    from ._adapter import ServiceBusAdapter

__all__ = [
    "AdministrationEntities",
    "Entities",
    "ExistingEntities",
    "RuleSpec",
    "ServiceBusAdapter",
    "SubscriptionSpec",
    "from_url",
    "pattern_sql",
    "subscription_name",
]

_CONNECTION_KEYS = {
    "sharedaccesskeyname": "SharedAccessKeyName",
    "sharedaccesskey": "SharedAccessKey",
    "sharedaccesssignature": "SharedAccessSignature",
    "usedevelopmentemulator": "UseDevelopmentEmulator",
    "entitypath": "EntityPath",
}
_OPTIONS = {
    "topic",
    "entities",
    "lock_duration",
    "max_delivery_count",
    "max_message_size",
    "lock_renewal",
    "sessions",
    "max_sessions",
}


def __getattr__(name: str) -> Any:
    if name == "ServiceBusAdapter":
        from ._adapter import ServiceBusAdapter

        return ServiceBusAdapter
    raise AttributeError(name)


def from_url(url: str, options: Mapping[str, Any]) -> ServiceBusAdapter:
    """Build the adapter from a URL and/or options (see the module docstring)."""
    from ._adapter import ServiceBusAdapter

    parts = urlsplit(url) if url else None
    query = dict(parse_qsl(parts.query)) if parts else {}
    conn_keys: dict[str, str] = {}
    opts: dict[str, Any] = {}
    for key, value in query.items():
        low = key.lower()
        if low in _CONNECTION_KEYS:
            conn_keys[_CONNECTION_KEYS[low]] = value
        elif low in _OPTIONS:
            opts[low] = value
        else:
            raise ConfigError(f"azure_servicebus URL: unknown parameter {key!r}")
    for key, value in options.items():
        if key in _OPTIONS:
            opts[key] = value
        elif key != "connection_string":
            raise ConfigError(f"azure_servicebus: unknown option {key!r}")
    conn = options.get("connection_string")
    if not conn:
        if parts is None or not parts.hostname:
            raise ConfigError(
                "azure_servicebus needs a connection string (option 'connection_string') "
                "or a URL like sb://<namespace>.servicebus.windows.net/<topic>?"
                "SharedAccessKeyName=...&SharedAccessKey=..."
            )
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        conn = f"Endpoint=sb://{host}/;" + "".join(f"{k}={v};" for k, v in conn_keys.items())
    if parts is not None and parts.path.strip("/") and "topic" not in opts:
        opts["topic"] = unquote(parts.path.strip("/"))
    try:
        for key in ("lock_duration", "lock_renewal"):
            if key in opts:
                opts[key] = float(opts[key])
        for key in ("max_delivery_count", "max_message_size", "max_sessions"):
            if key in opts:
                opts[key] = int(opts[key])
        if isinstance(opts.get("sessions"), str):
            opts["sessions"] = _flag(opts["sessions"])
        return ServiceBusAdapter(conn, **opts)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"azure_servicebus: {exc}") from None


@hookimpl
def eventbus_adapters() -> list[Any]:
    from eventbus import AdapterSpec

    return [
        AdapterSpec(
            name="azure_servicebus",
            factory=from_url,
            schemes=("azure-servicebus", "sb", "servicebus"),
            capabilities=CAPABILITIES,
            version=_version(),
            extra="azure-servicebus",
            sdk="azure.servicebus",
            description="Azure Service Bus: a topic per bus, a subscription per group",
        )
    ]


def _flag(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off", ""):
        return False
    raise ValueError(f"sessions must be true or false, not {text!r}")


def _version() -> str:
    from eventbus import __version__

    return __version__
