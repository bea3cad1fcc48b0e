"""The ``azure_servicebus`` adapter plugin: eventbus on Azure Service Bus.

Found through the ``eventbus.adapters`` entry point; importing this package
does not import the SDK (``pip install 'eventbus[azure-servicebus]'``).
URLs and options: ``_settings`` (:class:`ServiceBusSettings`); see
``docs/adapters/azure_servicebus.md``.

Modules: ``_settings`` (settings, capabilities), ``_codec`` (messages),
``_errors`` (SDK exceptions to ours), ``_client`` (SDK clients), ``_adapter``
(the adapter), ``_consumer`` (a group member), ``_sessions`` (a member with
``sessions=True``), ``_entities`` (subscription names, rules, and who creates
them), ``_tooling`` (dead-letter tools, ``delete_group``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventbus.adapter import AdapterSpec, adapter_spec, hookimpl, lazy_exports

from ._codec import DEFAULT_SESSION, session_for_key
from ._entities import (
    AdministrationEntities,
    Entities,
    ExistingEntities,
    RuleSpec,
    SubscriptionSpec,
    pattern_sql,
    subscription_name,
    subscription_spec,
)
from ._settings import CAPABILITIES, DEFAULT_URL, ServiceBusSettings

if TYPE_CHECKING:
    from ._adapter import ServiceBusAdapter

__all__ = [
    "DEFAULT_SESSION",
    "AdministrationEntities",
    "Entities",
    "ExistingEntities",
    "RuleSpec",
    "ServiceBusAdapter",
    "ServiceBusSettings",
    "SubscriptionSpec",
    "from_url",
    "pattern_sql",
    "session_for_key",
    "subscription_name",
    "subscription_spec",
]

SPEC = adapter_spec(
    name="azure_servicebus",
    settings=ServiceBusSettings,
    adapter="._adapter:ServiceBusAdapter",
    package=__name__,
    schemes=("azure-servicebus", "sb", "servicebus"),
    capabilities=CAPABILITIES,
    extra="azure-servicebus",
    sdk="azure.servicebus",
    description="Azure Service Bus: a topic per bus, a subscription per group",
    default_url=DEFAULT_URL,
)
__getattr__ = lazy_exports(__name__, {"ServiceBusAdapter": "._adapter"})


def from_url(url: str, options: Mapping[str, Any]) -> ServiceBusAdapter:
    """Build the adapter from a URL and/or options (see ``ServiceBusSettings``)."""
    return SPEC.factory(url, options)  # type: ignore[return-value]


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
