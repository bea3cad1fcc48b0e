"""The Amazon SQS adapter plugin for eventbus (boto3; SNS for fan-out).

Found through the ``eventbus.adapters`` entry point; selected by the broker
name ``sqs`` or an ``sqs://`` URL::

    sqs://?region=eu-west-1                          AWS (credentials: the boto3 chain)
    sqs://?region=us-east-1&endpoint_url=http://localhost:4566     LocalStack, moto
    sqs://?mode=sqs&fifo=true&prefix=shop-&lease=60  no SNS, FIFO queues

Importing this package does not import boto3: the adapter module is loaded when
an adapter is made, and a missing boto3 becomes an install hint
(``pip install 'eventbus[sqs]'``). Settings: :class:`SqsSettings`; the mapping
and how to run the tests on AWS or LocalStack: ``docs/adapters/sqs.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eventbus import AdapterSpec, hookimpl

from ._settings import CAPABILITIES, DEFAULT_URL, SqsSettings

if TYPE_CHECKING:
    from ._adapter import SqsAdapter, SqsConsumer

__all__ = ["CAPABILITIES", "SqsAdapter", "SqsConsumer", "SqsSettings"]


def __getattr__(name: str) -> Any:
    if name in ("SqsAdapter", "SqsConsumer"):
        from . import _adapter  # imports boto3, or raises AdapterNotFound with the hint

        return getattr(_adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _create(url: str, options: Mapping[str, Any]) -> SqsAdapter:
    settings = SqsSettings.from_url(url, options)  # config errors before the SDK loads
    from ._adapter import SqsAdapter

    return SqsAdapter(settings)


def _version() -> str:
    from eventbus import __version__

    return __version__


@hookimpl
def eventbus_adapters() -> list[AdapterSpec]:
    return [
        AdapterSpec(
            name="sqs",
            factory=_create,
            schemes=("sqs",),
            capabilities=CAPABILITIES,
            version=_version(),
            extra="sqs",
            sdk="boto3",
            description="Amazon SQS: a queue per group, SNS topic fan-out (boto3)",
            default_url=DEFAULT_URL,
        )
    ]
