"""boto3, loaded with the install hint, and its errors mapped to eventbus's.

Importing this module imports boto3 (or raises :class:`~eventbus.AdapterNotFound`
naming ``pip install 'eventbus[sqs]'``); nothing else in the package does.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from eventbus import BrokerError, BrokerUnavailable, require

boto3 = require("boto3", "sqs", "sqs")
from botocore.config import Config  # type: ignore[import-untyped]  # noqa: E402
from botocore.exceptions import (  # type: ignore[import-untyped]  # noqa: E402
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)
from botocore.exceptions import (  # noqa: E402
    ConnectionError as BotoConnectionError,
)

__all__ = [
    "BATCH", "GONE", "NO_QUEUE", "BotoCoreError", "ClientError", "Config", "NoRegionError",
    "ProfileNotFound", "boto3", "chunks", "error_code", "fifo_id", "sdk",
]  # fmt: skip

BATCH = 10  # SQS and SNS batch calls take at most 10 entries
_THROTTLED = {"Throttling", "ThrottlingException", "RequestThrottled", "ServiceUnavailable",
              "InternalError", "InternalFailure", "KMSThrottling"}  # fmt: skip
#: Settling a message whose receipt is no longer valid: it went to another member.
GONE = {"ReceiptHandleIsInvalid", "MessageNotInflight", "InvalidParameterValue",
        "AWS.SimpleQueueService.MessageNotInflight"}  # fmt: skip
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_FIFO_ID_CHARS = frozenset(string.ascii_letters + string.digits + string.punctuation)


# -- errors ------------------------------------------------------------------------------
def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _wrap(exc: BaseException, doing: str, kind: type[BrokerError] = BrokerError) -> BrokerError:
    if isinstance(exc, (BotoConnectionError, ReadTimeoutError)) or error_code(exc) in _THROTTLED:
        return BrokerUnavailable(f"SQS/SNS unreachable while {doing}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return kind(
            f"no AWS credentials while {doing}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "a profile (profile=...), or run with a role"
        )
    return kind(f"SQS/SNS refused {doing}: {exc}")


@contextmanager
def sdk(doing: str, kind: type[BrokerError] = BrokerError) -> Iterator[None]:
    """Turn boto3's exceptions into eventbus's, ``from`` the original."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _wrap(exc, doing, kind) from exc


def fifo_id(value: str) -> str:
    """``value`` if SQS takes it as a message group or dedup id, else a stable hash of it."""
    if value and len(value) <= 128 and all(c in _FIFO_ID_CHARS for c in value):
        return value
    return "h-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def chunks(items: Sequence[Any], n: int = BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]
