"""eventbus on Kafka (confluent-kafka): ``EventBus("kafka://127.0.0.1:9092")``.

A topic per event type, consumer groups, key -> partition ordering, offsets
committed only after the handler settled the event, in-process retries then a
retry topic, a dead-letter topic per group. See ``docs/adapters/kafka.md``.

Importing this module does not import confluent-kafka; building an adapter
does (``pip install 'eventbus[kafka]'`` if it is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventbus import AdapterSpec, hookimpl

from ._adapter import KafkaAdapter
from ._consumer import KafkaConsumer
from ._names import dead_topic, retry_topic, topic_for
from ._settings import CAPABILITIES, DEFAULT_URL, KafkaSettings

__all__ = [
    "CAPABILITIES",
    "KafkaAdapter",
    "KafkaConsumer",
    "KafkaSettings",
    "dead_topic",
    "retry_topic",
    "topic_for",
]

__version__ = "0.1.0"


def _from_url(url: str, options: Mapping[str, Any]) -> KafkaAdapter:
    return KafkaAdapter(KafkaSettings.from_url(url, options))


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            name="kafka",
            factory=_from_url,
            schemes=("kafka",),
            capabilities=CAPABILITIES,
            version=__version__,
            extra="kafka",
            sdk="confluent_kafka",
            description="Kafka and Kafka-protocol brokers (Redpanda, Tansu), via confluent-kafka",
            default_url=DEFAULT_URL,
        )
    ]
