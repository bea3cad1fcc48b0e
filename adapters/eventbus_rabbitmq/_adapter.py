"""The RabbitMQ adapter (pika).

Mapping (docs/adapters/rabbitmq.md says why):

- every event goes to one durable topic exchange, routing key = event type;
- a group is a durable queue ``<prefix><group>`` bound by the group's patterns
  (RabbitMQ's topic matching is exactly ours); its members compete on it;
- CloudEvents attributes travel as ``cloudEvents:<name>`` headers, except
  ``datacontenttype``, which is the AMQP ``content_type`` property;
- messages are persistent, publisher confirms are pipelined (``_publisher``);
- ``nack(delay)`` republishes the event, with ``eventbus-attempt`` + 1, into a
  TTL queue per delay bucket that dead-letters back into the group's queue;
- ``dead_letter`` republishes into ``<queue>:dead`` with the reason in headers;
- ``attempt`` = ``eventbus-attempt`` + the broker's redelivery count
  (``x-delivery-count`` on quorum queues, the ``redelivered`` flag on classic).

Threading: the adapter (``publish``, ``declare``, ``dead_letters``, ``close``)
is thread-safe. Each :class:`RabbitMQConsumer` owns a ``BlockingConnection``
used by its worker thread, and by the adapter's *keeper* thread only while the
worker is not inside pika (one lock per consumer): the keeper answers
heartbeats while handlers run and enforces the lease, so a slow handler does
not lose its connection and a consumer that stops without closing hands its
deliveries back after ``lease`` seconds, as on every other adapter.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TypeVar

from eventbus import (
    Adapter,
    BrokerError,
    ClosedError,
    Consumer,
    Delivery,
    Matcher,
    Message,
    MessageTooLarge,
    require,
)

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika  # type: ignore[import-untyped]  # noqa: E402
import pika.exceptions as pex  # type: ignore[import-untyped]  # noqa: E402

from ._errors import PIKA_ERRORS, wrap  # noqa: E402
from ._publisher import Outgoing, Publisher  # noqa: E402
from ._settings import MAX_HEADER_SIZE, RabbitMQSettings  # noqa: E402
from ._wire import (  # noqa: E402
    H_ATTEMPT,
    H_DEAD_AT,
    H_DELAY,
    H_GROUP,
    H_REASON,
    H_TOPIC,
    MAX_REASON,
    Handle,
    carried,
    delay_bucket,
    from_amqp,
    republished,
    text,
    to_int,
    to_properties,
)

__all__ = ["RabbitMQAdapter", "RabbitMQConsumer", "delay_bucket"]

log = logging.getLogger("eventbus.rabbitmq")
T = TypeVar("T")


# -- the consumer --------------------------------------------------------------------------
class RabbitMQConsumer(Consumer):
    """A member of a group: one connection, one consuming channel, one confirm channel."""

    def __init__(self, adapter: RabbitMQAdapter, group: str, patterns: Sequence[str]) -> None:
        self._a = adapter
        self._s = adapter.settings
        self.group = group
        self._queue = self._s.queue(group)
        self._matcher = Matcher(patterns)
        self._lock = threading.Lock()  # held for every pika call (worker or keeper)
        self._buffer: deque[tuple[int, str, bool, Any, bytes]] = deque()
        self._held: dict[int, float] = {}  # delivery tag -> when handed out, oldest first
        self._consuming = False
        self._closed = False
        self._broken: BrokerError | None = None
        self._last_io = self._last_receive = time.monotonic()
        self._pub: Any = None
        self._conn: Any = None
        try:
            self._conn = pika.BlockingConnection(adapter._parameters(f"consumer {group}"))
            self._ch = self._conn.channel()
        except PIKA_ERRORS as exc:
            if self._conn is not None:
                self._drop()
            raise wrap(exc, f"connecting a consumer of group {group!r}") from exc

    # -- the worker thread ------------------------------------------------------------
    def receive(self, max_messages: int, timeout: float) -> list[Delivery]:
        with self._lock:
            self._usable()
            try:
                if not self._consuming:
                    self._start(max_messages)
                if not self._buffer:  # pump at least once, even with timeout 0
                    deadline = time.monotonic() + timeout
                    while True:
                        left = max(0.0, deadline - time.monotonic())
                        self._conn.process_data_events(time_limit=left)
                        if self._buffer or self._broken is not None or left == 0.0:
                            break
                if self._broken is not None:  # cancelled by the broker meanwhile
                    self._drop()
                    self._usable()
                now = self._last_io = self._last_receive = time.monotonic()
                return self._take(max_messages, now)
            except PIKA_ERRORS as exc:
                raise self._fail(exc, "receiving") from exc

    def _start(self, max_messages: int) -> None:
        self._ch.basic_qos(prefetch_count=self._s.prefetch or max(1, min(max_messages, 65535)))
        self._ch.add_on_cancel_callback(self._on_cancelled)
        self._ch.basic_consume(self._queue, self._on_message)
        self._consuming = True

    def _on_cancelled(self, _frame: Any) -> None:
        # the broker cancelled us: the queue was deleted (or its node went away)
        self._broken = BrokerError(f"RabbitMQ cancelled the consumer of {self._queue!r}")
        self._a._bound.pop(self.group, None)  # declare it again on the next consumer()

    def _on_message(self, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        self._buffer.append(
            (method.delivery_tag, method.routing_key, method.redelivered, props, body)
        )

    def _take(self, limit: int, now: float) -> list[Delivery]:
        out: list[Delivery] = []
        buffer, held, matcher = self._buffer, self._held, self._matcher
        while buffer and len(out) < limit:
            tag, routing_key, redelivered, props, body = buffer.popleft()
            message, attempt = from_amqp(routing_key, redelivered, props, body)
            if not matcher(message.topic):
                # bound by a pattern this group no longer has (an older deployment's binding)
                log.info("group %s: dropping %r: it matches none of %s", self.group, message.topic,
                         list(matcher.patterns))  # fmt: skip
                self._ch.basic_ack(tag)
                continue
            held[tag] = now
            out.append(Delivery(message, attempt, Handle(tag, props)))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        with self._lock:
            self._usable()
            held = self._held
            tags = sorted(d.handle.tag for d in deliveries if d.handle.tag in held)
            if not tags:
                return
            try:
                if list(itertools.islice(held, len(tags))) == tags:
                    self._ch.basic_ack(tags[-1], multiple=True)  # one frame for the batch
                else:
                    for tag in tags:
                        self._ch.basic_ack(tag)
            except PIKA_ERRORS as exc:
                raise self._fail(exc, "acking") from exc
            for tag in tags:
                del held[tag]
            self._last_io = time.monotonic()

    def nack(self, delivery: Delivery, delay: float) -> None:
        headers = carried(delivery.handle.props)
        headers[H_ATTEMPT] = delivery.attempt + 1
        headers[H_TOPIC] = delivery.message.topic
        ms = delay_bucket(delay)
        if ms:
            headers[H_DELAY] = str(ms)
            route = (self._s.delay_exchange, self._queue)
        else:
            route = ("", self._queue)
        self._move(delivery, route, headers, ms, "retrying")

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        headers = carried(delivery.handle.props)
        headers.update({
            H_REASON: reason[:MAX_REASON],
            H_GROUP: self.group,
            H_ATTEMPT: delivery.attempt,
            H_TOPIC: delivery.message.topic,
            H_DEAD_AT: datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        })  # fmt: skip
        self._move(
            delivery, ("", self._s.dead_queue_of(self._queue)), headers, -1, "dead-lettering"
        )

    def _move(
        self, delivery: Delivery, route: tuple[str, str], headers: dict[str, Any], bucket: int,
        doing: str,
    ) -> None:  # fmt: skip
        """Republish ``delivery`` to ``route`` (confirmed), then ack the original."""
        handle: Handle = delivery.handle
        with self._lock:
            self._usable()
            if handle.tag not in self._held:
                return  # already settled
            props = republished(handle.props, headers)
            try:
                if self._pub is None:
                    self._pub = self._conn.channel()
                    self._pub.confirm_delivery()
                for first_try in (True, False):
                    if bucket > 0:
                        self._a._ensure_bucket(self._pub, bucket, force=not first_try)
                    elif not first_try:
                        self._a._ensure_group(self._pub, self.group)
                    try:
                        self._pub.basic_publish(
                            *route, delivery.message.body, props, mandatory=True
                        )
                        break
                    except pex.UnroutableError:
                        if not first_try:
                            raise
                self._ch.basic_ack(handle.tag)
            except PIKA_ERRORS as exc:
                raise self._fail(exc, f"{doing} an event of group {self.group!r}") from exc
            del self._held[handle.tag]
            self._last_io = time.monotonic()

    def close(self) -> None:
        with self._lock:
            self._shut()
        self._a._forget(self)

    # -- helpers (lock held) -------------------------------------------------------------
    def _usable(self) -> None:
        if self._closed:
            raise ClosedError(f"consumer of group {self.group!r} is closed")
        if self._broken is not None:
            raise type(self._broken)(str(self._broken)) from self._broken.__cause__

    def _fail(self, exc: BaseException, doing: str) -> BrokerError:
        err = wrap(exc, f"{doing} (group {self.group!r})")
        if isinstance(exc, pex.ChannelClosedByBroker) and exc.reply_code == 404:
            self._a._bound.pop(self.group, None)  # the queue is gone: declare it again
        self._broken = err
        self._drop()
        return err

    def _drop(self) -> None:
        """Close the connection; the broker returns every unsettled delivery to the queue."""
        self._buffer.clear()
        self._held.clear()
        try:
            if self._conn.is_open:
                self._conn.close()
        except PIKA_ERRORS:
            pass

    def _shut(self) -> None:
        if not self._closed:
            self._closed = True
            self._drop()

    def _keep(self, now: float, lease: float, pump_every: float) -> None:
        """Keeper thread: expire the lease or answer heartbeats, if the worker is not in pika."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._closed or self._broken is not None:
                return
            oldest = next(iter(self._held.values()), None)
            if (oldest is not None and now - oldest > lease) or (
                self._buffer and now - self._last_receive > lease
            ):
                n = len(self._held) + len(self._buffer)
                log.warning("group %s: a consumer held %d deliveries past the %.1fs lease; "
                            "they go back to the group", self.group, n, lease)  # fmt: skip
                self._broken = BrokerError(
                    f"group {self.group!r}: the {lease:.1f}s lease ran out on {n} unsettled "
                    "deliveries; they went back to the group"
                )
                self._drop()
            elif now - self._last_io >= pump_every:
                self._conn.process_data_events(0)
                self._last_io = now
        except PIKA_ERRORS as exc:
            self._broken = wrap(exc, f"group {self.group!r}: connection lost")
            self._drop()
        finally:
            self._lock.release()

    def _abort(self) -> None:
        """Drop the TCP connection without closing the AMQP connection (a crash, for tests)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            transport = getattr(getattr(self._conn, "_impl", None), "_transport", None)
            sock = getattr(transport, "_sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    self._conn.close()
            except (OSError, *PIKA_ERRORS):
                pass


# -- the adapter ---------------------------------------------------------------------------
class RabbitMQAdapter(Adapter):
    """Events on RabbitMQ: a topic exchange, a durable queue per group. Thread-safe.

    ``RabbitMQAdapter("amqp://guest:guest@localhost/", exchange="shop", lease=60)``;
    keyword options are the fields of :class:`RabbitMQSettings`.
    """

    def __init__(
        self, url: str | None = None, *, settings: RabbitMQSettings | None = None, **options: Any
    ) -> None:
        self.settings = s = settings or RabbitMQSettings.from_url(url, options)
        self.capabilities = s.capabilities()
        self._closed = False
        self._publisher = Publisher(
            lambda: self._parameters("publisher"), s.exchange, s.confirm_timeout, s.connect_timeout
        )
        self._admin_lock = threading.Lock()
        self._admin: Any = None
        self._admin_ch: Any = None
        self._bound: dict[str, frozenset[str]] = {}  # group -> patterns this instance bound
        self._buckets: set[int] = set()  # delay buckets known to exist
        self._consumers_lock = threading.Lock()
        self._consumers: set[RabbitMQConsumer] = set()
        self._keeper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- connections --------------------------------------------------------------------
    def _parameters(self, role: str) -> Any:
        s = self.settings
        params = pika.URLParameters(s.pika_url())
        params.heartbeat = s.heartbeat
        params.socket_timeout = s.connect_timeout
        params.stack_timeout = s.connect_timeout
        params.blocked_connection_timeout = s.confirm_timeout
        params.connection_attempts = 1
        params.client_properties = {
            "product": "eventbus",
            "connection_name": f"eventbus {role} {socket.gethostname()}/{os.getpid()}",
        }
        if s.tls_configured:
            ctx = ssl.create_default_context(cafile=s.tls_ca_file)
            if s.tls_cert_file:
                ctx.load_cert_chain(s.tls_cert_file, s.tls_key_file)
            if not s.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            params.ssl_options = pika.SSLOptions(ctx, s.tls_server_hostname or params.host)
        return params

    def _admin_call(self, doing: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(channel)`` on the admin connection; reconnect once if it went stale."""
        with self._admin_lock:
            if self._closed:
                raise ClosedError("the RabbitMQ adapter is closed")
            for attempt in (1, 2):
                try:
                    if self._admin is None or not self._admin.is_open:
                        self._admin = pika.BlockingConnection(self._parameters("admin"))
                        self._admin_ch = None
                    if self._admin_ch is None or not self._admin_ch.is_open:
                        self._admin_ch = self._admin.channel()
                    return fn(self._admin_ch)
                except (pex.AMQPConnectionError, pex.ConnectionWrongStateError, OSError) as exc:
                    self._admin = None
                    if attempt == 2:
                        raise wrap(exc, doing) from exc
                except PIKA_ERRORS as exc:
                    self._admin_ch = None
                    raise wrap(exc, doing) from exc
            raise AssertionError("unreachable")

    # -- publishing ---------------------------------------------------------------------
    def publish(self, messages: Sequence[Message]) -> None:
        if self._closed:
            raise ClosedError("the RabbitMQ adapter is closed")
        if not messages:
            return
        limit = self.settings.max_message_size
        items: list[Outgoing] = []
        for m in messages:
            size = m.size
            if size > limit:
                raise MessageTooLarge(
                    f"message of {m.topic!r} is {size} bytes; this RabbitMQ adapter takes at most "
                    f"{limit} (option max_message_size)"
                )
            if size - len(m.body) > MAX_HEADER_SIZE:
                raise MessageTooLarge(
                    f"attributes of {m.topic!r} take {size - len(m.body)} bytes; AMQP carries "
                    f"them in one frame, so at most {MAX_HEADER_SIZE}"
                )
            items.append((m.topic, m.body, to_properties(m)))
        self._publisher.publish(items)

    # -- topology ---------------------------------------------------------------------------
    def declare(self, group: str, patterns: Sequence[str]) -> None:
        wanted = frozenset(Matcher(patterns).patterns)
        if self._bound.get(group) == wanted:
            return

        def run(ch: Any) -> None:
            s = self.settings
            queue, dead = s.queue(group), s.dead_queue(group)
            self._ensure_group(ch, group)
            old = self._bound.get(group, frozenset())
            for pattern in sorted(wanted - old):
                ch.queue_bind(queue, s.exchange, routing_key=pattern)
            for pattern in sorted(old - wanted):
                ch.queue_unbind(queue, s.exchange, routing_key=pattern)
            self._bound[group] = wanted
            log.debug("group %s: queue %s (dead letters: %s) bound to %s", group, queue, dead,
                      sorted(wanted))  # fmt: skip

        self._admin_call(f"declaring group {group!r}", run)

    def _ensure_group(self, ch: Any, group: str) -> None:
        s = self.settings
        queue, dead = s.queue(group), s.dead_queue(group)
        # classic is the default type: not naming it keeps queues made by other tools usable
        kind = {} if s.queue_type == "classic" else {"x-queue-type": s.queue_type}
        ch.exchange_declare(s.exchange, "topic", durable=True)
        ch.queue_declare(dead, durable=True, arguments=kind)
        args = {**s.queue_arguments(), **kind}
        if not kind:
            del args["x-queue-type"]
        args.update({"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        ch.queue_declare(queue, durable=True, arguments=args)

    def _ensure_bucket(self, ch: Any, ms: int, force: bool = False) -> None:
        if ms in self._buckets and not force:
            return
        s = self.settings
        queue = s.delay_queue(ms)
        args: dict[str, Any] = {"x-message-ttl": ms, "x-dead-letter-exchange": ""}
        if s.queue_type != "classic":  # follow the group queues' type (HA for retries too)
            args["x-queue-type"] = s.queue_type
        ch.exchange_declare(s.delay_exchange, "headers", durable=True)
        ch.queue_declare(queue, durable=True, arguments=args)
        ch.queue_bind(queue, s.delay_exchange, arguments={"x-match": "all", H_DELAY: str(ms)})
        self._buckets.add(ms)

    # -- consuming ------------------------------------------------------------------------
    def consumer(self, group: str, patterns: Sequence[str]) -> RabbitMQConsumer:
        if self._closed:
            raise ClosedError("the RabbitMQ adapter is closed")
        self.declare(group, patterns)
        c = RabbitMQConsumer(self, group, patterns)
        with self._consumers_lock:
            if self._closed:
                c._shut()
                raise ClosedError("the RabbitMQ adapter is closed")
            self._consumers.add(c)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keep, name="eventbus-rabbitmq-keeper", daemon=True
                )
                self._keeper.start()
        return c

    def _forget(self, c: RabbitMQConsumer) -> None:
        with self._consumers_lock:
            self._consumers.discard(c)

    def _keep(self) -> None:
        s = self.settings
        pump_every = s.heartbeat / 3 if s.heartbeat else 5.0
        tick = min(0.5, s.lease / 10, pump_every)
        while not self._stop.wait(tick):
            now = time.monotonic()
            with self._consumers_lock:
                consumers = list(self._consumers)
            for c in consumers:
                c._keep(now, s.lease, pump_every)
                if c._broken is not None or c._closed:
                    self._forget(c)

    # -- dead letters -------------------------------------------------------------------------
    def dead_letters(self, group: str, limit: int = 100) -> list[tuple[Delivery, str]]:
        """Peek at ``group``'s dead letters: read without ack, then hand them back.

        The messages return to the dead-letter queue when the peeking channel
        closes (RabbitMQ marks them redelivered); they are never removed here.
        """
        dead = self.settings.dead_queue(group)

        def run(ch: Any) -> list[tuple[Delivery, str]]:
            peek = ch.connection.channel()
            out: list[tuple[Delivery, str]] = []
            try:
                while len(out) < limit:
                    method, props, body = peek.basic_get(dead, auto_ack=False)
                    if method is None:
                        break
                    out.append(self._dead_entry(method.routing_key, props, body))
            except pex.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # no dead-letter queue: nothing dead-lettered yet
                    raise
            finally:
                if peek.is_open:
                    peek.close()
            return out

        return self._admin_call(f"reading dead letters of {group!r}", run)

    def replay_dead_letters(self, group: str, limit: int | None = None) -> int:
        """Republish (confirmed) up to ``limit`` dead letters to the group's queue, oldest
        first, with ``eventbus-attempt`` 1; each is acked off the dead queue only after."""
        s = self.settings
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
                    delivery, _ = self._dead_entry(method.routing_key, props, body)
                    headers = {k: v for k, v in carried(props).items()
                               if k not in (H_REASON, H_GROUP, H_DEAD_AT)}  # fmt: skip
                    headers.update({H_ATTEMPT: 1, H_TOPIC: delivery.message.topic})
                    move.basic_publish("", queue, body, republished(props, headers),
                                       mandatory=True)  # fmt: skip
                    move.basic_ack(method.delivery_tag)
                    moved += 1
            except pex.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # no dead-letter queue: nothing dead-lettered yet
                    raise
            finally:
                if move.is_open:
                    move.close()  # an unacked one (publish failed) goes back to the dead queue
            return moved

        return self._admin_call(f"replaying dead letters of {group!r}", run)

    def purge_dead_letters(self, group: str) -> int:
        dead = self.settings.dead_queue(group)

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

        return self._admin_call(f"purging dead letters of {group!r}", run)

    def delete_group(self, group: str) -> None:
        """Delete the group's queue and its dead-letter queue (with what they hold)."""
        s = self.settings

        def run(ch: Any) -> None:
            ch.queue_delete(s.queue(group))  # deleting a missing queue is not an error
            ch.queue_delete(s.dead_queue(group))
            self._bound.pop(group, None)

        self._admin_call(f"deleting group {group!r}", run)

    def _dead_entry(self, routing_key: str, props: Any, body: bytes) -> tuple[Delivery, str]:
        headers = props.headers or {}
        message, _ = from_amqp(routing_key, False, props, body)
        attempt = to_int(headers.get(H_ATTEMPT), 1) or 1
        if H_REASON in headers:  # dead-lettered by a consumer of ours
            return Delivery(message, attempt), text(headers[H_REASON])
        # dead-lettered by the broker (a quorum queue's delivery limit, a policy, ...)
        death = _first_death(headers)
        keys = death.get("routing-keys")
        if isinstance(keys, list) and keys and H_TOPIC not in headers:
            message.topic = text(keys[0])
        why = text(death.get("reason", "unknown"))
        if why == "delivery_limit" and self.settings.delivery_limit is not None:
            attempt += self.settings.delivery_limit
        return Delivery(message, attempt), f"dead-lettered by RabbitMQ: {why}"

    # -- lifecycle ---------------------------------------------------------------------------
    def simulate_crash(self) -> None:
        """Drop every connection as a killed process would (for the conformance suite)."""
        with self._consumers_lock:
            consumers = list(self._consumers)
        for c in consumers:
            c._abort()
        self._publisher.abort()

    def close(self) -> None:
        with self._consumers_lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
            self._consumers.clear()
        self._stop.set()
        if self._keeper is not None and self._keeper is not threading.current_thread():
            self._keeper.join(5)
        for c in consumers:
            with c._lock:
                c._shut()
        self._publisher.close()
        with self._admin_lock:
            try:
                if self._admin is not None and self._admin.is_open:
                    self._admin.close()
            except PIKA_ERRORS:
                pass
            self._admin = self._admin_ch = None

    def __repr__(self) -> str:
        from eventbus._config import redact

        return f"<RabbitMQAdapter {redact(self.settings.url)} exchange={self.settings.exchange!r}>"


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}
