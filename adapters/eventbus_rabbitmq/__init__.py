"""The RabbitMQ adapter plugin for eventbus (pika).

Found through the ``eventbus.adapters`` entry point; selected by the broker
name ``rabbitmq`` or an ``amqp://`` / ``amqps://`` URL. Importing this package
does not import pika: the adapter module is loaded when an adapter is made, and
a missing pika becomes an install hint (``pip install 'eventbus[rabbitmq]'``).

See ``docs/adapters/rabbitmq.md`` for the mapping and the threading model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventbus import AdapterSpec, hookimpl

from ._settings import CAPABILITIES, DEFAULT_URL, RabbitMQSettings

if TYPE_CHECKING:
    from ._adapter import RabbitMQAdapter, RabbitMQConsumer

__all__ = ["CAPABILITIES", "RabbitMQAdapter", "RabbitMQConsumer", "RabbitMQSettings"]


def __getattr__(name: str) -> Any:
    if name in ("RabbitMQAdapter", "RabbitMQConsumer"):
        from . import _adapter  # imports pika, or raises AdapterNotFound with the hint

        return getattr(_adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _create(url: str, options: Mapping[str, Any]) -> RabbitMQAdapter:
    settings = RabbitMQSettings.from_url(url, options)  # config errors before the SDK loads
    from ._adapter import RabbitMQAdapter

    return RabbitMQAdapter(settings=settings)


def _version() -> str:
    from eventbus import __version__

    return __version__


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            name="rabbitmq",
            factory=_create,
            schemes=("amqp", "amqps"),
            capabilities=CAPABILITIES,
            version=_version(),
            extra="rabbitmq",
            sdk="pika",
            description="RabbitMQ: topic exchange, a durable queue per group (pika)",
            default_url=DEFAULT_URL,
        )
    ]
