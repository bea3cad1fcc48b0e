"""The worker: consumer threads that run handlers and settle deliveries.

Threading model. Each subscription group gets ``concurrency`` consumer threads;
each thread owns one :class:`~eventbus.Consumer` (so adapters on SDKs that are
not thread-safe need no locks) and runs, in a loop: receive a batch → run it
through the group's pipeline → ack the batch / nack / dead-letter.

``def`` handlers run on the consumer thread. ``async def`` handlers run on an
event loop: the caller's own loop under :meth:`EventBus.run_async`, else a
private loop thread; the consumer thread waits for each to finish, so per-key
order holds within a member for both kinds.

The pipeline. Per delivery, in this order (``docs/resilience.md``): decode
(undecodable → dead letter with the reason) → dedup (with an inbox: a
duplicate is acked unhandled, one held by a live member comes back later) →
outcome callbacks (``delivered``, then ``acked`` / ``retried`` /
``dead_lettered`` with the handlers' duration) → the matching handlers one by
one, each inside the middleware and under its timeout → ack, or nack with the
retry policy's delay, or dead letter. Each group's pipeline is composed once,
when the worker starts (again only if the middleware or outcome callbacks
change): a stage that has nothing to do is not composed at all, so a bus with
no inbox, middleware or outcome callback runs a batch loop (decode, settle)
that calls one dispatch function per event, and that calls the handler itself.

Timeouts: an ``async def`` handler past its timeout is cancelled. A ``def``
handler with a timeout runs on a thread of its own; past the timeout the worker
stops waiting and the event takes the retry path (``HandlerTimeout``), and the
overrunning thread is abandoned (Python cannot kill a thread): it runs on in
the background, its result or error is ignored and logged when it ends, and it
may still be running when the retry starts. Prefer ``async def`` for work that
can hang, and make ``def`` handlers with timeouts idempotent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._envelope import Delivery, Event, decode
from ._errors import BrokerError, ClosedError, DecodeError, HandlerTimeout
from ._hooks import ACKED, DEAD_LETTERED, DELIVERED, RETRIED, Hooks, Middleware, Outcome, _current
from ._routing import Matcher
from .adapter._contract import Adapter, Consumer
from .resilience._inbox import Inbox, InboxError
from .resilience._retry import RetryPolicy

__all__ = ["Subscription", "Worker"]

log = logging.getLogger("eventbus.worker")

Handler = Callable[[Event], Any]
#: What became of one event: None to ack it, else ``("retry", reason, delay)``
#: or ``("dead", reason, 0.0)``. Acking is the common case, so it costs no tuple.
Verdict = tuple[str, str, float] | None
#: One stage of a group's pipeline, from a decoded event to its verdict.
Step = Callable[[Event, Delivery], Verdict]
#: A compiled pipeline: one received batch, handled and settled.
Process = Callable[[Consumer, list[Delivery]], None]


@dataclass(frozen=True)
class Subscription:
    """A handler bound to patterns within a group."""

    group: str
    patterns: tuple[str, ...]
    handler: Handler
    retry: RetryPolicy
    timeout: float | None = None
    concurrency: int = 1

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler) or inspect.iscoroutinefunction(
            getattr(self.handler, "__call__", None)  # noqa: B004 - async callable objects
        )

    @property
    def name(self) -> str:
        h = self.handler
        return f"{getattr(h, '__module__', '?')}.{getattr(h, '__qualname__', repr(h))}"


def _unmatched(g: _Group, event: Event) -> str:
    return f"no handler in group {g.name!r} matches event type {event.type!r}"


def _link(mw: Middleware, nxt: Callable[[Event], None]) -> Callable[[Event], None]:
    def call(event: Event) -> None:
        mw(event, nxt)

    return call


class _Group:
    """The subscriptions of one group, and its pipeline once compiled."""

    def __init__(self, name: str, subs: Sequence[Subscription]) -> None:
        self.name = name
        self.subs = list(subs)
        self.patterns = tuple(dict.fromkeys(p for s in subs for p in s.patterns))
        self.retry = subs[0].retry
        self.concurrency = max(s.concurrency for s in subs)
        timeouts = [s.timeout for s in subs]
        # How long an inbox claim lasts: past every handler's timeout, else a minute.
        self.claim_lease = (
            sum(t for t in timeouts if t is not None) + 10.0 if None not in timeouts else 60.0
        )
        #: (the middleware and whether outcome callbacks were there, the pipeline
        #: compiled for them), set by :meth:`Worker._compile`.
        self.compiled: tuple[list[Middleware], bool, Process] | None = None


class Worker:
    """Runs the consumer threads of a bus until :meth:`stop`."""

    def __init__(
        self,
        adapter: Adapter,
        subscriptions: Sequence[Subscription],
        *,
        prefetch: int = 100,
        poll_interval: float = 0.5,
        loop: asyncio.AbstractEventLoop | None = None,
        inbox: Inbox | None = None,
        inbox_lease: float | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        groups: dict[str, list[Subscription]] = {}
        for s in subscriptions:
            groups.setdefault(s.group, []).append(s)
        self._groups = [_Group(name, subs) for name, subs in groups.items()]
        self._adapter = adapter
        self._prefetch = prefetch
        self._poll = poll_interval
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop = loop
        self._own_loop: asyncio.AbstractEventLoop | None = None
        self._inbox = inbox
        self._hooks = hooks or Hooks()
        if inbox_lease is not None:
            for g in self._groups:
                g.claim_lease = inbox_lease
        self._handler_threads: set[threading.Thread] = set()
        self._count_lock = threading.Lock()
        self._started = threading.Event()
        self.errors: list[BaseException] = []
        #: Deliveries acked unhandled because the inbox knew their event id.
        self.duplicates = 0
        #: ``def`` handler threads abandoned past their timeout and still running.
        self.overrunning = 0
        #: Groups that cannot receive now (the broker is unreachable), with the
        #: ``time.monotonic()`` of their first failed receive: the worker's health.
        self.down: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        needs_loop = any(s.is_async for g in self._groups for s in g.subs)
        if needs_loop and self._loop is None:
            self._own_loop = asyncio.new_event_loop()
            t = threading.Thread(
                target=self._own_loop.run_forever, name="eventbus-loop", daemon=True
            )
            t.start()
            self._loop = self._own_loop
        for g in self._groups:
            self._compile(g)
        for g in self._groups:
            self._adapter.declare(g.name, g.patterns)
        for g in self._groups:
            for i in range(g.concurrency):
                t = threading.Thread(
                    target=self._consume, args=(g,), name=f"eventbus-{g.name}-{i}", daemon=True
                )
                t.start()
                self._threads.append(t)
        self._started.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop taking new events, finish the one in hand, return the rest; join."""
        self._stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            if t is threading.current_thread():
                continue
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._own_loop is not None:
            self._own_loop.call_soon_threadsafe(self._own_loop.stop)

    def request_stop(self) -> None:
        """Ask every consumer thread to stop after the event in hand; returns at once."""
        self._stop.set()

    def owns_current_thread(self) -> bool:
        """True when called from a consumer thread or from the loop running handlers."""
        current = threading.current_thread()
        if current in self._threads or current in self._handler_threads:
            return True
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stop.wait(timeout)

    # -- the consumer loop ---------------------------------------------------------
    def _consume(self, g: _Group) -> None:
        consumer: Consumer | None = None
        backoff = 0.1
        failures, last_said = 0, 0.0
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._adapter.consumer(g.name, g.patterns)
                batch = consumer.receive(self._prefetch, self._poll)
                backoff = 0.1
                if failures:
                    down = time.monotonic() - self.down.pop(g.name, time.monotonic())
                    log.info(
                        "group %s: receiving again after %d failed tries (%.1fs)",
                        g.name,
                        failures,
                        down,
                    )
                    failures = 0
            except ClosedError:
                if self._stop.is_set():
                    break
                consumer = None
                self._stop.wait(backoff)
                continue
            except BrokerError as exc:
                failures += 1
                now = time.monotonic()
                if failures == 1:  # once per outage, then a reminder a minute
                    self.down[g.name] = now
                    last_said = now
                    log.warning(
                        "group %s: cannot receive (%s); retrying, backoff up to 5s", g.name, exc
                    )
                elif now - last_said >= 60:
                    last_said = now
                    since = self.down.get(g.name, now)
                    log.warning(
                        "group %s: still cannot receive after %d tries (%.0fs): %s",
                        g.name,
                        failures,
                        now - since,
                        exc,
                    )
                else:
                    log.debug("group %s: receive failed again (%s)", g.name, exc)
                self._close_quietly(consumer)
                consumer = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except Exception as exc:  # an adapter bug must not end this group's consumption
                log.exception("group %s: unexpected error receiving; reconnecting", g.name)
                self.errors.append(exc)
                self._close_quietly(consumer)
                consumer = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if batch:
                try:
                    self._process(g, consumer, batch)
                except BrokerError as exc:
                    log.warning("group %s: settling failed (%s); deliveries come back", g.name, exc)
                    self._close_quietly(consumer)
                    consumer = None
                except Exception as exc:  # as above: unsettled deliveries come back
                    log.exception("group %s: unexpected error settling; reconnecting", g.name)
                    self.errors.append(exc)
                    self._close_quietly(consumer)
                    consumer = None
        self._close_quietly(consumer)

    @staticmethod
    def _close_quietly(consumer: Consumer | None) -> None:
        if consumer is None:
            return
        try:
            consumer.close()
        except Exception as exc:  # closing is best effort; unsettled deliveries come back
            log.debug("consumer close failed: %s", exc)

    def _process(self, g: _Group, consumer: Consumer, batch: list[Delivery]) -> None:
        """Handle and settle ``batch`` with ``g``'s pipeline."""
        hooks, compiled = self._hooks, g.compiled
        if (
            compiled is None
            or compiled[0] != hooks.middleware
            or compiled[1] is not bool(hooks.outcome)
        ):
            compiled = self._compile(g)  # not compiled yet, or the hooks changed since
        compiled[2](consumer, batch)

    # -- the pipeline --------------------------------------------------------------
    def _compile(self, g: _Group) -> tuple[list[Middleware], bool, Process]:
        """Compose ``g``'s pipeline from the stages this worker needs; store it on ``g``."""
        hooks = self._hooks
        middleware = list(hooks.middleware)
        step = self._dispatch_stage(g, middleware)
        if hooks.outcome:
            step = self._outcome_stage(g, step)
        if self._inbox is not None:
            step = self._inbox_stage(g, step, self._inbox)
        g.compiled = compiled = (middleware, bool(hooks.outcome), self._batch_stage(g, step))
        return compiled

    def _batch_stage(self, g: _Group, step: Step) -> Process:
        """Decode each delivery, run ``step`` on it, settle it (acks in one call at the end).

        The handler context (:func:`current_handler`) is set by the stages as
        they go and stays until the next event or the end of the batch, so the
        worker's own log lines about an event still name it; it is reset once
        per batch, not once per event.
        """
        stop = self._stop
        undecodable = self._undecodable
        set_current = _current.set

        def process(consumer: Consumer, batch: list[Delivery]) -> None:
            acks: list[Delivery] = []
            token = set_current(None)
            try:
                for i, delivery in enumerate(batch):
                    if i and stop.is_set():
                        break  # the rest go back to the group on close
                    try:
                        event = decode(delivery.message, delivery.attempt)
                    except DecodeError as exc:
                        set_current(None)  # its log line must not name the event before it
                        consumer.dead_letter(delivery, undecodable(g, delivery, exc))
                        continue
                    verdict = step(event, delivery)
                    if verdict is None:
                        acks.append(delivery)
                    elif verdict[0] == "retry":
                        consumer.nack(delivery, verdict[2])
                    else:
                        consumer.dead_letter(delivery, verdict[1])
            finally:
                _current.reset(token)
            if acks:
                consumer.ack(acks)

        return process

    def _inbox_stage(self, g: _Group, step: Step, inbox: Inbox) -> Step:
        """Claim the event id before ``step``; record it done (acked) or release it after."""
        group, retry = g.name, g.retry
        set_current = _current.set

        def dedup(event: Event, delivery: Delivery) -> Verdict:
            set_current((group, "", event))
            try:
                claim, wait = inbox.claim(group, event.id, g.claim_lease)
            except InboxError as exc:  # not the event's fault: try it later, never dead-letter
                log.warning("group %s: inbox unavailable (%s); %s comes back", group, exc, event.id)
                return "retry", f"inbox unavailable: {exc}", retry.delay(delivery.attempt)
            if claim == "done":
                log.debug("group %s: dropping duplicate %s", group, event.id)
                self.duplicates += 1
                return None
            if claim == "busy":  # another member has it: look again (by the end of its claim)
                again = min(wait + 0.05, max(0.5, retry.delay(delivery.attempt)))
                return "retry", "held by another member", again
            verdict = step(event, delivery)
            try:
                if verdict is None:
                    inbox.complete(group, event.id)
                else:
                    inbox.release(group, event.id)
            except InboxError as exc:
                log.warning("group %s: inbox could not record %s (%s)", group, event.id, exc)
            return verdict

        return dedup

    def _outcome_stage(self, g: _Group, step: Step) -> Step:
        """Report ``delivered`` before ``step``, and what became of the event after it."""
        group, emit = g.name, self._hooks.emit
        set_current = _current.set

        def report(event: Event, delivery: Delivery) -> Verdict:
            set_current((group, "", event))  # the callbacks' log lines name the event
            emit(Outcome(DELIVERED, event, event.type, group, event.attempt))
            started = time.monotonic()
            try:
                verdict = step(event, delivery)
            except BaseException as exc:  # not expected: the dispatch catches handler errors
                set_current((group, "", event))
                emit(
                    Outcome(
                        RETRIED,
                        event,
                        event.type,
                        group,
                        event.attempt,
                        time.monotonic() - started,
                        str(exc),
                        exc,
                    )
                )
                raise
            duration = time.monotonic() - started
            set_current((group, "", event))
            if verdict is None:
                emit(Outcome(ACKED, event, event.type, group, event.attempt, duration))
            else:
                kind = RETRIED if verdict[0] == "retry" else DEAD_LETTERED
                emit(Outcome(kind, event, event.type, group, event.attempt, duration, verdict[1]))
            return verdict

        return report

    def _dispatch_stage(self, g: _Group, middleware: Sequence[Middleware]) -> Step:
        """Call every handler of ``g`` whose patterns match, in order; the first to fail decides.

        Each handler's callable is made here, once: the handler itself for a
        ``def`` without a timeout, else the call that waits for it; inside
        the middleware (the first registered is outermost), if any.
        """
        group, failed = g.name, self._failed
        table = []
        for sub in g.subs:
            call = self._caller(sub)
            for mw in reversed(middleware):
                call = _link(mw, call)
            table.append((Matcher(sub.patterns).test, sub.name, call, sub))
        set_current = _current.set

        def dispatch(event: Event, delivery: Delivery) -> Verdict:
            matched = False
            for test, name, call, sub in table:
                if test(event.type):
                    set_current((group, name, event))
                    try:
                        call(event)
                    except Exception as exc:
                        return failed(g, sub, event, delivery, exc)
                    matched = True
            if matched:
                return None
            set_current((group, "", event))
            return "dead", _unmatched(g, event), 0.0

        return dispatch

    def _caller(self, sub: Subscription) -> Callable[[Event], None]:
        """What runs ``sub``'s handler on an event: the handler, or a call under its timeout."""
        if sub.is_async:
            return functools.partial(self._call_async, sub)
        if sub.timeout is not None:
            return functools.partial(self._call_with_timeout, sub)
        return sub.handler

    def _undecodable(self, g: _Group, delivery: Delivery, exc: DecodeError) -> str:
        """Report an undecodable delivery; the reason to dead-letter it with."""
        log.warning("group %s: dead-lettering an undecodable message: %s", g.name, exc)
        self._hooks.undecodable(g.name, delivery, f"undecodable: {exc}")
        return f"undecodable: {exc}"

    @staticmethod
    def _failed(
        g: _Group, sub: Subscription, event: Event, delivery: Delivery, exc: Exception
    ) -> Verdict:
        """The verdict on a handler that raised ``exc``: retry after a delay, or dead letter."""
        reason = f"{type(exc).__name__}: {exc}"
        if g.retry.should_retry(exc, delivery.attempt):
            log.info(
                "group %s: %s failed on %s (attempt %d): %s; retrying",
                g.name,
                sub.name,
                event.id,
                delivery.attempt,
                reason,
            )
            return "retry", reason, g.retry.delay(delivery.attempt)
        log.warning(
            "group %s: %s failed on %s after %d attempt(s): %s; dead-lettering",
            g.name,
            sub.name,
            event.id,
            delivery.attempt,
            reason,
        )
        return "dead", f"{reason} (attempt {delivery.attempt} of {g.retry.max_attempts})", 0.0

    def _call_async(self, sub: Subscription, event: Event) -> None:
        """Run an ``async def`` handler on the loop and wait for it (cancelled past its timeout)."""
        loop = self._loop
        assert loop is not None
        coro = sub.handler(event)
        if sub.timeout is not None:
            coro = asyncio.wait_for(coro, sub.timeout)
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        # wait_for cancels on time; the extra second covers a loop blocked by sync code
        limit = None if sub.timeout is None else sub.timeout + 1.0
        try:
            fut.result(limit)
        except (asyncio.TimeoutError, concurrent.futures.TimeoutError):
            fut.cancel()
            raise HandlerTimeout(f"{sub.name} ran past its {sub.timeout}s timeout") from None

    def _call_with_timeout(self, sub: Subscription, event: Event) -> None:
        """Run a ``def`` handler on its own thread; stop waiting for it after its timeout.

        A thread per call (not a pool): abandoned threads must never hold the
        slots that later events need, or one hung handler would time out all.
        """
        timeout = sub.timeout
        assert timeout is not None
        done = threading.Event()
        state = {"finished": False, "abandoned": False}
        failure: list[BaseException] = []
        started = time.monotonic()

        def run() -> None:
            try:
                sub.handler(event)
            except BaseException as exc:
                failure.append(exc)
            finally:
                with self._count_lock:
                    state["finished"] = True
                    late = state["abandoned"]
                    if late:
                        self.overrunning -= 1
                self._handler_threads.discard(threading.current_thread())
                done.set()
                if late:
                    log.warning(
                        "%s finished %s %.1fs after its %ss timeout; its outcome was ignored (%s)",
                        sub.name,
                        event.id,
                        time.monotonic() - started - timeout,
                        timeout,
                        f"{type(failure[0]).__name__}: {failure[0]}" if failure else "returned",
                    )

        context = contextvars.copy_context()  # the handler sees the middleware's context (spans)
        t = threading.Thread(
            target=context.run, args=(run,), name=f"eventbus-handler-{event.id}", daemon=True
        )
        self._handler_threads.add(t)
        t.start()
        if not done.wait(timeout):
            with self._count_lock:
                if not state["finished"]:
                    state["abandoned"] = True
                    self.overrunning += 1
            if state["abandoned"]:
                log.warning(
                    "%s overran its %ss timeout on %s; its thread is abandoned",
                    sub.name,
                    timeout,
                    event.id,
                )
                raise HandlerTimeout(f"{sub.name} ran past its {timeout}s timeout")
            done.wait()
        if failure:
            raise failure[0]
