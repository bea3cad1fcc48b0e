"""The conformance rows of the SQS adapter: SNS fan-out (standard and FIFO) and no-SNS mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from eventbus_sqs import SqsAdapter

from eventbus.testing import AdapterConformance

pytestmark = [pytest.mark.sqs]

LEASE = 3  # seconds: crash-redelivery tests wait about this long


class TestSqsConformance(AdapterConformance):
    """``mode=sns``, standard queues: the default layout."""

    marker = "sqs"
    options: ClassVar[dict[str, Any]] = {}

    @pytest.fixture
    def adapter_factory(self, sqs_names: Any) -> Callable[[], SqsAdapter]:
        return lambda: SqsAdapter(sqs_names.settings(lease=LEASE, **self.options))

    @pytest.fixture
    def foreign_publisher(self, sqs_names: Any) -> Callable[[str, bytes], None]:
        """Plain boto3, no envelope: SNS with a ``type`` attribute (or straight to the queues)."""
        settings = sqs_names.settings(**self.options)

        def put(topic: str, body: bytes) -> None:
            text = body.decode("utf-8", "replace")
            attributes = {"type": {"DataType": "String", "StringValue": topic}}
            fifo = {"MessageGroupId": "foreign", "MessageDeduplicationId": "foreign-1"}
            extra = fifo if settings.fifo else {}
            if settings.mode == "sns":
                sns = sqs_names.endpoint.client("sns")
                arn = sns.create_topic(
                    Name=settings.topic_name,
                    Attributes={"FifoTopic": "true"} if settings.fifo else {},
                )["TopicArn"]
                sns.publish(TopicArn=arn, Message=text, MessageAttributes=attributes, **extra)
                return
            sqs = sqs_names.endpoint.client("sqs")
            for url in sqs_names.queue_urls():
                if not settings.is_dlq_name(url.rsplit("/", 1)[-1]):
                    sqs.send_message(
                        QueueUrl=url, MessageBody=text, MessageAttributes=attributes, **extra
                    )

        return put

    @pytest.fixture
    def crash(self) -> Callable[[Any], None]:
        # drops connections without settling, closing or flushing, as a killed process would
        return lambda adapter: adapter.simulate_crash()


class TestSqsFifoConformance(TestSqsConformance):
    """``fifo=true``: FIFO topic and queues; declares ordering per key and dedup."""

    options: ClassVar[dict[str, Any]] = {"fifo": True}


class TestSqsQueueModeConformance(TestSqsConformance):
    """``mode=sqs``: no SNS; the publisher routes to the groups' queues by their tags."""

    options: ClassVar[dict[str, Any]] = {"mode": "sqs"}
