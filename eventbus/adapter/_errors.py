"""Turning a broker SDK's exceptions into eventbus's, in one ``with`` line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .._errors import BrokerError, BrokerUnavailable, EventBusError

__all__ = ["translate_errors"]


@contextmanager
def translate_errors(
    action: str,
    *,
    unavailable: tuple[type[BaseException], ...] = (),
    error: type[BrokerError] = BrokerError,
    sdk: tuple[type[BaseException], ...] = (Exception,),
) -> Iterator[None]:
    """Raise eventbus errors ``from`` the SDK's inside the block.

    ``unavailable`` are the SDK's "could not reach the broker" exceptions: they
    become :class:`~eventbus.BrokerUnavailable` (worth retrying later). Any other
    exception of ``sdk`` becomes ``error`` (``BrokerError``, or ``PublishError``
    around a publish). eventbus's own errors pass through unchanged. The message
    says ``action`` (``"publishing 3 events to 'orders'"``) and the SDK's text,
    with credentials masked::

        with translate_errors("declaring group 'billing'", unavailable=(AMQPConnectionError,)):
            channel.queue_declare(...)
    """
    try:
        yield
    except EventBusError:
        raise
    except unavailable as exc:
        raise BrokerUnavailable(_say(action, exc)) from exc
    except sdk as exc:
        raise error(_say(action, exc)) from exc


def _say(action: str, exc: BaseException) -> str:
    from ..observability._logging import redact_text

    text = str(exc) or type(exc).__name__
    return redact_text(f"{action}: {type(exc).__name__}: {text}")
