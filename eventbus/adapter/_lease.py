"""Keeping leases alive while handlers run: one thread per adapter, renewing what is held."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

__all__ = ["LeaseRenewer"]

log = logging.getLogger("eventbus.adapter")


class LeaseRenewer:
    """Renews the leases of held deliveries every ``period`` seconds, for ``limit`` seconds.

    A consumer calls :meth:`hold` for each delivery it hands out and
    :meth:`release` when it is settled or given back. Every ``period`` seconds
    the renewer's thread calls ``renew(handles)`` with the handles held for
    less than ``limit`` seconds (past it, the lease is left to run out, so a
    stuck handler cannot keep a message forever). ``renew`` runs on the
    renewer's thread, outside the renewer's lock: take the consumer's own lock
    inside it if the SDK's receiver is not thread-safe. An exception from
    ``renew`` is logged (the lease may then lapse and the message come back,
    which at-least-once allows). Thread-safe; the thread starts at the first
    :meth:`hold` and stops at :meth:`close`.
    """

    def __init__(
        self,
        renew: Callable[[Sequence[Any]], None],
        *,
        period: float,
        limit: float | None = None,
        name: str = "eventbus-lease-renewer",
    ) -> None:
        self._renew = renew
        self._period = max(0.05, period)
        self._limit = limit
        self._name = name
        self._held: dict[Hashable, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, key: Hashable, handle: Any) -> None:
        """Start renewing ``handle`` (``key`` identifies it for :meth:`release`)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._held[key] = (handle, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def release(self, key: Hashable) -> None:
        """Stop renewing the handle held under ``key`` (unknown keys are ignored)."""
        with self._lock:
            self._held.pop(key, None)

    def held(self) -> int:
        """How many handles are held."""
        with self._lock:
            return len(self._held)

    def due(self) -> list[Any]:
        """The handles to renew now: held for less than ``limit`` seconds."""
        now = time.monotonic()
        with self._lock:
            items = list(self._held.values())
        return [h for h, since in items if self._limit is None or now - since < self._limit]

    def close(self) -> None:
        """Stop the thread and forget every handle. Idempotent."""
        with self._lock:
            self._stop.set()
            self._held.clear()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._period + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            handles = self.due()
            if not handles:
                continue
            try:
                self._renew(handles)
            except Exception as exc:  # a failed renewal only means the lease may lapse
                log.debug("%s: renewing %d lease(s) failed: %s", self._name, len(handles), exc)
