"""The Azure Service Bus adapter, on the azure-servicebus SDK's sync client.

Mapping (details and reasons in ``docs/adapters/azure_servicebus.md``):

- one topic per bus (``topic=``, default ``eventbus``); one subscription per
  group, with a SQL rule on ``sys.Label`` for its patterns plus the exact
  check with :class:`eventbus.Matcher` in the consumer (see ``_entities``);
- messages: ``_codec``; receiving and settling: ``_consumer`` (``_sessions``
  with ``sessions=True``: per-key order through Service Bus sessions, the
  session id being the event key); dead-letter tools and ``delete_group``:
  ``_tooling``; SDK clients: ``_client``; errors: ``_errors``.

Threading: ``publish`` and ``declare`` may be called from any thread (one
sender behind a lock). Each consumer has its own client and connection, used
by its thread and, between calls, by its lock renewer (a lock per consumer).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from eventbus import (
    BrokerError,
    BrokerUnavailable,
    ClosedError,
    EncodeError,
    Matcher,
    MessageTooLarge,
    PublishError,
)
from eventbus.adapter import Adapter, Consumer, Delivery, Message

from ._client import Clients
from ._codec import to_service_bus
from ._consumer import Member, ServiceBusConsumer
from ._entities import AdministrationEntities, Entities, ExistingEntities, subscription_spec
from ._errors import sdk_errors
from ._settings import BATCH_CAP, CAPABILITIES, ENCODING_MARGIN, ServiceBusSettings
from ._tooling import Tooling

__all__ = ["ServiceBusAdapter"]

log = logging.getLogger("eventbus.azure_servicebus")

#: Room left in a batch under the link's limit: the SDK's running size of a batch can
#: come out a few bytes under what it then sends (seen with our test broker: a batch of
#: 1,020 events sized within 262,144 bytes went out as 262,146 and was refused).
BATCH_SLACK = 512


class ServiceBusAdapter(Adapter):
    """A bus on one Service Bus topic.

    ``ServiceBusAdapter(settings)`` with :class:`ServiceBusSettings`, or, from
    code, ``ServiceBusAdapter(connection_string, **options)`` with the same
    options (``entities`` and ``credential`` may then be objects; see the
    settings for each).
    """

    capabilities = CAPABILITIES

    def __init__(self, settings: ServiceBusSettings | str | None = None, **options: Any) -> None:
        if not isinstance(settings, ServiceBusSettings):
            if settings is not None:
                options = {"connection_string": settings, **options}
            settings = ServiceBusSettings.from_url(None, options)
        elif options:
            raise TypeError("ServiceBusAdapter(settings) takes no other options")
        self.settings = settings
        self._clients = Clients(settings)
        self._sb = self._clients.sb
        self.capabilities = CAPABILITIES.replace(
            ordering_per_key=settings.sessions,
            lease_seconds=settings.lock_duration,
            max_message_size=settings.max_message_size - ENCODING_MARGIN,
        )
        entities = settings.entities
        if entities == "create":
            with sdk_errors("opening the administration client"):
                self._entities: Entities = AdministrationEntities(
                    client=self._clients.administration()
                )
        elif entities == "existing":
            self._entities = ExistingEntities()
        else:
            self._entities = entities
        self._tooling = Tooling(self._clients, self._entities)
        self._lock = threading.Lock()
        self._closed = False
        self._client: Any = None
        self._sender: Any = None
        self._batch_limit: int | None = None  # the link's batch limit, once known
        self._topic_ready = False
        self._declared: dict[str, tuple[str, ...]] = {}
        self._consumers: weakref.WeakSet[Member] = weakref.WeakSet()

    def _ensure_topic(self) -> None:
        if not self._topic_ready:
            with sdk_errors(f"creating topic {self.settings.topic!r}"):
                self._entities.ensure_topic(self.settings.topic)
            self._topic_ready = True

    # -- Adapter -------------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        if not messages:
            return
        with self._lock:
            if self._closed:
                raise ClosedError("the Service Bus adapter is closed")
            self._ensure_topic()
            try:
                with sdk_errors("publishing", PublishError):
                    if self._sender is None:
                        self._client = self._client or self._clients.client()
                        self._sender = self._client.get_topic_sender(self.settings.topic)
                    for item in self._batches(messages):
                        self._sender.send_messages(item)
            except BrokerError as exc:
                self._drop_sender()
                if isinstance(exc, BrokerUnavailable):
                    self._clients.reachability.lost(exc)
                raise
            if self._clients.reachability.down:
                self._clients.reachability.back()

    def _batches(self, messages: Sequence[Message]) -> list[Any]:
        """Every message in batches (or alone) before anything is sent: too large means
        nothing sent. An event too large for a batch (1 MB) but within ``max_message_size``
        (Premium: up to 100 MB) is sent alone."""
        sbx = self._sb.exceptions
        limit = self.capabilities.max_message_size
        batch = self._new_batch()
        items = [batch]
        m = messages[0]
        try:
            for m in messages:
                if limit is not None and m.size > limit:
                    raise MessageTooLarge(
                        f"event {m.headers.get('id')!r} is {m.size} bytes; the limit is {limit}"
                    )
                out = to_service_bus(self._sb, m, self.settings.sessions)
                try:
                    batch.add_message(out)
                    continue
                except sbx.MessageSizeExceededError:
                    pass
                if len(batch) > 0:  # full: the next batch
                    batch = self._new_batch()
                    items.append(batch)
                    try:
                        batch.add_message(out)
                        continue
                    except sbx.MessageSizeExceededError:
                        pass
                if self.settings.max_message_size <= BATCH_CAP:  # Standard: the batch is the limit
                    raise MessageTooLarge(
                        f"event {m.headers.get('id')!r} does not fit in one Service Bus "
                        f"message ({self.settings.max_message_size} bytes with its attributes)"
                    )
                items[-1] = out  # larger than any batch: alone, in its place
                batch = self._new_batch()
                items.append(batch)
        except UnicodeEncodeError as exc:  # a lone surrogate: not UTF-8, so not sendable
            raise EncodeError(
                f"event {m.headers.get('id')!r}: an attribute or the body is not valid "
                f"UTF-8 text ({exc.reason}: {exc.object[exc.start : exc.end]!r})"
            ) from None
        if len(batch) == 0:
            items.pop()
        return items

    def _new_batch(self) -> Any:
        """An empty batch that stops ``BATCH_SLACK`` bytes short of the SDK's batch limit
        (the link's max message size, at most 1 MB: Service Bus's batch limit on every tier)."""
        if self._batch_limit is None:
            self._batch_limit = int(self._sender.create_message_batch().max_size_in_bytes)
        cap = min(self._batch_limit, BATCH_CAP)
        return self._sender.create_message_batch(max_size_in_bytes=max(cap - BATCH_SLACK, 1024))

    def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        client, self._client = self._client, None
        for handle in (sender, client):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()

    def declare(self, group: str, patterns: Sequence[str]) -> None:
        patterns = tuple(dict.fromkeys(patterns))
        with self._lock:
            if self._closed:
                raise ClosedError("the Service Bus adapter is closed")
            if self._declared.get(group) == patterns:
                return
            self._ensure_topic()
            spec = self._spec(group, patterns)
            with sdk_errors(f"declaring subscription {spec.name!r} for group {group!r}"):
                self._entities.ensure_subscription(spec)
            self._declared[group] = patterns

    def _spec(self, group: str, patterns: Sequence[str]) -> Any:
        s = self.settings
        return subscription_spec(
            s.topic,
            group,
            patterns,
            lock_duration=s.lock_duration,
            max_delivery_count=s.max_delivery_count,
            requires_session=s.sessions,
        )

    def consumer(self, group: str, patterns: Sequence[str]) -> Consumer:
        self.declare(group, patterns)
        name = self._spec(group, patterns).name
        c: Member
        if self.settings.sessions:
            from ._sessions import SessionConsumer

            c = SessionConsumer(self._clients, name, Matcher(tuple(patterns)))
        else:
            c = ServiceBusConsumer(self._clients, name, Matcher(tuple(patterns)))
        with self._lock:
            if self._closed:
                c.close()
                raise ClosedError("the Service Bus adapter is closed")
            self._consumers.add(c)
        return c

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
        for c in consumers:
            c.close()
        with self._lock:
            self._drop_sender()
            with contextlib.suppress(Exception):
                self._entities.close()

    def simulate_crash(self) -> None:
        """Stop as a dying process would: no settling, no lock renewal, connections dropped.

        For tests: the deliveries this adapter's consumers hold come back to
        their groups once their locks expire (``capabilities.lease_seconds``).
        """
        for c in list(self._consumers):
            c.crash()

    # -- tooling (DeadLetterTools, GroupAdmin) ----------------------------------------------
    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        return self._tooling.dead_letters(group, limit)

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        return self._tooling.replay_dead_letters(group, limit)

    def purge_dead_letters(self, group: str) -> int:
        return self._tooling.purge_dead_letters(group)

    def delete_group(self, group: str) -> None:
        with self._lock:
            self._declared.pop(group, None)
        self._tooling.delete_group(group)
