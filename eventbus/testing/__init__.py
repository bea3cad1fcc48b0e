"""Test tools for eventbus users and adapter authors.

- :class:`AdapterConformance`: the conformance suite; subclass it with an
  ``adapter_factory`` fixture to test an adapter (see ``docs/conformance.md``).
- :class:`Collector`, :class:`Names`, :func:`eventually`: helpers for tests on
  real brokers (idle timeouts instead of sleeps, unique names per run).

The pytest plugin (``eventbus.testing.plugin``, loaded through the ``pytest11``
entry point) adds ``--eventbus-url``, the tier and timeout options and the
markers. For application tests, use ``EventBus(MemoryAdapter())``.
"""

from __future__ import annotations

from eventbus import Capabilities

from ._helpers import Collector, Names, eventually, tier, timeout_multiplier
from .conformance import AdapterConformance

__all__ = [
    "AdapterConformance",
    "Capabilities",
    "Collector",
    "Names",
    "eventually",
    "tier",
    "timeout_multiplier",
]
