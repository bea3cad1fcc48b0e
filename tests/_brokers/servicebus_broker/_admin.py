"""``TestBrokerEntities``: the adapter's entity manager for the test broker.

The SDK's ``ServiceBusAdministrationClient`` only speaks HTTPS (the broker's
optional ATOM endpoint, ``TestBroker(atom=True)``, serves it on a port of its
own with a self-signed certificate). Simpler for tests, the broker takes entity
definitions on an AMQP request/response node, ``$eventbus-admin``: the
request's ``operation`` application property is ``ensure-topic``,
``ensure-subscription``, ``ensure-queue``, ``get-subscription``, ``get-queue``
or ``delete-subscription``; its body a JSON string in the emulator's
``Config.json`` shape (``{"Topic": ..., "Name": ..., "Properties": {...},
"Rules": [...]}``); the answer has ``statusCode`` and a JSON body.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

from eventbus_azure_servicebus import SubscriptionSpec
from proton import Message
from proton.utils import BlockingConnection

__all__ = ["TestBrokerEntities", "admin_request"]

NODE = "$eventbus-admin"


def _endpoint(connection_string: str) -> str:
    for part in connection_string.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "endpoint":
            return value.strip().split("://", 1)[-1].rstrip("/")
    raise ValueError("connection string has no Endpoint")


class TestBrokerEntities:
    """Creates topics and subscriptions (with their rules) on the test broker."""

    __test__ = False

    def __init__(self, connection_string: str, timeout: float = 10.0) -> None:
        self._address = _endpoint(connection_string)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._conn: Any = None
        self._sender: Any = None
        self._receiver: Any = None

    def _open(self) -> None:
        if self._conn is None:
            self._conn = BlockingConnection(
                self._address, timeout=self._timeout, allowed_mechs="ANONYMOUS"
            )
            self._receiver = self._conn.create_receiver(NODE)
            self._sender = self._conn.create_sender(NODE)

    def request(self, operation: str, body: dict[str, Any]) -> Any:
        with self._lock:
            for attempt in (1, 2):
                try:
                    self._open()
                    msg = Message(
                        id=uuid.uuid4(), body=json.dumps(body), properties={"operation": operation}
                    )
                    self._sender.send(msg, timeout=self._timeout)
                    while True:
                        reply = self._receiver.receive(timeout=self._timeout)
                        if reply.correlation_id == msg.id:
                            break
                    break
                except Exception:
                    self._drop()
                    if attempt == 2:
                        raise
        props = dict(reply.properties or {})
        status = int(props.get("statusCode", 500))
        if status >= 300:
            raise RuntimeError(
                f"test broker {operation} failed ({status}): {props.get('statusDescription')}"
            )
        return json.loads(reply.body) if reply.body else None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.timeout = 1.0  # a broker that went away answers no close: don't wait long
                conn.close()
            except Exception:
                pass

    # -- the Entities protocol --------------------------------------------------------
    def ensure_topic(self, topic: str) -> None:
        self.request("ensure-topic", {"Name": topic})

    def ensure_subscription(self, spec: SubscriptionSpec) -> None:
        self.request(
            "ensure-subscription",
            {
                "Topic": spec.topic,
                "Name": spec.name,
                "Properties": {
                    "LockDuration": f"PT{spec.lock_duration:g}S",
                    "MaxDeliveryCount": spec.max_delivery_count,
                    "RequiresSession": spec.requires_session,
                },
                "Rules": [r.as_config() for r in spec.rules],
            },
        )

    def delete_subscription(self, topic: str, name: str) -> None:
        try:
            self.request("delete-subscription", {"Topic": topic, "Name": name})
        except RuntimeError as exc:
            if "(404)" not in str(exc):
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()


def admin_request(connection_string: str, operation: str, body: dict[str, Any]) -> Any:
    """One admin request on a fresh connection (for tests and scripts)."""
    entities = TestBrokerEntities(connection_string)
    try:
        return entities.request(operation, body)
    finally:
        entities.close()
