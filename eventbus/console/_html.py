"""The console's pages: server-rendered HTML in which every value is escaped.

Nothing here builds markup from unescaped data: :func:`e` (``html.escape``
with quotes) wraps every value that came from the broker, the config or the
request. Pages carry no inline script or style (the Content-Security-Policy
forbids them); ``/static/console.js`` does the live parts.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from ._state import Console, GroupRow, Letter, LogPage, OutboxState, pretty_json, safe_bytes

__all__ = ["e", "page"]

NAV = (
    ("/", "Groups"),
    ("/log", "Event log"),
    ("/tail", "Live tail"),
    ("/outbox", "Outbox"),
    ("/asyncapi", "AsyncAPI"),
)


def e(value: Any) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def q(value: str) -> str:
    """A path segment (group names, event ids) for a URL inside an attribute."""
    return e(quote(value, safe=""))


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    t = datetime.fromtimestamp(ts, timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def page(console: Console, title: str, body: str, *, active: str = "") -> str:
    current = ' class="active"'
    links = "".join(
        f'<a href="{href}"{current if href == active else ""}>{e(label)}</a>' for href, label in NAV
    )
    local = console.local_only()
    banner = f'<p class="note warn">{e(local)}</p>' if local else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} - eventbus console</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/console.css">'
        '<script src="/static/console.js" defer></script></head><body>'
        f'<header><span class="brand">eventbus console</span><nav>{links}</nav>'
        f'<span class="where" id="where">{e(console.where)}</span></header>'
        f"<main>{banner}<h1>{e(title)}</h1>{body}</main></body></html>\n"
    )


def note(text: str | None, kind: str = "") -> str:
    return f'<p class="note {kind}">{e(text)}</p>' if text else ""


def token_field(token: str | None) -> str:
    """The token travels in a form field: filled in when the browser has it (from the
    startup URL), else asked for."""
    if token:
        return f'<input type="hidden" name="token" value="{e(token)}">'
    return (
        '<label class="token">token <input type="password" name="token" required '
        'autocomplete="off" placeholder="printed at startup"></label>'
    )


def action_form(
    path: str,
    label: str,
    token: str | None,
    *,
    fields: dict[str, str] | None = None,
    danger: bool = False,
) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{e(k)}" value="{e(v)}">' for k, v in (fields or {}).items()
    )
    cls = "danger" if danger else ""
    return (
        f'<form method="post" action="{e(path)}" class="action">{hidden}'
        f'{token_field(token)}<button type="submit" class="{cls}">{e(label)}</button></form>'
    )


def table(head: Sequence[str], rows: Iterable[str], *, ident: str = "") -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    attr = f' id="{e(ident)}"' if ident else ""
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# -- groups ---------------------------------------------------------------------------------


def _count(n: int | None, more: bool = False) -> str:
    return "n/a" if n is None else f"{n}+" if more else str(n)


def group_row(row: GroupRow) -> str:
    dead = _count(row.dead, row.dead_more)
    dead_cell = (
        f'<a href="/groups/{q(row.name)}/dead">{e(dead)}</a>' if row.dead is not None else e(dead)
    )
    return (
        f'<tr data-group="{e(row.name)}"><td class="name">{e(row.name)}</td>'
        f"<td>{e(', '.join(row.patterns) or '-')}</td>"
        f'<td class="num waiting">{e(_count(row.waiting))}</td>'
        f'<td class="num dead">{dead_cell}</td>'
        f'<td><img class="chart" alt="chart of {e(row.name)}" width="240" height="48" '
        f'src="/chart/{q(row.name)}.svg"></td></tr>'
    )


def groups_page(console: Console, rows: list[GroupRow], outbox: OutboxState | None) -> str:
    waiting = "waiting + in flight"
    body = note(console.groups_note(), "info")
    body += '<p class="live">refreshed every few seconds</p>' if rows else ""
    if rows:
        body += table(
            (
                "group",
                "patterns",
                waiting,
                "dead letters",
                "throughput / dead letters, last minutes",
            ),
            (group_row(r) for r in rows),
            ident="groups",
        )
        counted = console.throughput()
        blue = (
            f'<span class="published">{e(counted)}</span>'
            if counted
            else "no throughput (this broker keeps no event log: serve the console inside the "
            "app, eventbus.console.serve(bus=...), to count what its handlers do)"
        )
        body += (
            f'<p class="legend">Charts, one point per {e(f"{console.sample_every:g}")} s: '
            f'{blue}; <span class="dead">dead letters</span> waiting.</p>'
        )
    else:
        body += '<p class="empty">No groups known yet.</p>'
    if outbox is not None and outbox.enabled:
        body += (
            f'<p>Local outbox: <a href="/outbox">{e(outbox.pending)} event(s) waiting</a>'
            f"{', oldest ' + e(age(outbox.oldest_age)) if outbox.pending else ''}</p>"
        )
    return page(console, "Groups", body, active="/")


# -- a message, decoded or not ----------------------------------------------------------------


def payload(letter: Letter) -> str:
    """The data, pretty JSON where it is JSON, bytes shown safely, the decode error if any."""
    if letter.event is None:
        return (
            f'<p class="note warn">cannot decode: {e(letter.error)}</p>'
            f"<h3>raw body ({len(letter.message.body)} bytes)</h3>"
            f'<pre class="payload raw">{e(safe_bytes(letter.message.body))}</pre>'
        )
    data = letter.event.data
    if isinstance(data, bytes):
        return (
            f"<h3>data ({len(data)} bytes, {e(letter.event.datacontenttype or 'binary')})"
            f'</h3><pre class="payload raw">{e(safe_bytes(data))}</pre>'
        )
    return f'<h3>data</h3><pre class="payload">{e(pretty_json(data))}</pre>'


def attributes(letter: Letter) -> str:
    rows = [
        f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
        for k, v in sorted(letter.message.headers.items())
    ]
    extra: list[tuple[str, Any]] = [("topic", letter.message.topic), ("key", letter.message.key)]
    if letter.reason is not None:
        extra += [
            ("reason", letter.reason),
            ("attempt", letter.attempt),
            ("failed at", letter.failed_at or "not recorded by this adapter"),
        ]
    if letter.seq is not None:
        extra += [("seq", letter.seq), ("published", iso(letter.published_at))]
    top = [f"<tr><th>{e(k)}</th><td>{e(v if v is not None else '-')}</td></tr>" for k, v in extra]
    return f'<table class="attrs"><tbody>{"".join(top + rows)}</tbody></table>'


# -- dead letters ------------------------------------------------------------------------------


def letters_page(
    console: Console, group: str, letters: list[Letter], token: str | None, limit: int
) -> str:
    base = f"/groups/{quote(group, safe='')}"
    rows = [
        f'<tr><td><a href="{e(base)}/dead/{q(x.id)}">{e(x.id or "(no id)")}</a></td>'
        f"<td>{e(x.message.topic)}</td><td>{e(x.failed_at or x.time or '-')}</td>"
        f'<td class="num">{e(x.attempt)}</td><td class="reason">{e(x.reason)}</td></tr>'
        for x in letters
    ]
    body = f"<p>Group <b>{e(group)}</b> on {e(console.where)}.</p>"
    if not letters:
        body += '<p class="empty">No dead letters.</p>'
    else:
        more = f" (the first {limit})" if len(letters) >= limit else ""
        body += f"<p>{len(letters)} dead letter(s){e(more)}, oldest first.</p>"
        body += '<div class="actions">'
        body += action_form(f"{base}/replay", "Replay oldest", token, fields={"limit": "1"})
        body += action_form(f"{base}/replay", "Replay all", token)
        body += action_form(f"{base}/purge", "Purge all", token, danger=True)
        body += "</div>"
        body += table(
            ("id", "type", "failed at / event time", "attempt", "reason"), rows, ident="letters"
        )
    return page(console, f"Dead letters of {group}", body, active="/")


def letter_page(console: Console, group: str, place: int, letter: Letter, token: str | None) -> str:
    base = f"/groups/{quote(group, safe='')}"
    body = f'<p><a href="{e(base)}/dead">&larr; dead letters of {e(group)}</a></p>'
    body += f'<p class="reason-line">reason: <b>{e(letter.reason)}</b></p>'
    body += '<div class="actions">'
    if place == 0:
        body += action_form(
            f"{base}/replay", "Replay this letter", token, fields={"upto": letter.id}
        )
    else:
        body += note(
            f"Replays go oldest first: {place} older letter(s) of this group go back "
            "with this one.",
            "info",
        )
        body += action_form(
            f"{base}/replay",
            f"Replay up to this letter ({place + 1})",
            token,
            fields={"upto": letter.id},
        )
    body += "</div>"
    body += f'<div class="letter">{attributes(letter)}{payload(letter)}</div>'
    return page(console, f"Dead letter {letter.id}", body, active="/")


def confirm_page(
    console: Console,
    title: str,
    question: str,
    path: str,
    token: str | None,
    fields: dict[str, str],
    *,
    danger: bool = False,
) -> str:
    body = f'<p class="question">{e(question)}</p><div class="actions">'
    body += action_form(
        path, "Yes, do it", token, fields={**fields, "confirmed": "yes"}, danger=danger
    )
    body += f'<a class="button" href="{e(fields.get("back", "/"))}">Cancel</a></div>'
    return page(console, title, body)


def result_page(console: Console, title: str, message: str, back: str) -> str:
    body = f'<p class="result" id="result">{e(message)}</p><p><a href="{e(back)}">Back</a></p>'
    return page(console, title, body)


def error_page(console: Console, title: str, message: str) -> str:
    return page(console, title, note(message, "warn"))


# -- the event log ------------------------------------------------------------------------------


def log_page(
    console: Console, form: dict[str, str], result: LogPage | None, error: str | None
) -> str:
    def field(name: str, label: str, kind: str = "text", hint: str = "") -> str:
        return (
            f'<label>{e(label)} <input type="{kind}" name="{name}" value="{e(form.get(name))}"'
            f' placeholder="{e(hint)}"></label>'
        )

    body = (
        '<form method="get" action="/log" class="search" id="log-search">'
        + field("type", "type", hint="order.* or #")
        + field("since", "from (UTC)", hint="2026-12-04T18:00")
        + field("until", "to (UTC)", hint="2026-12-04T19:00")
        + field("id", "id")
        + field("correlationid", "correlation id")
        + '<button type="submit">Search</button></form>'
    )
    body += note(error, "warn")
    if result is not None:
        rows = [
            f'<tr><td class="num"><a href="/log/{e(x.seq)}">{e(x.seq)}</a></td>'
            f"<td>{e(iso(x.published_at))}</td><td>{e(x.message.topic)}</td>"
            f"<td>{e(x.id)}</td><td>{e(x.correlationid or '-')}</td>"
            f'<td class="preview">{e(_preview(x))}</td></tr>'
            for x in result.entries
        ]
        if rows:
            body += table(
                ("seq", "published (UTC)", "type", "id", "correlation id", "data"),
                rows,
                ident="log",
            )
        else:
            body += '<p class="empty">No matching events.</p>'
        if result.truncated:
            body += note(
                f"Looked through the log up to seq {result.scanned_to}; continue for more.", "info"
            )
        if result.next_after is not None:
            params = {k: v for k, v in form.items() if v and k != "after"}
            params["after"] = str(result.next_after)
            body += f'<p><a id="next" href="/log?{e(urlencode(params))}">Next page &rarr;</a></p>'
    return page(console, "Event log", body, active="/log")


def _preview(letter: Letter, width: int = 80) -> str:
    if letter.event is None:
        return f"! undecodable: {letter.error}"
    data = letter.event.data
    if isinstance(data, bytes):
        text = f"<{len(data)} bytes>"
    else:
        text = json.dumps(data, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 3] + "..."


def entry_page(console: Console, letter: Letter) -> str:
    body = '<p><a href="/log">&larr; event log</a></p>'
    body += f'<div class="letter">{attributes(letter)}{payload(letter)}</div>'
    return page(console, f"Event {letter.seq}", body, active="/log")


# -- tail, outbox, asyncapi ---------------------------------------------------------------------


def tail_page(console: Console, pattern: str, note_text: str | None) -> str:
    body = note(note_text, "info")
    body += (
        '<form method="get" action="/tail" class="search" id="tail-form">'
        f'<label>pattern <input type="text" name="pattern" value="{e(pattern)}" '
        'placeholder="order.* or #"></label><button type="submit">Watch</button></form>'
    )
    if pattern:
        body += (
            f'<p class="live" id="tail-status" data-pattern="{e(pattern)}">connecting...</p>'
            + table(("received", "type", "id", "key", "correlation id", "data"), [], ident="tail")
        )
    return page(console, "Live tail", body, active="/tail")


def outbox_page(console: Console, state: OutboxState, token: str | None) -> str:
    if not state.enabled:
        body = note("The outbox is off for this config (publish.outbox = false).", "info")
    else:
        body = table(
            ("file", "waiting", "oldest"),
            [
                f'<tr><td>{e(state.path)}</td><td class="num" id="outbox-pending">'
                f"{e(state.pending)}</td><td>{e(age(state.oldest_age))}</td></tr>"
            ],
        )
        if state.pending:
            body += '<div class="actions">' + action_form("/outbox/drain", "Drain now", token)
            body += "</div>"
    return page(console, "Local outbox", body, active="/outbox")


def asyncapi_page(console: Console, doc: dict[str, Any] | None, error: str | None) -> str:
    if doc is None:
        return page(console, "AsyncAPI", note(error, "info"), active="/asyncapi")
    info = doc.get("info", {})
    body = f"<p>{e(info.get('title'))} {e(info.get('version'))} (AsyncAPI {e(doc.get('asyncapi'))})"
    body += ' - <a href="/api/asyncapi">JSON</a></p>'
    servers = [
        f"<tr><td>{e(n)}</td><td>{e(s.get('protocol'))}</td><td>{e(s.get('host'))}</td>"
        f"<td>{e(s.get('description', ''))}</td></tr>"
        for n, s in doc.get("servers", {}).items()
    ]
    body += "<h2>Servers</h2>" + table(("name", "protocol", "host", "description"), servers)
    ops = []
    for name, op in doc.get("operations", {}).items():
        channel = str(op.get("channel", {}).get("$ref", "")).rsplit("/", 1)[-1]
        address = doc.get("channels", {}).get(channel, {}).get("address", channel)
        ops.append(
            f"<tr><td>{e(name)}</td><td>{e(op.get('action'))}</td><td>{e(address)}</td>"
            f"<td>{e(op.get('x-eventbus-group', ''))}</td>"
            f"<td>{e(op.get('summary', ''))}</td></tr>"
        )
    body += "<h2>Operations</h2>" + table(
        ("operation", "action", "channel", "group", "summary"), ops
    )
    body += (
        "<h2>Messages and schemas</h2><details><summary>the whole document</summary>"
        f'<pre class="payload">{e(pretty_json(doc))}</pre></details>'
    )
    return page(console, "AsyncAPI", body, active="/asyncapi")


# -- charts --------------------------------------------------------------------------------------


def chart_svg(
    title: str, series: Sequence[tuple[str, Sequence[int]]], width: int = 240, height: int = 48
) -> str:
    """A small line chart as a standalone SVG document (served as an image)."""
    top = max([1, *(v for _, values in series for v in values)])
    lines = []
    for cls, values in series:
        if len(values) < 2:
            continue
        step = width / (len(values) - 1)
        points = " ".join(
            f"{i * step:.1f},{height - 2 - (v / top) * (height - 6):.1f}"
            for i, v in enumerate(values)
        )
        colour = "#2b6cb0" if cls == "published" else "#c53030"
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{points}"><title>{e(cls)}</title></polyline>'
        )
    empty = (
        ""
        if lines
        else (
            f'<text x="4" y="{height // 2 + 4}" font-size="11" fill="#718096">collecting...</text>'
        )
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{e(title)}</title>'
        f'<rect width="{width}" height="{height}" fill="#f7fafc"/>'
        f'<text x="{width - 4}" y="11" font-size="10" text-anchor="end" fill="#718096">'
        f"max {top}</text>{''.join(lines)}{empty}</svg>"
    )
