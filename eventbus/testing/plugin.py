"""pytest plugin (entry point ``pytest11``): options, markers and tiers for the suite.

Options:
  --eventbus-url URL          run rows without their own factory against this broker
  --eventbus-tier TIER        short (default) | full | stress; also EVENTBUS_TIER
  --eventbus-timeout-multiplier X   scale every wait; also EVENTBUS_TIMEOUT_MULTIPLIER

Markers: every conformance test carries ``conformance`` and its row's adapter
marker, so ``pytest -m "conformance and sqlite"`` runs one row. Tests marked
``full`` run only in the full and stress tiers, ``stress`` only in stress.
"""

from __future__ import annotations

import os

import pytest

from ._helpers import TIERS, tier
from .conformance import AdapterConformance

MARKERS = {
    "conformance": "the adapter conformance suite",
    "memory": "runs on the in-memory adapter",
    "sqlite": "runs on the embedded SQLite adapter",
    "rabbitmq": "needs RabbitMQ",
    "kafka": "needs a Kafka-protocol broker",
    "sqs": "needs an SQS/SNS endpoint",
    "azure_servicebus": "needs a Service Bus endpoint",
    "full": "full tier only (EVENTBUS_TIER=full or stress)",
    "stress": "stress tier only (EVENTBUS_TIER=stress)",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("eventbus")
    group.addoption(
        "--eventbus-url",
        dest="eventbus_url",
        default=None,
        help="broker URL for conformance rows without an adapter_factory",
    )
    group.addoption(
        "--eventbus-tier",
        dest="eventbus_tier",
        choices=TIERS,
        default=None,
        help="test tier: short (default), full or stress",
    )
    group.addoption(
        "--eventbus-timeout-multiplier",
        dest="eventbus_timeout_multiplier",
        type=float,
        default=None,
        help="scale every wait in the suite",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    chosen = config.getoption("eventbus_tier", default=None)
    if chosen:
        os.environ["EVENTBUS_TIER"] = chosen
    mult = config.getoption("eventbus_timeout_multiplier", default=None)
    if mult:
        os.environ["EVENTBUS_TIMEOUT_MULTIPLIER"] = str(mult)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    current = tier()
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, AdapterConformance):
            item.add_marker(pytest.mark.conformance)
            if cls.marker:
                item.add_marker(getattr(pytest.mark, cls.marker))
        if item.get_closest_marker("stress") and current != "stress":
            item.add_marker(pytest.mark.skip(reason="stress tier only: set EVENTBUS_TIER=stress"))
        elif item.get_closest_marker("full") and current == "short":
            item.add_marker(pytest.mark.skip(reason="full tier only: set EVENTBUS_TIER=full"))
