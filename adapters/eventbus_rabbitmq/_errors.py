"""Pika's exceptions turned into eventbus's (SDK exceptions never reach the caller raw)."""

from __future__ import annotations

from eventbus import BrokerError, BrokerUnavailable, PublishError, require

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika.exceptions as pex  # type: ignore[import-untyped]  # noqa: E402

__all__ = ["PIKA_ERRORS", "wrap"]

#: What a pika call can raise (sockets fail with OSError underneath).
PIKA_ERRORS = (pex.AMQPError, OSError)

_REFUSED_LOGIN = (pex.ProbableAuthenticationError, pex.ProbableAccessDeniedError,
                  pex.AuthenticationError)  # fmt: skip


def wrap(exc: BaseException, doing: str) -> BrokerError:
    """Our exception for a pika (or socket) failure while ``doing`` something, ``from`` it."""
    if isinstance(exc, BrokerError):
        return exc
    err: BrokerError
    if isinstance(exc, (pex.UnroutableError, pex.NackError)):
        err = PublishError(f"{doing}: RabbitMQ did not take the message ({exc!r})")
    elif isinstance(exc, _REFUSED_LOGIN):
        # not worth retrying: the URL's user, password or vhost is wrong
        err = BrokerError(
            f"{doing}: RabbitMQ refused the login or the vhost; check the URL's user, "
            f"password and vhost ({exc!r})"
        )
    elif isinstance(exc, pex.ChannelClosedByBroker):
        hint = ""
        if exc.reply_code == 406 and "inequivalent" in str(exc.reply_text):
            hint = (
                "; it exists with other settings (queue_type, delivery_limit or exchange "
                "type): delete it, or configure the adapter as it was declared"
            )
        err = BrokerError(f"{doing}: RabbitMQ refused: {exc.reply_code} {exc.reply_text}{hint}")
    elif isinstance(exc, (pex.AMQPConnectionError, pex.ConnectionWrongStateError, OSError)):
        err = BrokerUnavailable(f"{doing}: connection to RabbitMQ failed: {exc!r}")
    else:
        err = BrokerError(f"{doing}: {exc!r}")
    err.__cause__ = exc
    return err
