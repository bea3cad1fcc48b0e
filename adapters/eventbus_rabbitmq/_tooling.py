"""The dead-letter tools and ``delete_group``, run on the adapter's admin connection.

A group's dead letters are the messages of its ``<queue>:dead`` queue: put there
by a consumer of ours (with the reason in ``eventbus-reason``) or by RabbitMQ
itself (a quorum queue's delivery limit, a policy: the reason is in ``x-death``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventbus.adapter import (
    H_ATTEMPT,
    H_FAILED_AT,
    H_GROUP,
    H_REASON,
    H_TOPIC,
    Delivery,
    make_delivery,
    require,
)

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika.exceptions as pex  # type: ignore[import-untyped]  # noqa: E402

from ._client import Admin, Topology  # noqa: E402
from ._codec import H_DEAD_AT_OLD, carried, from_amqp, republished, text, to_int  # noqa: E402
from ._settings import RabbitMQSettings  # noqa: E402

__all__ = ["dead_letters", "delete_group", "purge_dead_letters", "replay_dead_letters"]

_DEAD_ONLY = (H_REASON, H_GROUP, H_FAILED_AT, H_DEAD_AT_OLD)  # dropped when replayed


def dead_letters(
    admin: Admin, s: RabbitMQSettings, group: str, limit: int
) -> list[tuple[Delivery, str]]:
    """Peek at ``group``'s dead letters: read without ack, then hand them back.

    The messages return to the dead-letter queue when the peeking channel
    closes (RabbitMQ marks them redelivered); they are never removed here.
    """
    dead = s.dead_queue(group)

    def run(ch: Any) -> list[tuple[Delivery, str]]:
        peek = ch.connection.channel()
        out: list[tuple[Delivery, str]] = []
        try:
            while len(out) < limit:
                method, props, body = peek.basic_get(dead, auto_ack=False)
                if method is None:
                    break
                out.append(_dead_entry(s, method.routing_key, props, body))
        except pex.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:  # no dead-letter queue: nothing dead-lettered yet
                raise
        finally:
            if peek.is_open:
                peek.close()
        return out

    return admin.call(f"reading dead letters of {group!r}", run)


def replay_dead_letters(admin: Admin, s: RabbitMQSettings, group: str, limit: int | None) -> int:
    """Republish (confirmed) up to ``limit`` dead letters to the group's queue, oldest
    first, with ``eventbus-attempt`` 1; each is acked off the dead queue only after."""
    queue, dead = s.queue(group), s.dead_queue(group)

    def run(ch: Any) -> int:
        move = ch.connection.channel()
        move.confirm_delivery()
        moved = 0
        try:
            while limit is None or moved < limit:
                method, props, body = move.basic_get(dead, auto_ack=False)
                if method is None:
                    break
                delivery, _ = _dead_entry(s, method.routing_key, props, body)
                headers = {k: v for k, v in carried(props).items() if k not in _DEAD_ONLY}
                headers.update({H_ATTEMPT: 1, H_TOPIC: delivery.message.topic})
                move.basic_publish("", queue, body, republished(props, headers), mandatory=True)
                move.basic_ack(method.delivery_tag)
                moved += 1
        except pex.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:  # no dead-letter queue: nothing dead-lettered yet
                raise
        finally:
            if move.is_open:
                move.close()  # an unacked one (publish failed) goes back to the dead queue
        return moved

    return admin.call(f"replaying dead letters of {group!r}", run)


def purge_dead_letters(admin: Admin, s: RabbitMQSettings, group: str) -> int:
    dead = s.dead_queue(group)

    def run(ch: Any) -> int:
        purge = ch.connection.channel()
        try:
            return int(purge.queue_purge(dead).method.message_count)
        except pex.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            return 0
        finally:
            if purge.is_open:
                purge.close()

    return admin.call(f"purging dead letters of {group!r}", run)


def delete_group(admin: Admin, topology: Topology, group: str) -> None:
    """Delete the group's queue and its dead-letter queue (with what they hold)."""
    s = topology.settings

    def run(ch: Any) -> None:
        ch.queue_delete(s.queue(group))  # deleting a missing queue is not an error
        ch.queue_delete(s.dead_queue(group))
        topology.forget(group)

    admin.call(f"deleting group {group!r}", run)


def _dead_entry(
    s: RabbitMQSettings, routing_key: str, props: Any, body: bytes
) -> tuple[Delivery, str]:
    headers = props.headers or {}
    message, _ = from_amqp(routing_key, False, props, body)
    attempt = to_int(headers.get(H_ATTEMPT), 1) or 1
    if H_REASON in headers:  # dead-lettered by a consumer of ours
        return make_delivery(message, attempt), text(headers[H_REASON])
    # dead-lettered by the broker (a quorum queue's delivery limit, a policy, ...)
    death = _first_death(headers)
    keys = death.get("routing-keys")
    if isinstance(keys, list) and keys and H_TOPIC not in headers:
        message.topic = text(keys[0])
    why = text(death.get("reason", "unknown"))
    if why == "delivery_limit" and s.delivery_limit is not None:
        attempt += s.delivery_limit
    return make_delivery(message, attempt), f"dead-lettered by RabbitMQ: {why}"


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}
