"""What an adapter can do, as data the conformance suite and the CLI read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Capabilities"]


@dataclass(frozen=True)
class Capabilities:
    """An adapter's declared capabilities.

    A conformance test that needs a capability the adapter does not declare is
    skipped with that reason; one the adapter declares must pass.

    - ``ordering_per_key``: events with the same key reach a group in publish order.
    - ``consumer_groups``: several groups each get every event; members of one compete.
    - ``persistence``: events survive a broker restart.
    - ``replay``: events published before a group was declared can be read again.
    - ``redelivery``: a nacked or un-acked (lease expired) event comes back.
    - ``native_dead_letter``: the broker keeps dead letters itself (vs. an adapter-made queue).
    - ``delayed_delivery``: ``nack(delay)`` holds the event back for ``delay`` seconds.
    - ``max_message_size``: largest encoded message (body + headers) in bytes; None: no limit.
    - ``max_header_count`` / ``max_header_size``: limits on extension attributes; None: no limit.
    - ``batching``: ``publish`` of many messages costs far less than one call each.
    - ``dedup``: the broker drops a second message with the same event id.
    - ``lease_seconds``: how long an unsettled delivery stays with a consumer that
      stopped without closing (a crash) before another member gets it.
    - ``cross_process``: separate processes reach the same broker (not ``memory``).
    """

    ordering_per_key: bool = False
    consumer_groups: bool = True
    persistence: bool = False
    replay: bool = False
    redelivery: bool = True
    native_dead_letter: bool = False
    delayed_delivery: bool = False
    max_message_size: int | None = None
    max_header_count: int | None = None
    max_header_size: int | None = None
    batching: bool = False
    dedup: bool = False
    lease_seconds: float = 30.0
    cross_process: bool = True

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Capabilities:
        return dataclasses.replace(self, **changes)
