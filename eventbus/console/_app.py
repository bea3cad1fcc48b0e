"""The console's web app (Starlette): pages, a JSON API, the live tail as server-sent events.

Safety: GET never changes anything; replay, purge and drain are POSTs that
need the token (form field ``token`` or header ``X-Eventbus-Token``), and a
form asks for confirmation first. Opening ``/?token=...`` (the URL printed at
startup) keeps the token in an HttpOnly, SameSite=Strict cookie so the page
can fill it into its forms; the cookie alone authorizes nothing. Every
response carries a strict Content-Security-Policy (no inline script), and
only the Host names given are answered (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import queue
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import ConfigError, EventBusError
from .._routing import validate_pattern
from ..observability import redact_text
from ..observability._tail import TailItem, can_delete_groups, json_record, tail
from . import _html as view
from ._state import Console, Letter, Unsupported, pretty_json

__all__ = ["create_app"]

COOKIE = "eventbus_console_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: What a wrong search or pattern raises (a pattern's mistakes are ConfigErrors).
BAD_INPUT = (TypeError, ValueError, ConfigError)
#: Live tails at once (each holds a group on the broker and a thread).
MAX_TAILS = 4


class _Headers:
    """Security headers on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cache-control", b"no-store"),
                ]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with)


def _letter_json(x: Letter) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": x.id,
        "topic": x.message.topic,
        "key": x.message.key,
        "attributes": dict(x.message.headers),
    }
    for name in ("reason", "attempt", "failed_at", "seq", "published_at"):
        value = getattr(x, name)
        if value is not None:
            record[name] = value
    if x.event is None:
        record["decode_error"] = x.error
    elif isinstance(x.event.data, bytes):
        import base64

        record["data_base64"] = base64.b64encode(x.event.data).decode("ascii")
    else:
        record["data"] = x.event.data
    return record


def create_app(
    console: Console,
    token: str,
    *,
    hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1", "[::1]"),
    on_close: Callable[[], None] | None = None,
) -> Starlette:
    """The ASGI app over ``console``; ``token`` guards the mutating endpoints."""
    tails = threading.BoundedSemaphore(MAX_TAILS)

    def valid(given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), token.encode())

    def browser_token(request: Request) -> str | None:
        return token if valid(request.cookies.get(COOKIE)) else None

    def html(text: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(text, status)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def guarded(request: Request, work: Callable[[], Any], title: str) -> Any:
        """Run ``work`` in the pool; an unsupported or failing call becomes a page."""
        try:
            return await call(work)
        except Unsupported as exc:
            return html(view.error_page(console, title, str(exc)))
        except EventBusError as exc:
            return html(view.error_page(console, title, redact_text(str(exc))), 502)

    # -- pages ------------------------------------------------------------------------
    async def home(request: Request) -> Response:
        given = request.query_params.get("token")
        if given is not None:  # the startup URL: keep the token for the forms, drop it from the URL
            response = RedirectResponse("/", 303)
            if valid(given):
                response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return response

        def work() -> Response:
            return html(view.groups_page(console, console.groups(), console.outbox()))

        result: Response = await guarded(request, work, "Groups")
        return result

    async def letters(request: Request) -> Response:
        group = request.path_params["group"]
        limit = 200

        def work() -> Response:
            found = console.dead_letters(group, limit)
            return html(view.letters_page(console, group, found, browser_token(request), limit))

        result: Response = await guarded(request, work, f"Dead letters of {group}")
        return result

    async def letter(request: Request) -> Response:
        group, event_id = request.path_params["group"], request.path_params["event_id"]

        def work() -> Response:
            found = console.dead_letter(group, event_id)
            if found is None:
                return html(
                    view.error_page(
                        console, "Dead letter", f"no dead letter {event_id!r} in group {group!r}"
                    ),
                    404,
                )
            return html(
                view.letter_page(console, group, found[0], found[1], browser_token(request))
            )

        result: Response = await guarded(request, work, "Dead letter")
        return result

    def log_form(request: Request) -> dict[str, str]:
        keys = ("type", "since", "until", "id", "correlationid", "after")
        return {k: request.query_params.get(k, "").strip() for k in keys}

    def search(form: dict[str, str]) -> Any:
        pattern = form["type"] or None
        if pattern:
            validate_pattern(pattern)
        after = int(form["after"]) if form["after"] else 0
        return console.search_log(
            pattern=pattern,
            since=form["since"],
            until=form["until"],
            event_id=form["id"],
            correlation=form["correlationid"],
            after=after,
        )

    async def log(request: Request) -> Response:
        form = log_form(request)
        if not console.has_log():
            return html(view.log_page(console, form, None, str(_no_log(console))))

        def work() -> Response:
            try:
                return html(view.log_page(console, form, search(form), None))
            except BAD_INPUT as exc:
                return html(view.log_page(console, form, None, str(exc)), 400)

        result: Response = await guarded(request, work, "Event log")
        return result

    async def log_entry(request: Request) -> Response:
        seq = request.path_params["seq"]

        def work() -> Response:
            found = console.log_entry(seq)
            if found is None:
                return html(view.error_page(console, "Event", f"no event {seq} in the log"), 404)
            return html(view.entry_page(console, found))

        result: Response = await guarded(request, work, "Event")
        return result

    async def tail_view(request: Request) -> Response:
        pattern = request.query_params.get("pattern", "").strip()
        note = None
        if not can_delete_groups(console.adapter):
            note = (
                f"the {console.name} adapter cannot remove groups: the tail keeps one group "
                "per pattern on the broker, reused by the next tail"
            )
        if pattern:
            try:
                validate_pattern(pattern)
            except BAD_INPUT as exc:
                return html(view.tail_page(console, "", f"pattern {pattern!r}: {exc}"), 400)
        return html(view.tail_page(console, pattern, note))

    async def outbox(request: Request) -> Response:
        def work() -> Response:
            return html(view.outbox_page(console, console.outbox(), browser_token(request)))

        result: Response = await guarded(request, work, "Local outbox")
        return result

    async def asyncapi(request: Request) -> Response:
        def work() -> Response:
            try:
                return html(view.asyncapi_page(console, console.asyncapi(), None))
            except Unsupported as exc:
                return html(view.asyncapi_page(console, None, str(exc)))

        result: Response = await guarded(request, work, "AsyncAPI")
        return result

    async def chart(request: Request) -> Response:
        group = request.path_params["group"]
        h = console.history_of(group)
        series = [("published", h["throughput"]), ("dead letters", h["dead_letters"])]
        svg = view.chart_svg(f"{group}: throughput (blue) and dead letters (red)", series)
        return Response(svg, media_type="image/svg+xml")

    # -- actions ------------------------------------------------------------------------
    async def authorized(request: Request) -> tuple[dict[str, str], bool] | Response:
        """The form (or empty for API calls) and whether it came as an API call; or a 403."""
        api = "x-eventbus-token" in request.headers
        form: dict[str, str] = {}
        if api:
            given = request.headers["x-eventbus-token"]
        else:
            form = await _form(request)
            given = form.get("token", "")
        if not valid(given):
            message = "a valid token is needed for this (printed when the console started)"
            if api:
                return JSONResponse({"error": message}, 403)
            return html(view.error_page(console, "Not allowed", message), 403)
        if api:
            form = {k: v for k, v in request.query_params.items()}
        return form, api

    async def act(
        request: Request,
        title: str,
        question: str,
        back: str,
        work: Callable[[dict[str, str]], tuple[str, dict[str, Any]]],
        danger: bool = False,
    ) -> Response:
        checked = await authorized(request)
        if isinstance(checked, Response):
            return checked
        form, api = checked
        if not api and form.get("confirmed") != "yes":
            fields = {k: v for k, v in form.items() if k not in ("token", "confirmed")}
            fields["back"] = back
            return html(
                view.confirm_page(
                    console,
                    title,
                    question,
                    request.url.path,
                    browser_token(request) or form.get("token"),
                    fields,
                    danger=danger,
                )
            )
        try:
            message, record = await call(work, form)
        except (Unsupported, LookupError, ValueError) as exc:
            text = str(exc.args[0]) if isinstance(exc, LookupError) and exc.args else str(exc)
            if api:
                return JSONResponse({"error": text}, 409)
            return html(view.error_page(console, title, text), 409)
        except EventBusError as exc:
            text = redact_text(str(exc))
            if api:
                return JSONResponse({"error": text}, 502)
            return html(view.error_page(console, title, text), 502)
        if api:
            return JSONResponse({"message": message, **record})
        return html(view.result_page(console, title, message, back))

    async def replay(request: Request) -> Response:
        group = request.path_params["group"]
        back = f"/groups/{quote(group, safe='')}/dead"

        def work(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            upto = form.get("upto") or None
            limit = int(form["limit"]) if form.get("limit") else None
            if limit is not None and limit < 1:
                raise ValueError(f"limit must be at least 1, not {limit}")
            moved = console.replay(group, upto=upto, limit=limit)
            return f"replayed {moved} dead letter(s) of group {group!r}", {"replayed": moved}

        api = "x-eventbus-token" in request.headers
        raw = dict(request.query_params) if api else await _form(request)
        upto, limit = raw.get("upto"), raw.get("limit")
        what = (
            f"dead letters of {group!r} up to {upto}"
            if upto
            else f"the oldest {limit} dead letter(s) of {group!r}"
            if limit
            else f"every dead letter of {group!r}"
        )
        return await act(request, "Replay", f"Replay {what} to group {group!r}?", back, work)

    async def purge(request: Request) -> Response:
        group = request.path_params["group"]
        back = f"/groups/{quote(group, safe='')}/dead"

        def work(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            purged = console.purge(group)
            return f"purged {purged} dead letter(s) of group {group!r}", {"purged": purged}

        return await act(
            request,
            "Purge",
            f"Delete every dead letter of group {group!r} for good?",
            back,
            work,
            danger=True,
        )

    async def drain(request: Request) -> Response:
        def work(form: dict[str, str]) -> tuple[str, dict[str, Any]]:
            sent, left = console.drain_outbox()
            message = f"sent {sent} event(s) from the outbox" + (
                f"; {left} still wait (is the broker reachable?)" if left else ""
            )
            return message, {"sent": sent, "waiting": left}

        return await act(
            request,
            "Drain the outbox",
            f"Send the events waiting in the outbox to {console.where} now?",
            "/outbox",
            work,
        )

    # -- the JSON API ---------------------------------------------------------------------
    async def api_groups(request: Request) -> Response:
        def work() -> Response:
            rows = console.groups()
            return JSONResponse(
                {
                    "broker": console.name,
                    "where": console.where,
                    "note": console.groups_note(),
                    "groups": [
                        {
                            "name": r.name,
                            "patterns": list(r.patterns),
                            "waiting": r.waiting,
                            "dead_letters": r.dead,
                            "dead_letters_more": r.dead_more,
                        }
                        for r in rows
                    ],
                }
            )

        return await api(work)

    async def api_letters(request: Request) -> Response:
        group = request.path_params["group"]
        limit = _int(request.query_params.get("limit"), 100)

        def work() -> Response:
            found = console.dead_letters(group, limit)
            return JSONResponse({"group": group, "dead_letters": [_letter_json(x) for x in found]})

        return await api(work)

    async def api_log(request: Request) -> Response:
        form = log_form(request)

        def work() -> Response:
            try:
                result = search(form)
            except BAD_INPUT as exc:
                return JSONResponse({"error": str(exc)}, 400)
            return JSONResponse(
                {
                    "entries": [_letter_json(x) for x in result.entries],
                    "next_after": result.next_after,
                    "scanned_to": result.scanned_to,
                }
            )

        return await api(work)

    async def api_history(request: Request) -> Response:
        group = request.path_params["group"]
        return JSONResponse(
            {
                "group": group,
                "every": console.sample_every,
                "throughput_counts": console.throughput(),
                **console.history_of(group),
            }
        )

    async def api_outbox(request: Request) -> Response:
        def work() -> Response:
            s = console.outbox()
            return JSONResponse(
                {
                    "enabled": s.enabled,
                    "path": s.path,
                    "pending": s.pending,
                    "oldest_age": s.oldest_age,
                }
            )

        return await api(work)

    async def api_asyncapi(request: Request) -> Response:
        return await api(
            lambda: Response(pretty_json(console.asyncapi()), media_type="application/json")
        )

    async def api(work: Callable[[], Response]) -> Response:
        try:
            result: Response = await call(work)
            return result
        except Unsupported as exc:
            return JSONResponse({"error": str(exc), "unsupported": True}, 501)
        except EventBusError as exc:
            return JSONResponse({"error": redact_text(str(exc))}, 502)

    async def tail_events(request: Request) -> Response:
        pattern = request.query_params.get("pattern", "").strip()
        try:
            validate_pattern(pattern)
        except BAD_INPUT as exc:
            return JSONResponse({"error": f"pattern {pattern!r}: {exc}"}, 400)
        if not tails.acquire(blocking=False):
            return JSONResponse({"error": f"at most {MAX_TAILS} live tails at once"}, 429)
        items: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        stop = threading.Event()

        def show(item: TailItem) -> None:
            record = json_record(item)
            record["line"] = _line(item)
            try:
                items.put_nowait(record)
            except queue.Full:
                pass  # a browser that does not keep up misses lines, the broker is not held up

        def run() -> None:
            try:
                tail(
                    console.adapter,
                    pattern,
                    show,
                    stop=stop,
                    poll=0.3,
                    on_ready=lambda g: items.put({"ready": g}),
                )
            except EventBusError as exc:
                items.put({"error": redact_text(str(exc))})
            finally:
                items.put({"end": True})
                tails.release()

        thread = threading.Thread(target=run, name="eventbus-console-tail", daemon=True)
        thread.start()

        async def stream() -> AsyncIterator[str]:
            try:
                idle = 0.0
                while True:
                    if await request.is_disconnected():
                        break
                    try:
                        record = items.get_nowait()
                    except queue.Empty:
                        await asyncio.sleep(0.1)
                        idle += 0.1
                        if idle >= 10:
                            idle = 0.0
                            yield ": keep-alive\n\n"
                        continue
                    yield "data: " + json.dumps(record, default=str, ensure_ascii=False) + "\n\n"
                    if record.get("end"):
                        break
            finally:
                stop.set()

        return StreamingResponse(stream(), media_type="text/event-stream")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_close is not None:
            await run_in_threadpool(on_close)

    static = StaticFiles(directory=str(Path(__file__).with_name("static")))
    routes = [
        Route("/", home),
        Route("/groups/{group:str}/dead", letters),
        Route("/groups/{group:str}/dead/{event_id:str}", letter),
        Route("/groups/{group:str}/replay", replay, methods=["POST"]),
        Route("/groups/{group:str}/purge", purge, methods=["POST"]),
        Route("/log", log),
        Route("/log/{seq:int}", log_entry),
        Route("/tail", tail_view),
        Route("/tail/events", tail_events),
        Route("/outbox", outbox),
        Route("/outbox/drain", drain, methods=["POST"]),
        Route("/asyncapi", asyncapi),
        Route("/chart/{group:str}.svg", chart),
        Route("/api/groups", api_groups),
        Route("/api/groups/{group:str}/dead", api_letters),
        Route("/api/groups/{group:str}/history", api_history),
        Route("/api/log", api_log),
        Route("/api/outbox", api_outbox),
        Route("/api/asyncapi", api_asyncapi),
        Mount("/static", static, name="static"),
    ]
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
        Middleware(_Headers),
    ]
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form (the only kind the page sends); anything else reads as empty."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), max_num_fields=50))


def _no_log(console: Console) -> str:
    try:
        console.search_log()
    except Unsupported as exc:
        return str(exc)
    return ""


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, min(10_000, int(text))) if text else default
    except ValueError:
        return default


def _line(item: TailItem) -> dict[str, Any]:
    """What the tail table shows of one item (the browser sets these as text)."""
    e = item.event
    received = item.received.strftime("%H:%M:%S.") + f"{item.received.microsecond // 1000:03d}"
    if e is None:
        return {
            "received": received,
            "type": item.message.topic,
            "id": "",
            "key": "",
            "correlationid": "",
            "data": f"! undecodable: {item.error}",
        }
    data = (
        f"<{len(e.data)} bytes>"
        if isinstance(e.data, bytes)
        else json.dumps(e.data, ensure_ascii=False, default=str)
    )
    return {
        "received": received,
        "type": e.type,
        "id": e.id,
        "key": e.key or "",
        "correlationid": e.correlationid or "",
        "data": data[:200],
    }
