"""The RabbitMQ adapter plugin for eventbus (pika).

Found through the ``eventbus.adapters`` entry point; selected by the broker
name ``rabbitmq`` or an ``amqp://`` / ``amqps://`` URL. Importing this package
does not import pika: the adapter module is loaded when an adapter is made, and
a missing pika becomes an install hint (``pip install 'eventbus[rabbitmq]'``).

Modules (each adapter package has the same roles): ``_settings``, ``_codec``,
``_errors``, ``_client``, ``_adapter``, ``_consumer``, ``_tooling``; see
``_adapter``'s docstring. ``docs/adapters/rabbitmq.md`` has the mapping and the
threading model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventbus.adapter import AdapterSpec, adapter_spec, hookimpl, lazy_exports

from ._settings import CAPABILITIES, DEFAULT_URL, RabbitMQSettings, delay_bucket

if TYPE_CHECKING:
    from ._adapter import RabbitMQAdapter
    from ._consumer import RabbitMQConsumer

__all__ = [
    "CAPABILITIES",
    "DEFAULT_URL",
    "RabbitMQAdapter",
    "RabbitMQConsumer",
    "RabbitMQSettings",
    "delay_bucket",
]

SPEC = adapter_spec(
    name="rabbitmq",
    settings=RabbitMQSettings,
    adapter="._adapter:RabbitMQAdapter",
    package=__name__,
    schemes=("amqp", "amqps"),
    capabilities=CAPABILITIES,
    extra="rabbitmq",
    sdk="pika",
    description="RabbitMQ: topic exchange, a durable queue per group (pika)",
    default_url=DEFAULT_URL,
)

__getattr__ = lazy_exports(
    __name__, {"RabbitMQAdapter": "._adapter", "RabbitMQConsumer": "._consumer"}
)


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
