"""The AMQP 1.0 side of the test broker, on python-qpid-proton's reactor.

What the azure-servicebus SDK does on the wire, and what this answers:

- SASL ANONYMOUS (the SDK's emulator mode), then a CBS ``put-token`` on
  ``$cbs``: answered ``status-code`` 200, ``correlation-id`` = the request's
  ``message-id``, on the client's ``$cbs`` receiving link. Tokens are not checked.
- senders attach to ``<queue>`` or ``<topic>``; each transfer is a message or
  a batch (see :func:`._codec.batch_parts`); accepted once stored.
- receivers attach to ``<queue>``, ``<topic>/Subscriptions/<name>`` or either's
  ``/$DeadLetterQueue``; peek-lock deliveries carry the lock token as delivery
  tag (``uuid.bytes_le``), the header's delivery-count, and the annotations
  ``x-opt-sequence-number``, ``x-opt-enqueued-time``, ``x-opt-locked-until``.
  The SDK sends dispositions unsettled and waits for the broker to settle with
  the outcome it applied: complete -> ``accepted``, abandon/defer ->
  ``modified``, dead-letter -> ``rejected`` without an error (an error on a
  rejected outcome is how the service says "failed", e.g. a lost lock).
- ``<entity>/$management`` request/response: renew-lock, peek-message,
  update-disposition, schedule-message, cancel-scheduled-message,
  receive-by-sequence-number, renew-session-lock, get-/set-session-state
  (``statusCode``/``statusDescription`` and ``errorCondition`` application
  properties, as the service sends them).
- session receivers (``RequiresSession`` entities): the source filter
  ``com.microsoft:session-filter`` names a session, or is null for the next
  available one; the attach answer names the session in the same filter and
  carries ``com.microsoft:locked-until-utc`` (.NET ticks) in its properties.
  A next-available attach with no session free is answered when one is, or
  refused with ``com.microsoft:timeout`` after the link's
  ``com.microsoft:timeout`` property (ms). See ``_sessions``.
- ``$eventbus-admin``: this broker's own entity administration on AMQP; see
  ``TestBrokerEntities``. With ``atom=True`` an HTTPS ATOM endpoint serves the
  SDK's administration client too (``_atom``).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from typing import Any

from proton import (
    Array,
    Condition,
    Data,
    Delivery,
    Endpoint,
    Link,
    Message,
    Terminus,
    symbol,
    timestamp,
)
from proton.reactor import ApplicationEvent, Container, EventInjector

from ._sessions import (
    DEFAULT_ACCEPT_WAIT,
    SESSION_LOCK_LOST,
    TIMEOUT,
    Session,
    Waiter,
)
from ._store import (
    BrokerFault,
    Entity,
    Store,
    Topic,
    normalize,
    now_ms,
)

log = logging.getLogger("eventbus.testbroker")

CBS = "$cbs"
ADMIN = "$eventbus-admin"
MANAGEMENT = "/$management"
TICK = 0.05
SESSION_FILTER = symbol("com.microsoft:session-filter")
LOCKED_UNTIL_UTC = symbol("com.microsoft:locked-until-utc")
OPERATION_TIMEOUT = symbol("com.microsoft:timeout")
DATETIMEOFFSET_EPOCH = 621355968000000000  # .NET ticks (100 ns) at the Unix epoch

_DISPOSITIONS = {
    "completed": "complete",
    "abandoned": "abandon",
    "suspended": "deadletter",
    "defered": "defer",
    "deferred": "defer",
}


def _items(value: Any) -> list[Any]:
    if isinstance(value, Array):
        return list(value.elements)
    if value is None:
        return []
    return list(value)


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


class BrokerHandler:
    """proton event handler: one per broker, running on the reactor thread."""

    def __init__(self, store: Store, host: str, port: int) -> None:
        self.store = store
        self.host = host
        self.port = port
        self.container: Container | None = None
        self.injector = EventInjector()
        self.ready = threading.Event()
        self.nodes: dict[tuple[int, str], list[Link]] = {}
        self.pending: dict[int, list[Message]] = {}  # id(link) -> responses waiting for credit
        store.on_ready = self._on_entity_ready
        store.on_session_lost = self._on_session_lost
        self._dirty: set[int] = set()
        self._dirty_entities: list[Entity] = []

    # -- reactor lifecycle ------------------------------------------------------------
    def on_reactor_init(self, event: Any) -> None:
        self.container = event.container
        acceptor = event.container.listen(f"{self.host}:{self.port}")
        if self.port == 0:
            sock = getattr(acceptor._selectable, "_delegate", None)
            if isinstance(sock, socket.socket):
                self.port = sock.getsockname()[1]
        event.container.selectable(self.injector)
        event.container.schedule(TICK, self)
        self.ready.set()
        log.info("test broker listening on %s:%d", self.host, self.port)

    def on_timer_task(self, event: Any) -> None:
        try:
            self.store.tick()
            self._expire_waiters()
            self._flush()
        except Exception:
            log.exception("tick failed")
        event.container.schedule(TICK, self)

    def on_stop(self, event: Any) -> None:
        assert self.container is not None
        self.container.stop()

    def on_store_call(self, event: Any) -> None:
        fn, box, done = event.subject
        try:
            box.append((True, fn(self.store)))
            self._flush()
        except BaseException as exc:  # handed back to the calling thread
            box.append((False, exc))
        done.set()

    def call(self, fn: Any, timeout: float = 10.0) -> Any:
        """Run ``fn(store)`` on the reactor thread and return its result (from another thread)."""
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self.injector.trigger(ApplicationEvent("store_call", subject=(fn, box, done)))
        if not done.wait(timeout):
            raise TimeoutError("the test broker did not answer")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    # -- connections and sessions ---------------------------------------------------
    def on_connection_bound(self, event: Any) -> None:
        sasl = event.transport.sasl()
        sasl.allow_insecure_mechs = True
        sasl.allowed_mechs("ANONYMOUS PLAIN")

    def on_connection_remote_open(self, event: Any) -> None:
        conn = event.connection
        if conn.state & Endpoint.LOCAL_UNINIT:
            conn.container = "eventbus-testbroker"
            conn.open()

    def on_session_remote_open(self, event: Any) -> None:
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.incoming_capacity = 64 * 1024 * 1024
            event.session.open()

    def on_link_remote_close(self, event: Any) -> None:
        self._forget(event.link)
        if not event.link.state & Endpoint.LOCAL_CLOSED:
            event.link.close()

    def on_session_remote_close(self, event: Any) -> None:
        for link in self._links_of(event.session.connection):
            if link.session == event.session:
                self._forget(link)
        if not event.session.state & Endpoint.LOCAL_CLOSED:
            event.session.close()

    def on_connection_remote_close(self, event: Any) -> None:
        self._forget_connection(event.connection)
        if not event.connection.state & Endpoint.LOCAL_CLOSED:
            event.connection.close()

    def on_transport_closed(self, event: Any) -> None:
        if event.connection is not None:
            self._forget_connection(event.connection)

    def on_transport_error(self, event: Any) -> None:
        cond = event.transport.condition
        log.debug("transport error: %s", cond)

    def _links_of(self, conn: Any) -> list[Link]:
        out = []
        link = conn.link_head(0)
        while link is not None:
            out.append(link)
            link = link.next(0)
        return out

    def _forget_connection(self, conn: Any) -> None:
        for link in self._links_of(conn):
            self._forget(link)

    def _forget(self, link: Link) -> None:
        kind = getattr(link, "sb_kind", None)
        if kind == "entity-out":
            e: Entity = link.sb_entity
            if link in e.links:
                e.links.remove(link)
            if getattr(link, "sb_session", None) is not None:
                self.store.release_link(e, link)
                self._on_entity_ready(e)
        elif kind == "session-wait":
            w: Entity = link.sb_entity
            w.waiting = [x for x in w.waiting if x.link is not link]
        elif kind == "node-out":
            key = link.sb_node
            links = self.nodes.get(key, [])
            if link in links:
                links.remove(link)
        self.pending.pop(hash(link), None)
        link.sb_kind = "closed"

    # -- attaching -------------------------------------------------------------------
    def on_link_remote_open(self, event: Any) -> None:
        link = event.link
        if not link.state & Endpoint.LOCAL_UNINIT:
            return
        link.source.copy(link.remote_source)
        link.target.copy(link.remote_target)
        link.snd_settle_mode = link.remote_snd_settle_mode
        link.rcv_settle_mode = link.remote_rcv_settle_mode
        address = (link.remote_source if link.is_sender else link.remote_target).address or ""
        node = normalize(address)
        lower = node.lower()
        conn_key = hash(link.connection)
        try:
            if lower == CBS or lower == ADMIN.lower() or lower.endswith(MANAGEMENT.lower()):
                link.sb_node = (conn_key, lower)
                link.sb_address = node
                if link.is_sender:
                    link.sb_kind = "node-out"
                    self.nodes.setdefault((conn_key, lower), []).append(link)
                else:
                    link.sb_kind = "node-in"
                link.open()
                if link.is_receiver:
                    link.flow(100)
                return
            target = self.store.resolve(node)
            if link.is_sender:
                if not isinstance(target, Entity):
                    raise BrokerFault(
                        "amqp:not-allowed",
                        f"cannot receive from topic {node!r}; attach to one of its subscriptions",
                    )
                filters = _filter_map(link.remote_source.filter)
                if SESSION_FILTER in filters or target.requires_session:
                    self._attach_session(link, target, filters)
                    return
                link.sb_kind = "entity-out"
                link.sb_entity = target
                target.links.append(link)
                link.open()
            else:
                if isinstance(target, Entity) and target.kind != "queue":
                    raise BrokerFault("amqp:not-allowed", f"cannot send to {node!r}")
                link.sb_kind = "entity-in"
                link.sb_address = node
                link.max_message_size = self.store.max_message_size
                link.open()
                link.flow(1000)
        except BrokerFault as fault:
            log.info("refusing attach to %r: %s", address, fault.description)
            self._refuse(link, fault)

    @staticmethod
    def _refuse(link: Link, fault: BrokerFault) -> None:
        link.sb_kind = "refused"
        if link.is_sender:
            link.source.type = Terminus.UNSPECIFIED
        else:
            link.target.type = Terminus.UNSPECIFIED
        link.open()
        link.condition = _condition(fault.condition, fault.description)
        link.close()

    # -- sessions ----------------------------------------------------------------------
    def _attach_session(self, link: Link, e: Entity, filters: dict[Any, Any]) -> None:
        if not e.requires_session:
            raise BrokerFault(
                "amqp:not-allowed",
                f"{e.path} does not require sessions: receive from it without a session",
            )
        if SESSION_FILTER not in filters:
            raise BrokerFault(
                "amqp:not-allowed",
                f"{e.path} requires sessions: receive from it with a session receiver",
            )
        sid = _str(filters[SESSION_FILTER])
        link.sb_entity = e
        s = self.store.accept_session(e, link, sid, now_ms())
        if s is not None:
            self._open_session(link, e, s)
            return
        props = {str(k): v for k, v in dict(link.remote_properties or {}).items()}
        wait = props.get(str(OPERATION_TIMEOUT))
        wait_ms = int(wait) if wait is not None else DEFAULT_ACCEPT_WAIT
        link.sb_kind = "session-wait"
        e.waiting.append(Waiter(link, now_ms() + wait_ms))

    def _open_session(self, link: Link, e: Entity, s: Session) -> None:
        link.source.filter.clear()
        link.source.filter.put_dict({SESSION_FILTER: s.id})
        ticks = DATETIMEOFFSET_EPOCH + s.locked_until * 10_000
        link.properties = {LOCKED_UNTIL_UTC: ticks}
        link.sb_kind = "entity-out"
        link.sb_session = s
        e.links.append(link)
        link.open()

    def _serve_waiters(self, e: Entity) -> None:
        while e.waiting:
            w = e.waiting[0]
            if not w.link.state & Endpoint.REMOTE_ACTIVE:
                e.waiting.pop(0)
                continue
            s = self.store.accept_session(e, w.link, None, now_ms())
            if s is None:
                return
            e.waiting.pop(0)
            self._open_session(w.link, e, s)

    def _expire_waiters(self) -> None:
        now = now_ms()
        for e in self.store.session_entities():
            for w in [w for w in e.waiting if w.deadline <= now]:
                e.waiting.remove(w)
                why = "no session became available within the operation timeout"
                self._refuse(w.link, BrokerFault(TIMEOUT, why, 408))

    def _on_session_lost(self, link: Link) -> None:
        e = getattr(link, "sb_entity", None)
        if e is not None and link in e.links:
            e.links.remove(link)
        link.sb_kind = "closed"
        if link.state & Endpoint.LOCAL_ACTIVE:
            link.condition = _condition(SESSION_LOCK_LOST, "the session lock expired")
            link.close()

    # -- flow and delivery ------------------------------------------------------------
    def on_link_flow(self, event: Any) -> None:
        link = event.link
        kind = getattr(link, "sb_kind", None)
        if kind == "entity-out":
            self._dispatch(link.sb_entity)
            if link.drain_mode:
                link.drained()
        elif kind == "node-out":
            self._send_pending(link)

    def on_delivery(self, event: Any) -> None:
        dlv = event.delivery
        link = dlv.link
        if link.is_sender:
            self._on_outcome(dlv)
            return
        if dlv.aborted:
            dlv.settle()
            return
        if not dlv.readable or dlv.partial:
            return
        raw = link.recv(dlv.pending)
        link.advance()
        kind = getattr(link, "sb_kind", None)
        try:
            if kind == "entity-in":
                self.store.accept(link.sb_address, raw)
                dlv.update(Delivery.ACCEPTED)
            elif kind == "node-in":
                dlv.update(Delivery.ACCEPTED)
                self._request(link, raw)
            else:
                raise BrokerFault("amqp:not-allowed", "link is not attached to anything")
        except BrokerFault as fault:
            dlv.local.condition = _condition(fault.condition, fault.description)
            dlv.update(Delivery.REJECTED)
        except Exception as exc:
            log.exception("transfer failed")
            dlv.local.condition = _condition("amqp:internal-error", str(exc))
            dlv.update(Delivery.REJECTED)
        dlv.settle()
        if link.credit < 500 and link.state & Endpoint.LOCAL_ACTIVE:
            link.flow(1000 - link.credit)
        self._flush()

    def _on_outcome(self, dlv: Delivery) -> None:
        if getattr(dlv, "sb_done", False):
            return
        state = dlv.remote_state
        if not state and not dlv.settled:
            return
        dlv.sb_done = True
        token: uuid.UUID | None = getattr(dlv, "sb_token", None)
        if token is None:  # a management response or a receive-and-delete transfer
            dlv.settle()
            return
        props: dict[str, Any] = {}
        try:
            if state == Delivery.ACCEPTED:
                self.store.settle(token, "complete")
            elif state == Delivery.RELEASED or not state:
                self.store.settle(token, "release")
            elif state == Delivery.MODIFIED:
                remote = dlv.remote
                props = {str(k): v for k, v in dict(remote.annotations or {}).items()}
                if remote.undeliverable:
                    self.store.settle(token, "defer", properties=props)
                elif remote.failed:
                    self.store.settle(token, "abandon", properties=props)
                else:
                    self.store.settle(token, "release", properties=props)
            elif state == Delivery.REJECTED:
                cond = dlv.remote.condition
                raw_info: Any = cond.info if cond else None
                info = {str(k): v for k, v in dict(raw_info or {}).items()}
                self.store.settle(
                    token,
                    "deadletter",
                    reason=_str(info.get("DeadLetterReason")),
                    description=_str(info.get("DeadLetterErrorDescription")),
                )
            else:
                raise BrokerFault("amqp:not-implemented", f"outcome {state} is not supported")
            if not dlv.settled and state:
                if state == Delivery.MODIFIED:
                    dlv.local.failed = bool(dlv.remote.failed)
                    dlv.local.undeliverable = bool(dlv.remote.undeliverable)
                dlv.update(state)
        except BrokerFault as fault:
            if not dlv.settled:
                dlv.local.condition = _condition(fault.condition, fault.description)
                dlv.update(Delivery.REJECTED)
        dlv.settle()
        self._flush()

    def _on_entity_ready(self, entity: Entity) -> None:
        if id(entity) not in self._dirty:
            self._dirty.add(id(entity))
            self._dirty_entities.append(entity)

    def _flush(self) -> None:
        while self._dirty_entities:
            e = self._dirty_entities.pop()
            self._dirty.discard(id(e))
            self._dispatch(e)

    def _dispatch(self, e: Entity) -> None:
        if e.requires_session:
            self._serve_waiters(e)
            self._dispatch_sessions(e)
            return
        store = self.store
        while e.ready:
            live = [ln for ln in e.links if ln.credit > 0 and ln.state & Endpoint.LOCAL_ACTIVE]
            if not live:
                break
            link = live[e.next_link % len(live)]
            e.next_link += 1
            m = store.next_ready(e)
            if m is None:
                break
            if link.snd_settle_mode == Link.SND_SETTLED:  # receive-and-delete
                dlv = link.delivery(uuid.uuid4().bytes_le)
                link.send(store.wire(e, m, locked=False))
                link.advance()
                dlv.settle()
                store.remove(e, m)
                continue
            token = store.lock(e, m)
            dlv = link.delivery(token.bytes_le)
            dlv.sb_token = token
            link.send(store.wire(e, m, locked=True))
            link.advance()
        for link in e.links:
            if link.drain_mode and link.credit > 0:
                link.drained()

    def _dispatch_sessions(self, e: Entity) -> None:
        store = self.store
        for link in list(e.links):
            s: Session = link.sb_session
            while link.credit > 0 and link.state & Endpoint.LOCAL_ACTIVE and s.holder is link:
                m = store.next_in_session(e, s)
                if m is None:
                    break
                token = store.lock(e, m, until=s.locked_until)
                dlv = link.delivery(token.bytes_le)
                dlv.sb_token = token
                link.send(store.wire(e, m, locked=True))
                link.advance()
            if link.drain_mode and link.credit > 0:
                link.drained()

    # -- request / response nodes -------------------------------------------------
    def _request(self, link: Link, raw: bytes) -> None:
        req = Message()
        req.decode(raw)
        raw_props: Any = req.properties or {}
        app = {str(k): v for k, v in dict(raw_props).items()}
        operation = _str(app.get("operation")) or ""
        node = link.sb_address
        lower = node.lower()
        cbs = lower == CBS
        code_key, text_key = (
            ("status-code", "status-description") if cbs else ("statusCode", "statusDescription")
        )
        body: Any = None
        status, text, condition = 200, "OK", None
        try:
            if cbs:
                if operation != "put-token":
                    raise BrokerFault("amqp:not-implemented", f"CBS operation {operation!r}")
            elif lower == ADMIN.lower():
                doc = json.loads(_str(req.body) or "{}")
                body = json.dumps(self.store.admin(operation, doc))
                self._flush()
            else:
                entity_path = node[: -len(MANAGEMENT)]
                status, body = self._management(entity_path, operation, req.body or {})
        except BrokerFault as fault:
            status, text, condition = fault.status, fault.description, fault.condition
            body = None
        except (KeyError, TypeError, ValueError) as exc:
            status, text, condition = 400, f"bad request: {exc}", "com.microsoft:argument-error"
            body = None
        props: dict[str, Any] = {code_key: status, text_key: text}
        if condition:
            props["errorCondition"] = symbol(condition)
        resp = Message(body=body, properties=props, correlation_id=req.id)
        self._reply(link, req, resp)
        self._flush()

    def _reply(self, link: Link, req: Message, resp: Message) -> None:
        links = self.nodes.get(link.sb_node, [])
        chosen = None
        for out in links:
            if req.reply_to and normalize(out.target.address or "") != normalize(req.reply_to):
                continue
            chosen = out
            break
        if chosen is None and links:
            chosen = links[0]
        if chosen is None:
            log.warning("no reply link for a request on %s", link.sb_address)
            return
        self.pending.setdefault(hash(chosen), []).append(resp)
        self._send_pending(chosen)

    def _send_pending(self, link: Link) -> None:
        queue = self.pending.get(hash(link))
        while queue and link.credit > 0:
            msg = queue.pop(0)
            dlv = link.send(msg)
            dlv.settle()

    def _management(self, entity_path: str, operation: str, body: Any) -> tuple[int, Any]:
        store = self.store
        op = operation.removeprefix("com.microsoft:")
        req = {str(k): v for k, v in dict(body or {}).items()}
        if op == "renew-lock":
            tokens = _items(req.get("lock-tokens"))
            expirations = [timestamp(store.renew(_uuid(t))) for t in tokens]
            return 200, {"expirations": Array(None, Data.TIMESTAMP, *expirations)}
        target = store.resolve(entity_path)
        if op in ("renew-session-lock", "get-session-state", "set-session-state"):
            if not isinstance(target, Entity) or not target.requires_session:
                raise BrokerFault("amqp:not-allowed", f"{entity_path} does not require sessions")
            sid = _str(req.get("session-id")) or ""
            if op == "renew-session-lock":
                return 200, {"expiration": timestamp(store.renew_session(target, sid, now_ms()))}
            if op == "get-session-state":
                return 200, {"session-state": store.session_state(target, sid, now_ms())}
            store.session_state(target, sid, now_ms(), req.get("session-state"))
            return 200, {}
        if op == "peek-message":
            if not isinstance(target, Entity):
                raise BrokerFault("amqp:not-allowed", "peek a queue or a subscription, not a topic")
            start = int(req.get("from-sequence-number") or 0)
            count = int(req.get("message-count") or 1)
            found = store.peek(target, start, count)
            if not found:
                return 204, None
            msgs = [{"message": store.wire(target, m, locked=False, peek=True)} for m in found]
            return 200, {"messages": msgs}
        if op == "update-disposition":
            status = _str(req.get("disposition-status")) or ""
            outcome = _DISPOSITIONS.get(status)
            if outcome is None:
                raise BrokerFault(
                    "com.microsoft:argument-error", f"unknown disposition-status {status!r}"
                )
            for t in _items(req.get("lock-tokens")):
                self._settle_any(
                    target,
                    _uuid(t),
                    outcome,
                    reason=_str(req.get("deadletter-reason")),
                    description=_str(req.get("deadletter-description")),
                    properties=req.get("properties-to-modify"),
                )
            return 200, {}
        if op == "schedule-message":
            raws = [bytes(item["message"]) for item in _items(req.get("messages"))]
            seqs = store.schedule(target, raws)
            return 200, {"sequence-numbers": Array(None, Data.LONG, *seqs)}
        if op == "cancel-scheduled-message":
            store.cancel_scheduled(target, [int(s) for s in _items(req.get("sequence-numbers"))])
            return 200, {}
        if op == "receive-by-sequence-number":
            if not isinstance(target, Entity):
                raise BrokerFault("amqp:not-allowed", "receive from a queue or a subscription")
            found = store.deferred(target, [int(s) for s in _items(req.get("sequence-numbers"))])
            out = []
            for m in found:
                token = store.lock(target, m)
                out.append({"message": store.wire(target, m, locked=True), "lock-token": token})
            return 200, {"messages": out}
        raise BrokerFault(
            "com.microsoft:not-implemented", f"management operation {operation!r}", 501
        )

    def _settle_any(
        self,
        target: Entity | Topic,
        token: uuid.UUID,
        outcome: str,
        *,
        reason: str | None,
        description: str | None,
        properties: Any,
    ) -> None:
        props = {str(k): v for k, v in dict(properties or {}).items()}
        self.store.settle(token, outcome, reason=reason, description=description, properties=props)


def _condition(name: str, description: str) -> Condition:
    """An error with all three fields, as the service sends them: pyamqp reads ``info`` by index."""
    return Condition(name, description, {symbol("com.microsoft:tracking-id"): str(uuid.uuid4())})


def _filter_map(data: Data | None) -> dict[Any, Any]:
    """A source's filter set, null values kept (proton's ``get_object`` drops the map)."""
    out: dict[Any, Any] = {}
    if data is None:
        return out
    data.rewind()
    if not data.next() or data.type() != Data.MAP:
        return out
    data.enter()
    while data.next():
        key = data.get_object()
        out[key] = data.get_object() if data.next() else None
    data.exit()
    data.rewind()
    return out


def _uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)) and len(value) == 16:
        return uuid.UUID(bytes=bytes(value))
    return uuid.UUID(str(value))


class TestBroker:
    """A Service-Bus-compatible AMQP 1.0 broker for tests: a test double, not a product.

    ``TestBroker(port=0).start()`` runs it on a thread and returns once it
    listens; :attr:`connection_string` is what the SDK (and the adapter) take;
    :meth:`stop` ends it. ``python tests/_brokers/servicebus_broker``
    runs one in the foreground.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: dict[str, Any] | None = None,
        max_message_size: int = 256 * 1024,
        atom: bool = False,
    ) -> None:
        self.store = Store(max_message_size=max_message_size)
        if config:
            self.store.load_config(config)
        self.handler = BrokerHandler(self.store, host, port)
        self._thread: threading.Thread | None = None
        self._atom_wanted = atom
        self.atom: Any = None  # the ATOM management endpoint (``atom=True``), once started

    @property
    def port(self) -> int:
        return self.handler.port

    @property
    def connection_string(self) -> str:
        return connection_string(self.handler.host, self.port)

    def run(self) -> None:
        """Serve on this thread until :meth:`stop`."""
        Container(self.handler).run()

    def start(self) -> TestBroker:
        self._thread = threading.Thread(target=self.run, name="eventbus-testbroker", daemon=True)
        self._thread.start()
        if not self.handler.ready.wait(10):
            raise RuntimeError("the test broker did not start")
        if self._atom_wanted:
            from ._atom import AtomEndpoint

            self.atom = AtomEndpoint(self.handler.call, self.handler.host)
        return self

    @property
    def admin_connection_string(self) -> str:
        """For ``ServiceBusAdministrationClient`` (``atom=True``): the ATOM endpoint's port.

        Pass ``connection_verify=broker.atom.ca_file`` too: its certificate is self-signed.
        """
        if self.atom is None:
            raise RuntimeError("start the broker with atom=True for an ATOM endpoint")
        return connection_string(self.handler.host, self.atom.port)

    def stop(self) -> None:
        if self.atom is not None:
            self.atom.stop()
            self.atom = None
        self.handler.injector.trigger(ApplicationEvent("stop"))
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None


def connection_string(host: str, port: int) -> str:
    return (
        f"Endpoint=sb://{host}:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;"
    )
