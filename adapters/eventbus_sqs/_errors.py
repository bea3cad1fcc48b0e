"""botocore's exceptions mapped to eventbus's, and the SQS error codes the adapter reads.

Importing this module imports botocore (or raises :class:`~eventbus.AdapterNotFound`
naming ``pip install 'eventbus[sqs]'``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventbus import BrokerError, BrokerUnavailable
from eventbus.adapter import require, translate_errors

require("botocore", "sqs", "sqs")
from botocore.exceptions import (  # type: ignore[import-untyped]  # noqa: E402
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError  # noqa: E402

__all__ = ["GONE", "NO_QUEUE", "UNREACHABLE", "BotoCoreError", "ClientError", "error_code", "sdk"]

#: botocore's "could not reach the endpoint" exceptions: connecting failed or timed out
#: (ConnectionError), or the connection broke or timed out reading (HTTPClientError).
UNREACHABLE = (BotoConnectionError, HTTPClientError)
_SDK = (ClientError, BotoCoreError)
#: Error codes that mean "try again later", not "refused".
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "KMSThrottling",
}
#: Settling a message whose receipt is no longer valid: it went to another member.
GONE = {
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "InvalidParameterValue",
    "AWS.SimpleQueueService.MessageNotInflight",
}
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}


def error_code(exc: BaseException | None) -> str:
    """The AWS error code of ``exc`` (a ``ClientError``), else ``""``."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


@contextmanager
def sdk(doing: str, kind: type[BrokerError] = BrokerError) -> Iterator[None]:
    """boto3's exceptions inside the block become eventbus's, ``from`` the original.

    Unreachable endpoints and throttling are :class:`~eventbus.BrokerUnavailable`;
    missing credentials say where boto3 looks for them; the rest is ``kind``.
    """
    try:
        with translate_errors(doing, unavailable=UNREACHABLE, error=kind, sdk=_SDK):
            yield
    except BrokerError as exc:
        cause = exc.__cause__
        if not isinstance(exc, BrokerUnavailable) and error_code(cause) in _THROTTLED:
            raise BrokerUnavailable(str(exc)) from cause
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            raise kind(
                f"no AWS credentials while {doing}: set AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY, a profile (profile=...), or run with a role"
            ) from cause
        raise
