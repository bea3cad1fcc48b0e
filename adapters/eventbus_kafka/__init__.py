"""eventbus on Kafka (confluent-kafka): ``EventBus("kafka://127.0.0.1:9092")``.

A topic per event type, consumer groups, key -> partition ordering, offsets
committed only after the handler settled the event, in-process retries then a
retry topic, a dead-letter topic per group. See ``docs/adapters/kafka.md``.

Importing this module does not import confluent-kafka; building an adapter
does (``pip install 'eventbus[kafka]'`` if it is missing).

Modules (the roles every adapter package has): ``_settings`` (settings,
capabilities), ``_codec`` (Message <-> record headers), ``_errors`` (librdkafka
errors -> ours), ``_client`` (the shared clients), ``_adapter``, ``_consumer``,
``_tooling`` (dead letters, delete_group); plus ``_names`` (event types <->
Kafka topic names, regexes), which ``_settings`` and ``_codec`` use.
"""

from __future__ import annotations

from eventbus.adapter import AdapterSpec, adapter_spec, hookimpl, lazy_exports

from ._names import MAX_TOPIC, dead_topic, escape, group_regex, retry_topic, topic_for, unescape
from ._settings import CAPABILITIES, DEFAULT_URL, KafkaSettings

__all__ = [
    "CAPABILITIES",
    "MAX_TOPIC",
    "KafkaAdapter",
    "KafkaConsumer",
    "KafkaSettings",
    "dead_topic",
    "escape",
    "group_regex",
    "retry_topic",
    "topic_for",
    "unescape",
]

SPEC = adapter_spec(
    name="kafka",
    settings=KafkaSettings,
    adapter="._adapter:KafkaAdapter",
    package=__name__,
    schemes=("kafka",),
    capabilities=CAPABILITIES,
    extra="kafka",
    sdk="confluent_kafka",
    description="Kafka and Kafka-protocol brokers (Redpanda, Tansu), via confluent-kafka",
    default_url=DEFAULT_URL,
)
__version__ = SPEC.version
__getattr__ = lazy_exports(__name__, {"KafkaAdapter": "._adapter", "KafkaConsumer": "._consumer"})


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
