"""Pika's exceptions turned into eventbus's (SDK exceptions never reach the caller raw).

:func:`wrap` picks our exception class and a hint for the RabbitMQ cases worth
explaining (a refused login, a queue declared with other settings), then lets
:func:`eventbus.adapter.translate_errors` word it (credentials masked) and chain it.
"""

from __future__ import annotations

from eventbus import BrokerError, PublishError
from eventbus.adapter import require, translate_errors

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika.exceptions as pex  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["PIKA_ERRORS", "UNAVAILABLE", "wrap"]

#: What a pika call can raise (sockets fail with OSError underneath).
PIKA_ERRORS: tuple[type[BaseException], ...] = (pex.AMQPError, OSError)
#: Pika's "could not reach the broker" exceptions.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    pex.AMQPConnectionError,
    pex.ConnectionWrongStateError,
    OSError,
)

_REFUSED_LOGIN = (
    pex.ProbableAuthenticationError,
    pex.ProbableAccessDeniedError,
    pex.AuthenticationError,
)


def wrap(exc: BaseException, doing: str) -> BrokerError:
    """Our exception for a pika (or socket) failure while ``doing`` something, ``from`` it."""
    if isinstance(exc, BrokerError):
        return exc
    kind: type[BrokerError] = BrokerError
    unavailable = UNAVAILABLE
    if isinstance(exc, (pex.UnroutableError, pex.NackError)):
        kind, doing = PublishError, f"{doing}: RabbitMQ did not take the message"
    elif isinstance(exc, _REFUSED_LOGIN):
        # not worth retrying: the URL's user, password or vhost is wrong
        unavailable = ()
        doing = (
            f"{doing}: RabbitMQ refused the login or the vhost; check the URL's user, "
            "password and vhost"
        )
    elif isinstance(exc, pex.ChannelClosedByBroker):
        doing = f"{doing}: RabbitMQ refused"
        if exc.reply_code == 406 and "inequivalent" in str(exc.reply_text):
            doing += (
                " (it exists with other settings (queue_type, delivery_limit or exchange "
                "type): delete it, or configure the adapter as it was declared)"
            )
        elif exc.reply_code == 403:
            doing += " (the user lacks a permission on the vhost; see the adapter's docs)"
    try:
        with translate_errors(doing, unavailable=unavailable, error=kind, sdk=(Exception,)):
            raise exc
    except BrokerError as err:
        return err
    raise AssertionError("unreachable")  # pragma: no cover
