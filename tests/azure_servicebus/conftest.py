"""Fixtures for the Azure Service Bus tests: adapters on the session's endpoint.

The endpoint (``servicebus``: the test broker with ``entities.json``, or
``EVENTBUS_SERVICEBUS_CONNECTION_STRING`` / ``EVENTBUS_SERVICEBUS_ENTITIES``) comes
from ``tests/_brokers/servicebus.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventbus_azure_servicebus import ServiceBusAdapter


@pytest.fixture
def make_adapter(servicebus: Any) -> Iterator[Callable[..., ServiceBusAdapter]]:
    """New adapters on the session's endpoint (short locks); closed after the test."""
    made: list[ServiceBusAdapter] = []

    if servicebus.entities_mode == "existing":
        pytest.skip("makes groups on the fly: needs entities created by the adapter")

    def make(**options: Any) -> ServiceBusAdapter:
        options.setdefault("lock_duration", 4.0)
        a = servicebus.adapter(**options)
        made.append(a)
        return a

    yield make
    for a in reversed(made):
        try:
            a.close()
        except Exception:
            pass
