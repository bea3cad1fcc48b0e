"""The Amazon SQS adapter plugin for eventbus (boto3; SNS for fan-out).

Found through the ``eventbus.adapters`` entry point; selected by the broker
name ``sqs`` or an ``sqs://`` URL::

    sqs://?region=eu-west-1                          AWS (credentials: the boto3 chain)
    sqs://?region=us-east-1&endpoint_url=http://localhost:4566     LocalStack, moto
    sqs://?mode=sqs&fifo=true&prefix=shop-&lease=60  no SNS, FIFO queues

Importing this package does not import boto3: the adapter module is loaded when
an adapter is made, and a missing boto3 becomes an install hint
(``pip install 'eventbus[sqs]'``). Settings: :class:`SqsSettings`; the mapping
and how to run on AWS or LocalStack: ``docs/adapters/sqs.md``.

Modules: ``_settings`` (settings, capabilities; no SDK), ``_codec`` (Message <->
SQS body and attributes, SNS filter policies), ``_errors`` (botocore's exceptions
to eventbus's), ``_client`` (the boto3 clients and shared SQS calls), ``_adapter``
(publish, declare, consumer, close), ``_consumer`` (the consumer and the lease
renewer), ``_tooling`` (dead-letter tools, ``delete_group``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventbus.adapter import AdapterSpec, adapter_spec, hookimpl, lazy_exports

from ._codec import filter_policy, from_wire, sqs_size, to_wire
from ._settings import CAPABILITIES, DEFAULT_URL, MAX_MESSAGE_SIZE, SqsSettings

if TYPE_CHECKING:
    from ._adapter import SqsAdapter, SqsConsumer

__all__ = [
    "CAPABILITIES",
    "MAX_MESSAGE_SIZE",
    "SqsAdapter",
    "SqsConsumer",
    "SqsSettings",
    "filter_policy",
    "from_wire",
    "sqs_size",
    "to_wire",
]

SPEC = adapter_spec(
    name="sqs",
    settings=SqsSettings,
    adapter="._adapter:SqsAdapter",
    package=__name__,
    schemes=("sqs",),
    capabilities=CAPABILITIES,
    extra="sqs",
    sdk="boto3",
    description="Amazon SQS: a queue per group, SNS topic fan-out (boto3)",
    default_url=DEFAULT_URL,
)
__getattr__ = lazy_exports(__name__, {"SqsAdapter": "._adapter", "SqsConsumer": "._adapter"})


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [SPEC]
