"""The boto3 clients of one adapter, and the SQS calls the adapter and its consumers share.

Importing this module imports boto3 (or raises :class:`~eventbus.AdapterNotFound`
naming ``pip install 'eventbus[sqs]'``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

from eventbus import BrokerError, ConfigError
from eventbus.adapter import require

from ._errors import GONE, BotoCoreError, ClientError, sdk
from ._settings import SqsSettings

boto3 = require("boto3", "sqs", "sqs")
from botocore.config import Config  # type: ignore[import-untyped]  # noqa: E402
from botocore.exceptions import NoRegionError, ProfileNotFound  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["BATCH", "SqsClient", "chunks"]

log = logging.getLogger("eventbus.sqs")

BATCH = 10  # SQS and SNS batch calls take at most 10 entries


def chunks(items: Sequence[Any], n: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class SqsClient:
    """The SQS client (and SNS client in ``mode=sns``) of one adapter.

    Thread-safe, as boto3 clients are. ``sqs`` and ``sns`` are the boto3 clients
    (``sns`` is None in ``mode=sqs``); ``closed`` turns true once, at :meth:`close`,
    and consumers read it to refuse work after their adapter is closed.
    """

    def __init__(self, settings: SqsSettings) -> None:
        s = settings
        try:
            session = boto3.session.Session(profile_name=s.profile, region_name=s.region)
        except ProfileNotFound as exc:
            raise ConfigError(f"sqs adapter: AWS profile {s.profile!r} not found") from exc
        if session.region_name is None:
            raise ConfigError(
                "sqs adapter: no AWS region; add region=... to the URL or set AWS_REGION"
            )
        config = Config(
            connect_timeout=s.connect_timeout,
            read_timeout=s.long_poll + 15,
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
            max_pool_connections=50,
        )
        try:
            self.sqs: Any = session.client("sqs", endpoint_url=s.endpoint_url, config=config)
            self.sns: Any = (
                session.client("sns", endpoint_url=s.endpoint_url, config=config)
                if s.mode == "sns"
                else None
            )
        except (BotoCoreError, NoRegionError) as exc:
            raise ConfigError(f"sqs adapter: cannot make an AWS client: {exc}") from exc
        self.closed = False

    def delete(self, url: str, receipts: Sequence[str], what: str) -> None:
        """Delete received messages; ones already gone (settled elsewhere) are not errors."""
        for chunk in chunks(receipts):
            entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)]
            with sdk(f"deleting from {what!r}"):
                result = self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            failed = [f for f in result.get("Failed") or [] if f.get("Code") not in GONE]
            if failed:
                raise BrokerError(
                    f"SQS refused to delete {len(failed)} message(s) of {what!r}: "
                    f"{failed[0].get('Code')}: {failed[0].get('Message')}; they will come back"
                )

    def set_visibility(self, url: str, receipts: Sequence[str], seconds: int) -> set[int]:
        """Set the visibility of received messages; the indexes SQS refused to change."""
        refused: set[int] = set()
        for start in range(0, len(receipts), BATCH):
            chunk = receipts[start : start + BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                for i, r in enumerate(chunk)
            ]
            result = self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            refused.update(start + int(f["Id"]) for f in result.get("Failed") or [])
        return refused

    def release(self, url: str, receipts: Sequence[str], after: int = 0) -> None:
        """Make received messages visible again (after ``after`` seconds); best effort."""
        if not receipts:
            return
        try:
            self.set_visibility(url, receipts, after)
        except (ClientError, BotoCoreError) as exc:
            log.debug("could not return %d message(s): %s", len(receipts), exc)

    def find_subscription(self, topic_arn: str, queue_arn: str) -> dict[str, Any] | None:
        """The SNS subscription of ``queue_arn`` to ``topic_arn`` (as listed), if any."""
        paginator = self.sns.get_paginator("list_subscriptions_by_topic")
        for page in paginator.paginate(TopicArn=topic_arn):
            for sub in page.get("Subscriptions", []):
                if sub.get("Endpoint") == queue_arn and sub.get("Protocol") == "sqs":
                    return dict(sub)
        return None

    def close(self) -> None:
        self.closed = True
        for client in (self.sqs, self.sns):
            if client is not None:
                client.close()
