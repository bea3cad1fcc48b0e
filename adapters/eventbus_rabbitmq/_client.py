"""Connections to RabbitMQ: their parameters, the admin connection, the topology
declarations, and the publisher.

- :func:`connection_parameters`: pika's parameters for one connection of ours;
- :class:`Admin`: one lazily (re)opened ``BlockingConnection`` for declarations
  and the dead-letter tools, one call at a time;
- :class:`Topology`: declares the exchange, a group's queues and the delay
  buckets on a channel, and remembers what this adapter declared;
- :class:`Publisher`: publishing with pipelined confirms, below.

Why the publisher is not a ``BlockingConnection``: with publisher confirms on,
its ``basic_publish`` waits for each confirm, a round trip per message (about
1,400 messages/s here). Pika's asynchronous ``SelectConnection`` lets us send
many messages and collect their confirms as they come (RabbitMQ acks ranges
with ``multiple``), but it must live on one thread. So a :class:`Publisher`
owns a ``SelectConnection`` served by a dedicated I/O thread; ``publish`` may
be called from any thread: it hands its batch to the I/O thread
(``add_callback_threadsafe``) and waits until every message of the batch is
confirmed. Calls from several threads share the connection and are
pipelined together.

Failure: if the connection or channel closes, every unconfirmed batch fails
with :class:`~eventbus.BrokerUnavailable` or :class:`~eventbus.PublishError`
(callers must assume none of it arrived; some may have: at-least-once), and the
next ``publish`` opens a new connection.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from eventbus import BrokerError, BrokerUnavailable, ClosedError, PublishError
from eventbus.adapter import require

require("pika", "rabbitmq", "rabbitmq")  # the install hint if pika is missing
import pika  # type: ignore[import-untyped]  # noqa: E402

from ._codec import H_DELAY  # noqa: E402
from ._errors import PIKA_ERRORS, UNAVAILABLE, wrap  # noqa: E402
from ._settings import RabbitMQSettings  # noqa: E402

__all__ = ["Admin", "Outgoing", "Publisher", "Topology", "connection_parameters"]

log = logging.getLogger("eventbus.rabbitmq")
T = TypeVar("T")

#: (routing key, body, properties), published to the adapter's exchange
Outgoing = tuple[str, bytes, Any]


# -- connections -------------------------------------------------------------------------
def connection_parameters(s: RabbitMQSettings, role: str) -> Any:
    """Pika's parameters for a connection playing ``role`` (named in the management UI).

    Raises ``ValueError`` for a URL pika cannot use (the adapter checks it when made).
    """
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


class Admin:
    """The admin connection: ``call(doing, fn)`` runs ``fn(channel)``, one call at a time."""

    def __init__(self, params: Callable[[str], Any]) -> None:
        self._params = params
        self._lock = threading.Lock()  # guards the connection and channel, and closed
        self._conn: Any = None
        self._ch: Any = None
        self.closed = False

    def call(self, doing: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(channel)``; reconnect once if the connection went stale."""
        with self._lock:
            if self.closed:
                raise ClosedError("the RabbitMQ adapter is closed")
            for attempt in (1, 2):
                try:
                    if self._conn is None or not self._conn.is_open:
                        self._conn = pika.BlockingConnection(self._params("admin"))
                        self._ch = None
                    if self._ch is None or not self._ch.is_open:
                        self._ch = self._conn.channel()
                    return fn(self._ch)
                except UNAVAILABLE as exc:
                    self._conn = None
                    if attempt == 2:
                        raise wrap(exc, doing) from exc
                except PIKA_ERRORS as exc:
                    self._ch = None
                    raise wrap(exc, doing) from exc
            raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self.closed = True
            try:
                if self._conn is not None and self._conn.is_open:
                    self._conn.close()
            except PIKA_ERRORS:
                pass
            self._conn = self._ch = None


class Topology:
    """Declares the adapter's exchanges and queues; remembers what it declared.

    ``bound`` (group -> patterns bound by this adapter) and the known delay
    buckets are shared by the adapter and its consumers; each update is one
    dict/set operation (atomic), so they need no lock.
    """

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self.bound: dict[str, frozenset[str]] = {}
        self._buckets: set[int] = set()
        self._declared: set[str] = set()  # every queue declared (for tests' clean-up)

    def queues(self) -> set[str]:
        """The names of every queue this adapter declared, deleted since or not."""
        return set(self._declared)

    def forget(self, group: str) -> None:
        """The group's queue is gone (deleted, cancelled): declare it again next time."""
        self.bound.pop(group, None)

    def ensure_group(self, ch: Any, group: str) -> None:
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
        self._declared |= {queue, dead}
        ch.queue_declare(queue, durable=True, arguments=args)

    def bind(self, ch: Any, group: str, wanted: frozenset[str]) -> None:
        """Declare ``group`` and make its bindings ``wanted`` (as far as this adapter knows)."""
        s = self.settings
        queue = s.queue(group)
        self.ensure_group(ch, group)
        old = self.bound.get(group, frozenset())
        for pattern in sorted(wanted - old):
            ch.queue_bind(queue, s.exchange, routing_key=pattern)
        for pattern in sorted(old - wanted):
            ch.queue_unbind(queue, s.exchange, routing_key=pattern)
        self.bound[group] = wanted
        log.debug(
            "group %s: queue %s (dead letters: %s) bound to %s",
            group,
            queue,
            s.dead_queue(group),
            sorted(wanted),
        )

    def ensure_bucket(self, ch: Any, ms: int, force: bool = False) -> None:
        if ms in self._buckets and not force:
            return
        s = self.settings
        queue = s.delay_queue(ms)
        args: dict[str, Any] = {"x-message-ttl": ms, "x-dead-letter-exchange": ""}
        if s.queue_type != "classic":  # follow the group queues' type (HA for retries too)
            args["x-queue-type"] = s.queue_type
        ch.exchange_declare(s.delay_exchange, "headers", durable=True)
        ch.queue_declare(queue, durable=True, arguments=args)
        self._declared.add(queue)
        ch.queue_bind(queue, s.delay_exchange, arguments={"x-match": "all", H_DELAY: str(ms)})
        self._buckets.add(ms)


# -- the publisher -----------------------------------------------------------------------
_SLICE = 256  # messages written per I/O-loop turn, so confirms and writes interleave


class _Batch:
    """One ``publish`` call waiting for its confirms."""

    __slots__ = ("done", "error", "items", "progress", "remaining", "sent")

    def __init__(self, items: Sequence[Outgoing]) -> None:
        self.items = items
        self.sent = 0
        self.remaining = len(items)
        self.error: BrokerError | None = None
        self.done = threading.Event()
        self.progress = time.monotonic()

    def fail(self, error: BrokerError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


def _error(kind: type[BrokerError], text: str, cause: BaseException | None) -> BrokerError:
    err = kind(text)
    err.__cause__ = cause
    return err


class _Link:
    """One ``SelectConnection`` + confirm-mode channel, and the thread running its I/O loop."""

    def __init__(self, params: Any, exchange: str) -> None:
        self._params = params
        self._exchange = exchange
        self._lock = threading.Lock()  # guards dead, _inbox and the hand-over to the I/O thread
        self._ready = threading.Event()
        self._open_error: BrokerError | None = None
        self.dead = False
        self._closing = False
        self._conn: Any = None
        self._ch: Any = None
        self._inbox: deque[_Batch] = deque()  # submitted, not fully written
        self._tags: deque[int] = deque()  # delivery tags written, oldest first
        self._owner: dict[int, _Batch] = {}  # unconfirmed delivery tag -> its batch
        self._next_tag = 1
        self._thread = threading.Thread(target=self._run, name="eventbus-rabbitmq-io", daemon=True)

    # -- any thread ------------------------------------------------------------------
    def open(self, timeout: float) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            self.abort()
            raise BrokerUnavailable(f"RabbitMQ publisher connection not open after {timeout:.0f}s")
        if self._open_error is not None:
            raise self._open_error

    def submit(self, batch: _Batch) -> None:
        with self._lock:
            if self.dead:
                raise BrokerUnavailable("the publisher connection to RabbitMQ is closed")
            self._inbox.append(batch)
            self._conn.ioloop.add_callback_threadsafe(self._drain)

    def idle(self) -> bool:
        with self._lock:
            return self.dead or (not self._inbox and not self._owner)

    def close(self, timeout: float) -> None:
        with self._lock:
            if self.dead:
                return
            self._closing = True
            self._conn.ioloop.add_callback_threadsafe(self._close_now)
        self._thread.join(timeout)

    def abort(self) -> None:
        """Drop the TCP connection without an AMQP close (a crash, for tests)."""
        with self._lock:
            if self.dead or self._conn is None:
                return
            self._conn.ioloop.add_callback_threadsafe(self._abort_now)

    # -- the I/O thread --------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._conn = pika.SelectConnection(
                self._params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn.ioloop.start()
        except Exception as exc:  # an SDK failure must not vanish with the thread
            self._open_error = self._open_error or _error(
                BrokerUnavailable, f"RabbitMQ publisher failed: {exc!r}", exc
            )
            log.debug("publisher I/O thread failed", exc_info=True)
        finally:
            with self._lock:
                self.dead = True
                pending = list(self._inbox) + list(dict.fromkeys(self._owner.values()))
                self._inbox.clear()
                self._owner.clear()
            for batch in pending:
                batch.fail(_error(BrokerUnavailable, "the connection to RabbitMQ closed", None))
            self._ready.set()
            if self._conn is not None:
                try:
                    self._conn.ioloop.close()
                except Exception:  # noqa: S110 - releasing the selector is best effort
                    pass

    def _on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, conn: Any, exc: BaseException) -> None:
        self._open_error = wrap(exc, "opening the publisher connection")
        conn.ioloop.stop()

    def _on_channel(self, ch: Any) -> None:
        self._ch = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.exchange_declare(
            self._exchange, "topic", durable=True, callback=lambda _frame: self._confirm_mode()
        )

    def _confirm_mode(self) -> None:
        self._ch.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=lambda _frame: self._ready.set()
        )

    def _on_channel_closed(self, ch: Any, exc: BaseException) -> None:
        code = getattr(exc, "reply_code", "")
        text = getattr(exc, "reply_text", str(exc))
        err = _error(PublishError, f"RabbitMQ closed the publishing channel: {code} {text}", exc)
        if not self._ready.is_set():
            self._open_error = err
        self._fail_all(err)
        if self._conn.is_open:
            self._conn.close()

    def _on_closed(self, conn: Any, exc: BaseException) -> None:
        if not self._closing:
            err = _error(BrokerUnavailable, f"connection to RabbitMQ lost: {exc!r}", exc)
            if not self._ready.is_set():
                self._open_error = err
            self._fail_all(err)
        conn.ioloop.stop()

    def _fail_all(self, err: BrokerError) -> None:
        with self._lock:
            self.dead = True
            pending = list(self._inbox) + list(dict.fromkeys(self._owner.values()))
            self._inbox.clear()
            self._owner.clear()
            self._tags.clear()
        for batch in pending:
            batch.fail(err)

    def _close_now(self) -> None:
        if self._conn.is_open:
            self._conn.close()

    def _abort_now(self) -> None:
        transport = getattr(self._conn, "_transport", None)
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        elif self._conn.is_open:
            self._conn.close()

    def _drain(self) -> None:
        """Write what callers submitted, a slice per loop turn; confirms come meanwhile."""
        ch, exchange = self._ch, self._exchange
        budget = _SLICE
        owner, tags = self._owner, self._tags
        while budget > 0:
            with self._lock:
                if not self._inbox:
                    return
                batch = self._inbox[0]
            items = batch.items
            stop = min(len(items), batch.sent + budget)
            try:
                for routing_key, body, props in items[batch.sent : stop]:
                    ch.basic_publish(exchange, routing_key, body, props)
                    tag = self._next_tag
                    self._next_tag = tag + 1
                    owner[tag] = batch
                    tags.append(tag)
            except Exception as exc:  # e.g. channel closed under us, or an unencodable header
                with self._lock:
                    if self._inbox and self._inbox[0] is batch:
                        self._inbox.popleft()
                batch.fail(_error(PublishError, f"publishing to RabbitMQ failed: {exc!r}", exc))
                if not ch.is_open:
                    return
                continue
            budget -= stop - batch.sent
            batch.sent = stop
            if stop == len(items):
                with self._lock:
                    self._inbox.popleft()
        with self._lock:
            more = bool(self._inbox)
        if more:
            self._conn.ioloop.call_later(0, self._drain)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ok = isinstance(method, pika.spec.Basic.Ack)
        tag, owner = method.delivery_tag, self._owner
        if method.multiple:
            confirmed = []
            tags = self._tags
            while tags and tags[0] <= tag:
                batch = owner.pop(tags.popleft(), None)
                if batch is not None:
                    confirmed.append(batch)
        else:
            batch = owner.pop(tag, None)
            confirmed = [batch] if batch is not None else []
        now = time.monotonic()
        for batch in confirmed:
            if not ok:
                batch.fail(PublishError("RabbitMQ refused (nacked) a message of the batch"))
                continue
            batch.remaining -= 1
            batch.progress = now
            if batch.remaining == 0:
                batch.done.set()


class Publisher:
    """Publishes from any thread over one lazily (re)opened :class:`_Link`."""

    def __init__(
        self,
        params: Callable[[], Any],
        exchange: str,
        confirm_timeout: float,
        connect_timeout: float,
    ) -> None:
        self._params = params
        self._exchange = exchange
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._closed = False

    def publish(self, items: Sequence[Outgoing]) -> None:
        """Send ``items``; return when the broker confirmed all of them, else raise."""
        batch = _Batch(items)
        self._current().submit(batch)
        while not batch.done.wait(0.5):
            if time.monotonic() - batch.progress > self._confirm_timeout:
                batch.fail(
                    PublishError(
                        f"RabbitMQ confirmed {len(items) - batch.remaining} of {len(items)} "
                        f"message(s), then nothing for {self._confirm_timeout:.0f}s"
                    )
                )
        if batch.error is not None:
            raise type(batch.error)(str(batch.error)) from batch.error.__cause__

    def _current(self) -> _Link:
        with self._lock:
            if self._closed:
                raise ClosedError("the RabbitMQ adapter is closed")
            link = self._link
            if link is None or link.dead:
                link = _Link(self._params(), self._exchange)
                link.open(self._connect_timeout)  # raises BrokerUnavailable
                self._link = link
            return link

    def abort(self) -> None:
        with self._lock:
            if self._link is not None:
                self._link.abort()

    def close(self) -> None:
        """Wait (bounded) for batches in flight, then close the connection. Idempotent."""
        with self._lock:
            self._closed = True
            link, self._link = self._link, None
        if link is None:
            return
        deadline = time.monotonic() + self._confirm_timeout
        while not link.idle() and time.monotonic() < deadline:
            time.sleep(0.01)  # publish() callers are finishing their confirms
        link.close(self._connect_timeout)
