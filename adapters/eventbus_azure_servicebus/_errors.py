"""The SDK's exceptions as eventbus's, through :func:`eventbus.adapter.translate_errors`.

``sdk_errors(action)``: "can't reach the namespace" exceptions become
:class:`~eventbus.BrokerUnavailable`; a message too large for the link
:class:`~eventbus.MessageTooLarge`; a missing topic or subscription says how to
create it; anything else ``error`` (``BrokerError``, or ``PublishError`` around
a publish), ``from`` the SDK's exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from eventbus import BrokerError, MessageTooLarge
from eventbus.adapter import translate_errors

__all__ = ["sdk_errors", "unavailable_errors"]

_UNAVAILABLE: tuple[type[BaseException], ...] | None = None


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """The SDK's exceptions that mean the namespace cannot be reached now."""
    global _UNAVAILABLE
    if _UNAVAILABLE is None:
        from azure.servicebus import exceptions as sbx

        _UNAVAILABLE = (
            sbx.ServiceBusConnectionError,
            sbx.ServiceBusCommunicationError,
            sbx.OperationTimeoutError,
            sbx.ServiceBusServerBusyError,
            ConnectionError,
            TimeoutError,
            OSError,
        )
    return _UNAVAILABLE


@contextmanager
def sdk_errors(action: str, error: type[BrokerError] = BrokerError) -> Iterator[None]:
    """Raise eventbus errors ``from`` the SDK's inside the block (see the module docstring)."""
    with translate_errors(action, unavailable=unavailable_errors(), error=error):
        try:
            yield
        except Exception as exc:
            special = _special(exc, action, error)
            if special is None:
                raise
            raise special from exc


def _special(exc: Exception, action: str, error: type[BrokerError]) -> Exception | None:
    from azure.servicebus import exceptions as sbx

    if isinstance(exc, sbx.MessageSizeExceededError):
        return MessageTooLarge(f"{action}: {type(exc).__name__}: {exc}")
    if isinstance(exc, sbx.MessagingEntityNotFoundError):
        return error(
            f"{action}: {type(exc).__name__}: {exc} (the topic or subscription does not exist: "
            "create it, or let the adapter create it with entities='create' where the "
            "namespace allows management)"
        )
    return None
