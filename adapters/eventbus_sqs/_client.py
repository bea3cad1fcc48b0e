"""The boto3 clients of one adapter, and the SQS calls the adapter and its consumers share.

Importing this module imports boto3 (or raises :class:`~eventbus.AdapterNotFound`
naming ``pip install 'eventbus[sqs]'``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from eventbus import BrokerError, ConfigError
from eventbus.adapter import require

from ._errors import GONE, UNREACHABLE, BotoCoreError, ClientError, sdk
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
    (``sns`` is None in ``mode=sqs``), with botocore's retries (``max_attempts``);
    ``poll`` is a second SQS client that makes one attempt per call, for receives,
    lease renewals and handing messages back: the worker retries those itself
    (checking for stop in between), so a stop never waits for botocore's retries
    against an endpoint that is down. ``closed`` turns true once, at :meth:`close`,
    and consumers read it to refuse work after their adapter is closed.

    Health: every call's outcome passes through :meth:`_health` (botocore's
    ``needs-retry`` event), which logs one WARNING when the endpoint stops answering
    and one when it answers again.
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
            read_timeout=s.long_poll + 5,  # a long poll answers within long_poll seconds
            retries={"max_attempts": s.max_attempts, "mode": "standard"},
            max_pool_connections=50,
        )
        once = config.merge(Config(retries={"max_attempts": 1, "mode": "standard"}))
        try:
            self.sqs: Any = session.client("sqs", endpoint_url=s.endpoint_url, config=config)
            self.poll: Any = session.client("sqs", endpoint_url=s.endpoint_url, config=once)
            self.sns: Any = (
                session.client("sns", endpoint_url=s.endpoint_url, config=config)
                if s.mode == "sns"
                else None
            )
        except (BotoCoreError, NoRegionError) as exc:
            raise ConfigError(f"sqs adapter: cannot make an AWS client: {exc}") from exc
        self.closed = False
        self._where = s.endpoint_url or f"AWS ({session.region_name})"
        self._reachable = True
        self._health_lock = threading.Lock()
        for client in self._clients():
            client.meta.events.register("needs-retry", self._health)

    def _clients(self) -> list[Any]:
        return [c for c in (self.sqs, self.poll, self.sns) if c is not None]

    def _health(
        self, response: Any = None, caught_exception: BaseException | None = None, **_: Any
    ) -> None:
        """botocore's ``needs-retry`` event, after every attempt of every call."""
        if caught_exception is not None:
            if not isinstance(caught_exception, UNREACHABLE) or not self._reachable:
                return
            with self._health_lock:
                if not self._reachable:
                    return
                self._reachable = False
            log.warning(
                "SQS/SNS endpoint %s is unreachable (%s); eventbus keeps retrying",
                self._where,
                caught_exception,
            )
        elif response is not None and not self._reachable:
            with self._health_lock:
                if self._reachable:
                    return
                self._reachable = True
            log.warning("SQS/SNS endpoint %s is reachable again", self._where)

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
        """Set the visibility of received messages; the indexes SQS refused to change.

        One attempt per call (``poll``): renewals run again next period, and a message
        not handed back comes back anyway when its visibility runs out."""
        refused: set[int] = set()
        for start in range(0, len(receipts), BATCH):
            chunk = receipts[start : start + BATCH]
            entries = [
                {"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": seconds}
                for i, r in enumerate(chunk)
            ]
            result = self.poll.change_message_visibility_batch(QueueUrl=url, Entries=entries)
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
        for client in self._clients():
            client.close()
