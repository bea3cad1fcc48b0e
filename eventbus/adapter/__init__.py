"""The toolkit for adapter authors: the contract and the pieces every adapter needs.

An adapter moves :class:`Message` objects and hands out :class:`Delivery`
objects; the core does everything else (encoding, routing checks, retries,
dead-letter decisions, handlers). See ``docs/writing-an-adapter.md``.

- the contract: :class:`Adapter`, :class:`Consumer`, :class:`Capabilities`;
- optional tooling, declared by implementing a Protocol: :class:`DeadLetterTools`,
  :class:`GroupAdmin`, :class:`EventLog` (with :class:`LogEntry`);
- building blocks: :class:`Settings` (typed settings from a URL and options),
  :func:`adapter_spec` and :func:`lazy_exports` (the plugin module),
  :func:`translate_errors` (SDK exceptions to ours), :class:`LeaseRenewer`,
  :class:`LoopThread` (asyncio-only SDKs), :func:`make_delivery` /
  :func:`make_message` (the receive path), :func:`require` (import the SDK or
  say how to install it), the ``H_*`` header names eventbus adds.
"""

from __future__ import annotations

from .._envelope import Delivery, Message, make_delivery, make_message
from .._plugins import AdapterSpec, require
from ..hookspecs import hookimpl
from ._capabilities import Capabilities
from ._contract import Adapter, Consumer, DeadLetterTools, EventLog, GroupAdmin, LogEntry
from ._errors import translate_errors
from ._headers import H_ATTEMPT, H_DUE, H_FAILED_AT, H_GROUP, H_KEY, H_REASON, H_SIZE, H_TOPIC
from ._lease import LeaseRenewer
from ._loop import LoopThread
from ._plugin import adapter_spec, lazy_exports
from ._settings import Settings

__all__ = [
    "H_ATTEMPT",
    "H_DUE",
    "H_FAILED_AT",
    "H_GROUP",
    "H_KEY",
    "H_REASON",
    "H_SIZE",
    "H_TOPIC",
    "Adapter",
    "AdapterSpec",
    "Capabilities",
    "Consumer",
    "DeadLetterTools",
    "Delivery",
    "EventLog",
    "GroupAdmin",
    "LeaseRenewer",
    "LogEntry",
    "LoopThread",
    "Message",
    "Settings",
    "adapter_spec",
    "hookimpl",
    "lazy_exports",
    "make_delivery",
    "make_message",
    "require",
    "translate_errors",
]
