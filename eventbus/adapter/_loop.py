"""Serving the synchronous adapter contract from an asyncio-only SDK."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from .._errors import BrokerUnavailable, ClosedError

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """An event loop on a thread of its own, for adapters whose SDK is asyncio only.

    The adapter's synchronous methods call :meth:`run` with a coroutine; it runs
    on the loop and the caller waits for its result (or ``timeout`` seconds, then
    :class:`~eventbus.BrokerUnavailable`). Every SDK object then lives on one
    loop, whichever thread the worker calls from. Thread-safe. ::

        self._loop = LoopThread("eventbus-nats")
        self._nc = self._loop.run(nats.connect(url), timeout=10)
        ...
        def publish(self, messages):
            self._loop.run(self._publish_all(messages), timeout=30)
    """

    def __init__(self, name: str = "eventbus-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; its exceptions are raised here."""
        if self._closed:
            coro.close()
            raise ClosedError("the adapter's event loop is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("LoopThread.run called from its own loop: await instead")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BrokerUnavailable(f"no answer from the broker within {timeout} s") from None

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs, stop the loop and its thread. Idempotent."""
        if self._closed:
            return
        self._closed = True

        async def _cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop).result(timeout)
            except Exception:  # noqa: S110 - best effort; the loop stops next
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
