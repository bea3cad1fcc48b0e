"""Dead-letter tools and ``delete_group`` (the adapter's optional tooling).

Dead letters are a subscription's ``$DeadLetterQueue`` sub-queue: read with
peek (nothing changes), replayed as a copy addressed to the group's
subscription (``eventbus_to``, as a retry is) then completed, or purged with
receive-and-delete. ``delete_group`` deletes the subscription, through the
entities manager (``entities="create"`` or a manager that can delete).
"""

from __future__ import annotations

from typing import Any

from eventbus import ConfigError
from eventbus.adapter import Delivery

from ._client import Clients
from ._codec import RETRY_TO, from_service_bus, to_service_bus
from ._entities import Entities, subscription_name
from ._errors import sdk_errors
from ._settings import ServiceBusSettings

__all__ = ["Tooling"]

_PAGE = 100


class Tooling:
    """``DeadLetterTools`` and ``GroupAdmin`` on one topic (each call its own client)."""

    def __init__(self, clients: Clients, entities: Entities) -> None:
        self._clients = clients
        self._settings: ServiceBusSettings = clients.settings
        self._entities = entities

    def _dead_receiver(self, client: Any, group: str, **kw: Any) -> Any:
        sb = self._clients.sb
        return client.get_subscription_receiver(
            self._settings.topic,
            subscription_name(group),
            sub_queue=sb.ServiceBusSubQueue.DEAD_LETTER,
            max_wait_time=1,
            **kw,
        )

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        out: list[tuple[Delivery, str]] = []
        with sdk_errors(f"reading the dead letters of {group!r}"):
            with self._clients.client() as client, self._dead_receiver(client, group) as receiver:
                seq = 1
                while len(out) < limit:
                    batch = receiver.peek_messages(
                        max_message_count=min(_PAGE, limit - len(out)), sequence_number=seq
                    )
                    if not batch:
                        break
                    for msg in batch:
                        reason = msg.dead_letter_error_description or msg.dead_letter_reason or ""
                        out.append((from_service_bus(msg, handle=None), reason))
                    seq = (batch[-1].sequence_number or seq) + 1
        return out

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Send each dead letter again, addressed to the group's subscription (as a
        retry is: ``eventbus_to``), then complete it in the dead-letter sub-queue."""
        name = subscription_name(group)
        sb = self._clients.sb
        moved = 0
        with sdk_errors(f"replaying the dead letters of {group!r}"):
            with (
                self._clients.client() as client,
                self._dead_receiver(client, group) as receiver,
                client.get_topic_sender(self._settings.topic) as sender,
            ):
                while limit is None or moved < limit:
                    want = _PAGE if limit is None else min(_PAGE, limit - moved)
                    batch = receiver.receive_messages(max_message_count=want, max_wait_time=1)
                    if not batch:
                        break
                    for msg in batch:
                        message = from_service_bus(msg, None).message
                        copy = to_service_bus(sb, message, self._settings.sessions, copy=True)
                        copy.application_properties[RETRY_TO] = name  # no ATTEMPT: attempt 1
                        sender.send_messages(copy)
                        receiver.complete_message(msg)
                        moved += 1
        return moved

    def purge_dead_letters(self, group: str) -> int:
        purged = 0
        mode = self._clients.sb.ServiceBusReceiveMode.RECEIVE_AND_DELETE
        with sdk_errors(f"purging the dead letters of {group!r}"):
            with (
                self._clients.client() as client,
                self._dead_receiver(client, group, receive_mode=mode) as receiver,
            ):
                while batch := receiver.receive_messages(max_message_count=_PAGE, max_wait_time=1):
                    purged += len(batch)
        return purged

    def delete_group(self, group: str) -> None:
        """Delete the group's subscription (its messages and dead letters go with it).

        Needs entities that can delete (``entities="create"`` or the test broker);
        with ``entities="existing"`` eventbus removes nothing: :class:`~eventbus.ConfigError`.
        """
        delete = getattr(self._entities, "delete_subscription", None)
        if delete is None:
            raise ConfigError(
                f"azure_servicebus: delete_group needs entities that can delete subscriptions; "
                f"{type(self._entities).__name__} cannot (with entities='existing', remove "
                "the subscription with your own tools, or use entities='create')"
            )
        name = subscription_name(group)
        with sdk_errors(f"deleting subscription {name!r} of group {group!r}"):
            delete(self._settings.topic, name)
