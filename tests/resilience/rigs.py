"""Rigs for the fault scenarios: an adapter kind plus a real way to take its broker away.

- **memory**: the in-process broker cannot go down (those rows say so);
- **sqlite**: another connection holds the file's write lock (``BEGIN EXCLUSIVE``);
- **rabbitmq**: the shared RabbitMQ behind a :class:`TcpProxy` that drops every
  connection and refuses new ones (the broker itself keeps running);
- **kafka**: a Tansu of the rig's own, whose advertised listener *is* the proxy's
  port (Kafka clients reconnect to the advertised address, so nothing bypasses it);
- **sqs**: a moto server of the rig's own behind the proxy;
- **azure_servicebus**: a Service Bus test broker of the rig's own behind the proxy.

Tansu, moto and the Service Bus test broker keep their data in memory, so a
process restart would lose it by design: on those (and on RabbitMQ) the outage is
a *connection cut*, which is what a network partition or a broker failover looks
like to the client. ``outage`` says which it is, for the fault table.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

from eventbus import Adapter, MemoryAdapter

TESTS = Path(__file__).resolve().parents[1]
RABBITMQ_URL = os.environ.get("EVENTBUS_RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/"


def brokers(name: str) -> ModuleType:
    """``tests/_brokers/<name>.py`` (registered by ``tests/conftest.py``; loaded here if not)."""
    if "eventbus_test_brokers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("eventbus_tests_root", TESTS / "conftest.py")
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return importlib.import_module(f"eventbus_test_brokers.{name}")


# -- a TCP proxy that can cut the line --
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; :meth:`cut` drops every connection.

    While cut, new connections are accepted and closed at once (the client sees
    the broker go away, as in a broker restart); :meth:`restore` lets them through.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._up = True
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self.cuts = 0
        t = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._up:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            for s in (upstream, client):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle delays
            pair = (client, upstream)
            with self._lock:
                if not self._up or self._closed:
                    _reset(client)
                    upstream.close()
                    continue
                self._pairs.add(pair)
            for a, b in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(a, b, pair), daemon=True)
                t.start()
            self._threads = [t for t in self._threads if t.is_alive()]

    def _pump(
        self, src: socket.socket, dst: socket.socket, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(pair)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.discard(pair)
        for s in pair:
            _reset(s)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones."""
        with self._lock:
            self._up = False
            pairs = list(self._pairs)
            self._pairs.clear()
            self.cuts += 1
        for pair in pairs:
            for s in pair:
                _reset(s)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()
        for t in self._threads:
            t.join(2)


def _reset(s: socket.socket) -> None:
    """Close with RST, so the peer notices at once."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


# -- rigs: one per adapter kind --
class Rig:
    """An adapter kind plus a real way to take its broker away (if there is one)."""

    name = ""
    can_go_down = False
    cross_process = False
    outage = ""  # how the broker is taken away, for the fault table
    client_rides_out = False  # the client's own retries carry publishes over a short outage

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = uuid.uuid4().hex[:6]
        self._n = 0
        self._adapters: list[Adapter] = []

    def names(self, what: str) -> tuple[str, str]:
        """A fresh (topic, group) pair for one scenario."""
        self._n += 1
        base = f"r{self.run}{self._n}"
        return f"{base}.{what}.created", f"{base}-{what}"

    def adapter(self) -> Adapter:
        raise NotImplementedError

    def url(self) -> str:
        """A URL another process can open (cross-process rigs)."""
        raise NotImplementedError

    def down(self) -> None:
        raise NotImplementedError

    def up(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        for a in self._adapters:
            with contextlib.suppress(Exception):
                a.close()


class MemoryRig(Rig):
    name = "memory"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.broker = MemoryAdapter(lease=3.0)

    def adapter(self) -> Adapter:
        return self.broker.client()


class SqliteRig(Rig):
    name = "sqlite"
    can_go_down = True
    cross_process = True
    outage = "file write-locked"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.path = workdir / "broker.db"
        self._locker: sqlite3.Connection | None = None

    def url(self) -> str:
        return f"sqlite:///{self.path}?lease=2&busy_timeout=0.2"

    def adapter(self) -> Adapter:
        from eventbus import SqliteAdapter

        a = SqliteAdapter(str(self.path), lease=2.0, busy_timeout=0.2)
        self._adapters.append(a)
        return a

    def down(self) -> None:
        """Another connection takes the write lock and keeps it: the file is unusable."""
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        db.execute("BEGIN EXCLUSIVE")
        self._locker = db

    def up(self) -> None:
        db, self._locker = self._locker, None
        if db is not None:
            db.execute("ROLLBACK")
            db.close()

    def close(self) -> None:
        self.up()
        super().close()


class ProxiedRig(Rig):
    """A broker reached through a :class:`TcpProxy`: ``down`` cuts the line, ``up`` restores it."""

    can_go_down = True
    cross_process = True
    outage = "connection cut (TCP proxy)"
    proxy: TcpProxy

    def down(self) -> None:
        self.proxy.cut()

    def up(self) -> None:
        self.proxy.restore()

    def close(self) -> None:
        self.up()
        super().close()
        self.proxy.close()


class RabbitRig(ProxiedRig):
    name = "rabbitmq"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        from urllib.parse import urlsplit

        target = urlsplit(RABBITMQ_URL)
        self.proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
        self.exchange = f"eventbus-res-{self.run}"

    def options(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "lease": 5.0,
            "heartbeat": 2,
            "connect_timeout": 2.0,
            "confirm_timeout": 5.0,
        }

    def url(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.options().items())
        return f"{self.proxy.url}?{q}"

    def adapter(self) -> Adapter:
        from eventbus_rabbitmq import RabbitMQAdapter

        a = RabbitMQAdapter(self.proxy.url, **self.options())
        self._adapters.append(a)
        return a

    def close(self) -> None:
        super().close()
        delete_rabbitmq_names(self.exchange)


def delete_rabbitmq_names(prefix: str) -> None:
    """Delete the queues and exchanges whose names start with ``prefix`` (this run's only)."""
    names: dict[str, set[str]] = {}
    for kind in ("queues", "exchanges"):
        out = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{kind}", "name"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        names[kind] = {n for n in out.stdout.split() if n.startswith(prefix)}
    if names["queues"] or names["exchanges"]:
        made = brokers("rabbitmq").Topology()
        made.queues, made.exchanges = names["queues"], names["exchanges"]
        made.delete(RABBITMQ_URL)


class KafkaRig(ProxiedRig):
    """A Tansu of its own that advertises the proxy's port (memory storage)."""

    name = "kafka"
    client_rides_out = True  # librdkafka queues and resends within publish_timeout (5 s here)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        kafka = brokers("kafka")
        port = kafka.free_port()
        self.proxy = TcpProxy("127.0.0.1", port)
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(kafka.tansu(port, advertised_port=self.proxy.port))
        self.settings = kafka.settings_for(f"127.0.0.1:{self.proxy.port}", publish_timeout=5.0)

    def url(self) -> str:
        s = self.settings
        options = {
            k: getattr(s, k)
            for k in (
                "prefix",
                "session_timeout",
                "max_poll_interval",
                "metadata_refresh",
                "commit_interval",
                "publish_timeout",
                "partitions",
            )
        }
        return f"kafka://{s.bootstrap_servers}?{urlencode(options)}"

    def adapter(self) -> Adapter:
        from eventbus_kafka import KafkaAdapter

        a = KafkaAdapter(self.settings)
        self._adapters.append(a)
        return a

    def close(self) -> None:
        super().close()
        self._stack.close()


class SqsRig(ProxiedRig):
    """A moto server of its own behind the proxy (queues and topic under a run prefix)."""

    name = "sqs"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._stack = contextlib.ExitStack()
        endpoint = self._stack.enter_context(brokers("sqs").moto())
        self._env = self._stack.enter_context(_aws_test_credentials())
        port = int(endpoint.rsplit(":", 1)[1])
        self.proxy = TcpProxy("127.0.0.1", port)
        self.options = {
            "region": "us-east-1",
            "endpoint_url": f"http://127.0.0.1:{self.proxy.port}",
            "prefix": f"r{self.run}-",
            "topic": f"r{self.run}",
            "lease": 3,
            "long_poll": 1,
        }

    def url(self) -> str:
        return "sqs://?" + urlencode(self.options)

    def adapter(self) -> Adapter:
        from eventbus_sqs import SqsAdapter, SqsSettings

        a = SqsAdapter(SqsSettings(**self.options))
        self._adapters.append(a)
        return a

    def close(self) -> None:
        super().close()
        self._stack.close()


@contextlib.contextmanager
def _aws_test_credentials() -> Iterator[None]:
    """Dummy credentials for moto (also seen by worker processes), unless some are set."""
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        yield
        return
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    try:
        yield
    finally:
        del os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]


class ServiceBusRig(ProxiedRig):
    """A Service Bus test broker of its own behind the proxy (plain AMQP, emulator mode)."""

    name = "azure_servicebus"
    client_rides_out = True  # the SDK reconnects and retries a send (retry_total=3, backoff)

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._stack = contextlib.ExitStack()
        _, port = self._stack.enter_context(brokers("servicebus").start_test_broker())
        self.proxy = TcpProxy("127.0.0.1", port)
        connection_string = brokers("servicebus_broker").connection_string
        self.connection_string = connection_string("127.0.0.1", self.proxy.port)
        self.topic = f"r{self.run}"

    def url(self) -> str:
        """For worker processes: the entities exist already (made by ``declare``)."""
        query = urlencode(
            {
                "SharedAccessKeyName": "RootManageSharedAccessKey",
                "SharedAccessKey": "SAS_KEY_VALUE",
                "UseDevelopmentEmulator": "true",
                "entities": "existing",
                "lock_duration": 4,
            }
        )
        return f"sb://127.0.0.1:{self.proxy.port}/{self.topic}?{query}"

    def adapter(self) -> Adapter:
        from eventbus_azure_servicebus import ServiceBusAdapter

        TestBrokerEntities = brokers("servicebus_broker").TestBrokerEntities

        a = ServiceBusAdapter(
            self.connection_string,
            topic=self.topic,
            lock_duration=4.0,
            entities=TestBrokerEntities(self.connection_string),
        )
        self._adapters.append(a)
        return a

    def close(self) -> None:
        super().close()
        self._stack.close()


RIGS: dict[str, type[Rig]] = {
    "memory": MemoryRig,
    "sqlite": SqliteRig,
    "rabbitmq": RabbitRig,
    "kafka": KafkaRig,
    "sqs": SqsRig,
    "azure_servicebus": ServiceBusRig,
}


@contextlib.contextmanager
def rig(name: str, workdir: Path) -> Iterator[Rig]:
    r = RIGS[name](workdir)
    try:
        yield r
    finally:
        r.close()
