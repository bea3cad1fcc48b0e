"""The Azure Service Bus adapter, on the azure-servicebus SDK's sync client.

Mapping (details and reasons in ``docs/adapters/azure_servicebus.md``):

- one topic per bus (``topic=``, default ``eventbus``); one subscription per
  group, with a SQL rule on ``sys.Label`` for its patterns plus the exact
  check with :class:`eventbus.Matcher` here (see ``_entities``);
- a message's ``subject`` is the event type, its ``message_id`` the event id,
  its ``content_type`` the ``datacontenttype``; every CloudEvents attribute is
  an application property ``cloudEvents_<name>`` (the AMQP binding's
  JMS-compatible prefix, a plain identifier in SQL filters); on receive
  ``cloudEvents:<name>`` is read too;
- peek-lock receive; ``ack`` completes; ``nack(delay=0)`` abandons (the native
  delivery count makes ``attempt + 1``); ``nack(delay)`` schedules a copy
  addressed to this group's subscription with ``eventbus_attempt = attempt+1``
  for ``now + delay`` and completes the original; ``dead_letter`` is the native
  dead letter (``DeadLetterReason`` / ``DeadLetterErrorDescription``);
- locks of deliveries in hand are renewed in the background, up to
  ``lock_renewal`` seconds per delivery; a consumer that dies (its process
  ends) stops renewing, so its deliveries come back after ``lock_duration``;
- ``sessions=True``: per-key order through Service Bus sessions (the session
  id is the event key; see ``_sessions``): subscriptions require sessions, a
  consumer holds up to ``max_sessions`` sessions, and ``nack`` abandons (the
  retried event keeps its place in its session) instead of scheduling a copy.

Threading: ``publish`` and ``declare`` may be called from any thread (one
sender behind a lock). Each consumer has its own client and connection, used
by its thread and, between calls, by the lock renewer (a lock per consumer).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from eventbus import (
    Adapter,
    BrokerError,
    BrokerUnavailable,
    Capabilities,
    ClosedError,
    Consumer,
    Delivery,
    Matcher,
    Message,
    MessageTooLarge,
    PublishError,
    require,
)

from ._entities import (
    ATTEMPT,
    RETRY_TO,
    AdministrationEntities,
    Entities,
    ExistingEntities,
    session_for_key,
    subscription_spec,
)

if TYPE_CHECKING:
    from ._sessions import SessionConsumer

__all__ = ["CAPABILITIES", "PREFIX", "ServiceBusAdapter"]

log = logging.getLogger("eventbus.azure_servicebus")

#: Application-property prefix of CloudEvents attributes (the AMQP binding's JMS-compatible form).
PREFIX = "cloudEvents_"
_BINDING_PREFIX = "cloudEvents:"  # the AMQP binding's own prefix, read too
#: Room left under the link's max message size for the AMQP encoding of a message.
ENCODING_MARGIN = 4096
#: Room left in a batch under the link's limit: the SDK's running size of a batch can
#: come out a few bytes under what it then sends (seen with our test broker: a batch of
#: 1,020 events sized within 262,144 bytes went out as 262,146 and was refused).
BATCH_SLACK = 512
#: Standard tier's limit; Premium takes up to 100 MB (``max_message_size=``).
STANDARD_MAX_MESSAGE = 256 * 1024

CAPABILITIES = Capabilities(
    ordering_per_key=False,
    consumer_groups=True,
    persistence=True,
    replay=False,
    redelivery=True,
    native_dead_letter=True,
    delayed_delivery=True,
    max_message_size=STANDARD_MAX_MESSAGE - ENCODING_MARGIN,
    batching=True,
    dedup=False,
    lease_seconds=30.0,
    cross_process=True,
)


@contextlib.contextmanager
def _sdk_errors(what: str, cls: type[BrokerError] = BrokerError) -> Iterator[None]:
    """Turn SDK exceptions into ours, ``from`` the original."""
    try:
        yield
    except (BrokerError, MessageTooLarge, ClosedError):
        raise
    except Exception as exc:
        raise _translate(exc, what, cls) from exc


def _translate(exc: Exception, what: str, cls: type[BrokerError]) -> Exception:
    from azure.servicebus import exceptions as sbx

    name = type(exc).__name__
    text = f"{what}: {name}: {exc}"
    if isinstance(exc, sbx.MessageSizeExceededError):
        return MessageTooLarge(text)
    if isinstance(exc, sbx.MessagingEntityNotFoundError):
        return cls(
            f"{text} (the topic or subscription does not exist: create it, or let the "
            "adapter create it with entities='create' where the namespace allows management)"
        )
    unavailable = (
        sbx.ServiceBusConnectionError,
        sbx.ServiceBusCommunicationError,
        sbx.OperationTimeoutError,
        sbx.ServiceBusServerBusyError,
        ConnectionError,
        TimeoutError,
        OSError,
    )
    if isinstance(exc, unavailable):
        return BrokerUnavailable(text)
    return cls(text)


@dataclass(frozen=True)
class _Settings:
    connection_string: str
    topic: str
    lock_duration: float
    max_delivery_count: int
    max_message_size: int
    lock_renewal: float
    sessions: bool = False
    max_sessions: int = 8


class ServiceBusAdapter(Adapter):
    """A bus on one Service Bus topic.

    ``connection_string``: the namespace's (``Endpoint=sb://...;SharedAccessKeyName=...;
    SharedAccessKey=...``; add ``UseDevelopmentEmulator=true`` for the emulator or
    the test broker). ``entities``: ``"create"`` (administration client),
    ``"existing"``, or an :class:`~eventbus_azure_servicebus.Entities` object.
    ``lock_duration`` and ``max_delivery_count`` apply to subscriptions this
    adapter creates. ``lock_renewal``: renew a delivery's lock for at most this
    many seconds while its handler runs (0: never). ``sessions``: per-key
    order through sessions (subscriptions are created with ``requires_session``;
    existing ones must have it); ``max_sessions``: sessions one consumer holds
    at a time.
    """

    capabilities = CAPABILITIES

    def __init__(
        self,
        connection_string: str,
        *,
        topic: str = "eventbus",
        entities: str | Entities = "create",
        lock_duration: float = 30.0,
        max_delivery_count: int = 10,
        max_message_size: int = STANDARD_MAX_MESSAGE,
        lock_renewal: float = 300.0,
        sessions: bool = False,
        max_sessions: int = 8,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._sb = require("azure.servicebus", "azure_servicebus", "azure-servicebus")
        if not 0 < lock_duration <= 300:
            raise ValueError(
                "lock_duration must be between 0 and 300 seconds (Service Bus: 5 min max)"
            )
        if int(max_sessions) < 1:
            raise ValueError("max_sessions must be at least 1")
        self.settings = _Settings(
            connection_string, topic, float(lock_duration), int(max_delivery_count),
            int(max_message_size), float(lock_renewal), bool(sessions), int(max_sessions),
        )  # fmt: skip
        self.capabilities = CAPABILITIES.replace(
            ordering_per_key=bool(sessions),
            lease_seconds=float(lock_duration),
            max_message_size=int(max_message_size) - ENCODING_MARGIN,
        )
        self._client_kwargs = dict(client_kwargs or {})
        if isinstance(entities, str):
            if entities == "create":
                with _sdk_errors("opening the administration client"):
                    self._entities: Entities = AdministrationEntities(connection_string)
            elif entities == "existing":
                self._entities = ExistingEntities()
            else:
                raise ValueError(
                    f"entities must be 'create', 'existing' or an Entities object, not {entities!r}"
                )
        else:
            self._entities = entities
        self._lock = threading.Lock()
        self._closed = False
        self._client: Any = None
        self._sender: Any = None
        self._batch_limit: int | None = None  # the link's max message size, once known
        self._topic_ready = False
        self._declared: dict[str, tuple[str, ...]] = {}
        self._consumers: weakref.WeakSet[_ServiceBusConsumer | SessionConsumer] = weakref.WeakSet()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- clients ---------------------------------------------------------------------
    def _new_client(self) -> Any:
        return self._sb.ServiceBusClient.from_connection_string(
            self.settings.connection_string, **self._client_kwargs
        )

    def _ensure_topic(self) -> None:
        if not self._topic_ready:
            with _sdk_errors(f"creating topic {self.settings.topic!r}"):
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
                with _sdk_errors("publishing", PublishError):
                    if self._sender is None:
                        self._client = self._client or self._new_client()
                        self._sender = self._client.get_topic_sender(self.settings.topic)
                    batches = self._batches(messages)
                    for batch in batches:
                        self._sender.send_messages(batch)
            except BrokerError:
                self._drop_sender()
                raise

    def _batches(self, messages: Sequence[Message]) -> list[Any]:
        """Every message in batches before anything is sent: too large means nothing sent."""
        sbx = self._sb.exceptions
        limit = self.capabilities.max_message_size
        batches = [self._new_batch()]
        for m in messages:
            if limit is not None and m.size > limit:
                raise MessageTooLarge(
                    f"event {m.headers.get('id')!r} is {m.size} bytes; the limit is {limit}"
                )
            out = to_service_bus(self._sb, m, self.settings.sessions)
            try:
                batches[-1].add_message(out)
            except sbx.MessageSizeExceededError:
                if len(batches[-1]) == 0:
                    raise MessageTooLarge(
                        f"event {m.headers.get('id')!r} does not fit in one Service Bus message "
                        f"({self.settings.max_message_size} bytes with its attributes)"
                    ) from None
                batches.append(self._new_batch())
                try:
                    batches[-1].add_message(out)
                except sbx.MessageSizeExceededError:
                    raise MessageTooLarge(
                        f"event {m.headers.get('id')!r} does not fit in one Service Bus message"
                    ) from None
        return batches

    def _new_batch(self) -> Any:
        """An empty batch that stops ``BATCH_SLACK`` bytes short of the link's limit."""
        if self._batch_limit is None:
            self._batch_limit = self._sender.create_message_batch().max_size_in_bytes
        return self._sender.create_message_batch(
            max_size_in_bytes=max(self._batch_limit - BATCH_SLACK, 1024)
        )

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
            with _sdk_errors(f"declaring subscription {spec.name!r} for group {group!r}"):
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
        spec = self._spec(group, patterns)
        c: _ServiceBusConsumer | SessionConsumer
        if self.settings.sessions:
            from ._sessions import SessionConsumer

            c = SessionConsumer(self, spec.name, Matcher(tuple(patterns)))
        else:
            c = _ServiceBusConsumer(self, spec.name, Matcher(tuple(patterns)))
        with self._lock:
            if self._closed:
                c.close()
                raise ClosedError("the Service Bus adapter is closed")
            self._consumers.add(c)
            if self._renewer is None and self.settings.lock_renewal > 0:
                self._renewer = threading.Thread(
                    target=self._renew_loop, name="eventbus-sb-renewer", daemon=True
                )
                self._renewer.start()
        return c

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            consumers = list(self._consumers)
        for c in consumers:
            c.close()
        with self._lock:
            self._drop_sender()
            with contextlib.suppress(Exception):
                self._entities.close()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(5)

    def simulate_crash(self) -> None:
        """Stop as a dying process would: no settling, no lock renewal, connections dropped.

        For tests: the deliveries this adapter's consumers hold come back to
        their groups once their locks expire (``capabilities.lease_seconds``).
        """
        self._stop.set()
        for c in list(self._consumers):
            c._crash()

    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        name = self._spec(group, ()).name
        sbq = self._sb.ServiceBusSubQueue
        out: list[tuple[Delivery, str]] = []
        with _sdk_errors(f"reading the dead letters of {group!r}"):
            with self._new_client() as client:
                with client.get_subscription_receiver(
                    self.settings.topic, name, sub_queue=sbq.DEAD_LETTER
                ) as receiver:
                    seq = 1
                    while len(out) < limit:
                        batch = receiver.peek_messages(max_message_count=min(100, limit - len(out)),
                                                       sequence_number=seq)  # fmt: skip
                        if not batch:
                            break
                        for msg in batch:
                            reason = (
                                msg.dead_letter_error_description or msg.dead_letter_reason or ""
                            )
                            out.append((from_service_bus(msg, handle=None), reason))
                        seq = (batch[-1].sequence_number or seq) + 1
        return out

    def _dead_receiver(self, client: Any, group: str, **kw: Any) -> Any:
        return client.get_subscription_receiver(
            self.settings.topic, self._spec(group, ()).name,
            sub_queue=self._sb.ServiceBusSubQueue.DEAD_LETTER, max_wait_time=1, **kw,
        )  # fmt: skip

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Send each dead letter again, addressed to the group's subscription (as a
        retry is: ``eventbus_to``), then complete it in the dead-letter sub-queue."""
        name = self._spec(group, ()).name
        moved = 0
        with _sdk_errors(f"replaying the dead letters of {group!r}"):
            with self._new_client() as client, self._dead_receiver(client, group) as receiver, \
                    client.get_topic_sender(self.settings.topic) as sender:  # fmt: skip
                while limit is None or moved < limit:
                    want = 100 if limit is None else min(100, limit - moved)
                    batch = receiver.receive_messages(max_message_count=want, max_wait_time=1)
                    if not batch:
                        break
                    for msg in batch:
                        copy = to_service_bus(self._sb, from_service_bus(msg, None).message,
                                              self.settings.sessions)  # fmt: skip
                        copy.application_properties[RETRY_TO] = name  # no ATTEMPT: attempt 1
                        sender.send_messages(copy)
                        receiver.complete_message(msg)
                        moved += 1
        return moved

    def purge_dead_letters(self, group: str) -> int:
        purged = 0
        mode = self._sb.ServiceBusReceiveMode.RECEIVE_AND_DELETE
        with _sdk_errors(f"purging the dead letters of {group!r}"):
            with self._new_client() as client, \
                    self._dead_receiver(client, group, receive_mode=mode) as receiver:  # fmt: skip
                while batch := receiver.receive_messages(max_message_count=100, max_wait_time=1):
                    purged += len(batch)
        return purged

    def delete_group(self, group: str) -> None:
        """Delete the group's subscription (its messages and dead letters go with it).

        Needs entities that can delete (``entities="create"`` or the test broker);
        with ``entities="existing"`` eventbus removes nothing.
        """
        delete = getattr(self._entities, "delete_subscription", None)
        if delete is None:
            raise NotImplementedError(
                f"{type(self._entities).__name__} does not delete subscriptions "
                "(entities='existing': remove it with your own tools)"
            )
        name = self._spec(group, ()).name
        with self._lock:
            self._declared.pop(group, None)
        with _sdk_errors(f"deleting subscription {name!r} of group {group!r}"):
            delete(self.settings.topic, name)

    # -- lock renewal --------------------------------------------------------------------
    def _renew_loop(self) -> None:
        period = max(0.2, min(self.settings.lock_duration / 4, 5.0))
        while not self._stop.wait(period):
            for c in list(self._consumers):
                try:
                    c._renew_due()
                except Exception as exc:  # a failed renewal only means the lease may lapse
                    log.debug("lock renewal failed: %s", exc)


def to_service_bus(sb: Any, m: Message, sessions: bool = False) -> Any:
    """Our message as a ``ServiceBusMessage`` (with ``sessions``: in its key's session)."""
    props: dict[str, Any] = {PREFIX + k: v for k, v in m.headers.items()}
    event_id = m.headers.get("id")
    return sb.ServiceBusMessage(
        m.body,
        application_properties=props,
        subject=m.topic,
        message_id=event_id if event_id and len(event_id) <= 128 else None,
        content_type=m.headers.get("datacontenttype"),
        session_id=session_for_key(m.key) if sessions else None,
    )


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _body(msg: Any) -> bytes:
    raw = msg.raw_amqp_message
    kind = str(getattr(raw, "body_type", "data")).lower()
    body = raw.body
    if "data" in kind:
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        return b"".join(bytes(part) for part in (body or ()))
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return repr(body).encode("utf-8")  # an AMQP value or sequence: readable, never evaluated


def from_service_bus(msg: Any, handle: Any) -> Delivery:
    """A received ``ServiceBusReceivedMessage`` as a Delivery; trusts nothing in it."""
    headers: dict[str, str] = {}
    base_attempt = 1
    for key, value in (msg.application_properties or {}).items():
        name = _text(key)
        if name == ATTEMPT:
            with contextlib.suppress(TypeError, ValueError):
                base_attempt = max(1, int(_text(value)))
            continue
        if name.startswith(PREFIX) and len(name) > len(PREFIX):
            headers[name[len(PREFIX) :]] = _text(value)  # ours wins over the binding's form
        elif name.startswith(_BINDING_PREFIX) and len(name) > len(_BINDING_PREFIX):
            headers.setdefault(name[len(_BINDING_PREFIX) :], _text(value))
    if "datacontenttype" not in headers and headers and msg.content_type:
        headers["datacontenttype"] = _text(msg.content_type)
    subject = msg.subject
    topic = _text(subject) if subject is not None else ""
    message = Message(
        topic=topic, body=_body(msg), headers=headers, key=headers.get("partitionkey")
    )
    attempt = base_attempt + int(msg.delivery_count or 0)
    return Delivery(message, attempt, handle)


class Member(Consumer):
    """What both kinds of consumer share: their adapter, subscription, matcher and lock."""

    def __init__(self, adapter: ServiceBusAdapter, subscription: str, matcher: Matcher) -> None:
        self._a = adapter
        self._sub = subscription
        self._matcher = matcher
        self._lock = threading.Lock()  # SDK calls: this consumer's thread and the renewer
        self._closed = False
        self._crashed = False

    def _check(self) -> None:
        if self._closed:
            raise ClosedError("consumer is closed")

    @staticmethod
    def _dead_letter_args(reason: str) -> dict[str, str]:
        """``DeadLetterReason`` (first line, 1 KiB) and ``DeadLetterErrorDescription`` (4 KiB)."""
        first_line = reason.splitlines()[0] if reason else "dead-lettered"
        return {"reason": first_line[:1024], "error_description": reason[:4096]}


class _ServiceBusConsumer(Member):
    """A member of a group: one receiver on the group's subscription."""

    def __init__(self, adapter: ServiceBusAdapter, subscription: str, matcher: Matcher) -> None:
        super().__init__(adapter, subscription, matcher)
        self._held: dict[int, tuple[Any, float]] = {}  # id(msg) -> (msg, received at)
        with _sdk_errors(f"opening a receiver on subscription {subscription!r}", BrokerUnavailable):
            self._client = adapter._new_client()
            self._receiver = self._client.get_subscription_receiver(
                adapter.settings.topic, subscription, prefetch_count=0
            )
            # open the link now: the SDK bounds link setup by a receive's wait time
            self._receiver.__enter__()
        self._sender: Any = None

    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        if self._closed:
            raise ClosedError("consumer is closed")
        out: list[Delivery] = []
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            wait = max(0.05, deadline - time.monotonic())
            with self._lock:
                if self._closed:
                    raise ClosedError("consumer is closed")
                with _sdk_errors(f"receiving from subscription {self._sub!r}", BrokerUnavailable):
                    got = self._receiver.receive_messages(
                        max_message_count=max(1, max_messages), max_wait_time=wait
                    )
                now = time.monotonic()
                foreign = []
                for msg in got:
                    d = from_service_bus(msg, msg)
                    if self._matcher(d.message.topic):
                        self._held[id(msg)] = (msg, now)
                        out.append(d)
                    else:
                        foreign.append(msg)
                for msg in foreign:  # the coarse SQL rule let it in; the exact pattern does not
                    with _sdk_errors("completing an event of another pattern"):
                        self._settle(msg, "complete")
            if out or time.monotonic() >= deadline or not got:
                return out

    # -- settling (the caller holds self._lock) ------------------------------------------
    def _settle(self, msg: Any, how: str, **kw: Any) -> None:
        sbx = self._a._sb.exceptions
        try:
            if how == "complete":
                self._receiver.complete_message(msg)
            elif how == "abandon":
                self._receiver.abandon_message(msg)
            else:
                self._receiver.dead_letter_message(msg, **kw)
        except (sbx.MessageLockLostError, sbx.MessageAlreadySettled) as exc:
            # the lock ran out: the broker gives the message to the group again
            log.warning(
                "could not %s a message of %r (%s); it will be redelivered", how, self._sub, exc
            )
        finally:
            self._held.pop(id(msg), None)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        with self._lock:
            self._check()
            for d in deliveries:
                with _sdk_errors(f"completing a message of {self._sub!r}"):
                    self._settle(d.handle, "complete")

    def nack(self, delivery: Delivery, delay: float) -> None:
        with self._lock:
            self._check()
            msg = delivery.handle
            if delay <= 0:
                with _sdk_errors(f"abandoning a message of {self._sub!r}"):
                    self._settle(msg, "abandon")
                return
            copy = to_service_bus(self._a._sb, delivery.message)
            copy.application_properties[RETRY_TO] = self._sub
            copy.application_properties[ATTEMPT] = delivery.attempt + 1
            when = datetime.now(timezone.utc) + timedelta(seconds=delay)
            with _sdk_errors(f"scheduling a retry for {self._sub!r}"):
                if self._sender is None:
                    self._sender = self._client.get_topic_sender(self._a.settings.topic)
                self._sender.schedule_messages(copy, when)
                self._settle(msg, "complete")

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        with self._lock:
            self._check()
            with _sdk_errors(f"dead-lettering a message of {self._sub!r}"):
                self._settle(delivery.handle, "dead_letter", **self._dead_letter_args(reason))

    # -- lock renewal ----------------------------------------------------------------------
    def _renew_due(self) -> None:
        if self._closed or not self._held:
            return
        if not self._lock.acquire(timeout=0.5):
            return
        try:
            limit = self._a.settings.lock_renewal
            half = timedelta(seconds=self._a.settings.lock_duration / 2)
            now_utc = datetime.now(timezone.utc)
            now = time.monotonic()
            for msg, received in list(self._held.values()):
                if now - received > limit or self._closed:
                    continue
                until = msg.locked_until_utc
                if until is not None and until - now_utc > half:
                    continue
                try:
                    self._receiver.renew_message_lock(msg)
                except Exception as exc:  # lost already: the message will come back
                    log.debug("renewing a lock on %r failed: %s", self._sub, exc)
        finally:
            self._lock.release()

    # -- closing ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = [m for m, _ in self._held.values()]
            if not self._crashed:
                for msg in held:  # unsettled deliveries go back to the group now
                    with contextlib.suppress(Exception):
                        self._settle(msg, "abandon")
            self._held.clear()
            self._close_handles()

    def _close_handles(self) -> None:
        for handle in (self._sender, self._receiver, self._client):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._sender = None

    def _crash(self) -> None:
        self._crashed = True
        with self._lock:
            self._closed = True
            self._held.clear()
            self._close_handles()
