"""A Service-Bus-compatible AMQP 1.0 test broker (a test double, not part of the product).

It lives in the tests' tree (not in the wheel: it needs python-qpid-proton,
which a user install lacks); ``tests/conftest.py`` makes it importable as
``eventbus_test_brokers.servicebus_broker``.

Microsoft's Service Bus emulator is a Docker image; where no Docker engine
runs, this broker lets the real ``azure-servicebus`` SDK (and so the adapter)
be tested over the wire. It implements what the adapter uses, each behaviour
checked through the SDK by ``tests/azure_servicebus``: CBS, queues, topics with
subscriptions and SQL/correlation rules, peek-lock with complete / abandon /
dead-letter / defer, delivery counts, lock expiry, ``$DeadLetterQueue``,
scheduled messages, message sessions (``RequiresSession``: session
receivers for a named or the next available session, session locks, renewal,
state), and the ``$management`` operations renew-lock, peek,
update-disposition, schedule/cancel, receive-by-sequence-number and the
session ones; duplicate detection on topics (``RequiresDuplicateDetection``),
Service Bus's 1,024-character SQL filter and 1 MB batch limits. It keeps
everything in memory, has no TTL expiry, no transactions, and checks no
credentials (any SAS or Entra ID token is taken). ``TestBroker(atom=True)``
adds an HTTPS ATOM endpoint for what the adapter's ``AdministrationEntities``
calls (``_atom``).

Entities come from an emulator-style ``Config.json`` (``--config``) or from
the ``$eventbus-admin`` node (:class:`TestBrokerEntities`, which the adapter
takes as its ``entities`` manager). Run one by hand::

    python tests/_brokers/servicebus_broker --port 5672 --config Config.json

See ``docs/adapters/azure_servicebus.md``.
"""

from __future__ import annotations

from ._admin import TestBrokerEntities, admin_request
from ._broker import TestBroker, connection_string

__all__ = ["TestBroker", "TestBrokerEntities", "admin_request", "connection_string"]
