"""A member of a group: one connection, one consuming channel, one confirm channel.

The consumer gets what it needs when made: the settings, the adapter's
:class:`~._client.Topology` (to declare a delay bucket or a deleted queue again),
a function making connection parameters, and a callback for when it closes.

Threading: the connection is used by the worker thread, and by the adapter's
*keeper* thread (:meth:`RabbitMQConsumer.keep`) only while the worker is not
inside pika: ``_lock`` is held for every pika call. The keeper answers
heartbeats while handlers run and enforces the lease.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from eventbus import BrokerError, ClosedError, Matcher
from eventbus.adapter import (
    H_ATTEMPT,
    H_FAILED_AT,
    H_GROUP,
    H_REASON,
    H_TOPIC,
    Consumer,
    Delivery,
    make_delivery,
    require,
)

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika  # type: ignore[import-untyped]  # noqa: E402
import pika.exceptions as pex  # type: ignore[import-untyped]  # noqa: E402

from ._client import Topology  # noqa: E402
from ._codec import H_DELAY, MAX_REASON, Handle, carried, from_amqp, republished  # noqa: E402
from ._errors import PIKA_ERRORS, wrap  # noqa: E402
from ._settings import RabbitMQSettings, delay_bucket  # noqa: E402

__all__ = ["RabbitMQConsumer"]

log = logging.getLogger("eventbus.rabbitmq")


class RabbitMQConsumer(Consumer):
    """A member of a group: one connection, one consuming channel, one confirm channel."""

    def __init__(
        self,
        settings: RabbitMQSettings,
        topology: Topology,
        group: str,
        patterns: Sequence[str],
        params: Callable[[str], Any],
        on_close: Callable[[RabbitMQConsumer], None] = lambda _c: None,
    ) -> None:
        self._s = settings
        self._topology = topology
        self._on_close = on_close
        self.group = group
        self._queue = settings.queue(group)
        self._dead_queue = settings.dead_queue_of(self._queue)
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
            self._conn = pika.BlockingConnection(params(f"consumer {group}"))
            self._ch = self._conn.channel()
        except PIKA_ERRORS as exc:
            if self._conn is not None:
                self._drop()
            raise wrap(exc, f"connecting a consumer of group {group!r}") from exc

    @property
    def done(self) -> bool:
        """Closed, or broken (the next call raises): the keeper has nothing more to do."""
        return self._closed or self._broken is not None

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
        self._topology.forget(self.group)  # declare it again on the next consumer()

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
                # put straight into the queue (default exchange), or bound by a pattern the
                # group does not have (by hand, or an older deployment's binding)
                self._unmatched(tag, props, body, message.topic, attempt)
                continue
            held[tag] = now
            out.append(make_delivery(message, attempt, Handle(tag, props)))
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
        headers = self._dead_headers(
            delivery.handle.props, reason, delivery.attempt, delivery.message.topic
        )
        self._move(delivery, ("", self._dead_queue), headers, -1, "dead-lettering")

    def _dead_headers(self, props: Any, reason: str, attempt: int, topic: str) -> dict[str, Any]:
        headers = carried(props)
        headers.update(
            {
                H_REASON: reason[:MAX_REASON],
                H_GROUP: self.group,
                H_ATTEMPT: attempt,
                H_TOPIC: topic,
                H_FAILED_AT: datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            }
        )
        return headers

    def _unmatched(self, tag: int, props: Any, body: bytes, topic: str, attempt: int) -> None:
        """Dead-letter a message whose topic matches none of the group's patterns (lock held).

        The worker never sees it: ``receive`` returns only matching messages.
        """
        patterns = list(self._matcher.patterns)
        reason = f"topic {topic!r} matches none of group {self.group!r}'s patterns {patterns}"
        log.warning("group %s: dead-lettering a message: %s", self.group, reason)
        headers = self._dead_headers(props, reason, attempt, topic)
        self._republish(tag, props, body, ("", self._dead_queue), headers, -1)

    def _move(
        self,
        delivery: Delivery,
        route: tuple[str, str],
        headers: dict[str, Any],
        bucket: int,
        doing: str,
    ) -> None:
        """Republish ``delivery`` to ``route`` (confirmed), then ack the original."""
        handle: Handle = delivery.handle
        with self._lock:
            self._usable()
            if handle.tag not in self._held:
                return  # already settled
            try:
                self._republish(
                    handle.tag, handle.props, delivery.message.body, route, headers, bucket
                )
            except PIKA_ERRORS as exc:
                raise self._fail(exc, f"{doing} an event of group {self.group!r}") from exc
            del self._held[handle.tag]
            self._last_io = time.monotonic()

    def _republish(
        self,
        tag: int,
        props: Any,
        body: bytes,
        route: tuple[str, str],
        headers: dict[str, Any],
        bucket: int,
    ) -> None:
        """Publish a copy to ``route`` on the confirm channel, then ack ``tag`` (lock held)."""
        copy = republished(props, headers)
        if self._pub is None:
            self._pub = self._conn.channel()
            self._pub.confirm_delivery()
        for first_try in (True, False):
            if bucket > 0:
                self._topology.ensure_bucket(self._pub, bucket, force=not first_try)
            elif not first_try:
                self._topology.ensure_group(self._pub, self.group)
            try:
                self._pub.basic_publish(*route, body, copy, mandatory=True)
                break
            except pex.UnroutableError:
                if not first_try:
                    raise
        self._ch.basic_ack(tag)

    def close(self) -> None:
        self.shut()
        self._on_close(self)

    # -- the adapter's calls ----------------------------------------------------------
    def shut(self) -> None:
        """Close the connection (unsettled deliveries go back to the group). Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._drop()

    def keep(self, now: float, lease: float, pump_every: float) -> None:
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
                log.warning(
                    "group %s: a consumer held %d deliveries past the %.1fs lease; "
                    "they go back to the group",
                    self.group,
                    n,
                    lease,
                )
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

    def abort(self) -> None:
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
            except PIKA_ERRORS:  # OSError included
                pass

    # -- helpers (lock held) -------------------------------------------------------------
    def _usable(self) -> None:
        if self._closed:
            raise ClosedError(f"consumer of group {self.group!r} is closed")
        if self._broken is not None:
            raise type(self._broken)(str(self._broken)) from self._broken.__cause__

    def _fail(self, exc: BaseException, doing: str) -> BrokerError:
        err = wrap(exc, f"{doing} (group {self.group!r})")
        if isinstance(exc, pex.ChannelClosedByBroker) and exc.reply_code == 404:
            self._topology.forget(self.group)  # the queue is gone: declare it again
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
