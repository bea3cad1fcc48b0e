"""The console in a real browser (Debian's chromium driven by playwright) on a SQLite bus.

Set ``EVENTBUS_CONSOLE_SCREENSHOTS=DIR`` to save the screenshots used in
``docs/console.md`` (``console-*.png``) while the tests run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from eventbus import Event, SqliteAdapter
from eventbus.testing import eventually

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
GROUP = "billing"

pytestmark = [
    pytest.mark.sqlite,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (.ci/run installs it)"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, served, token):
    """A page that opened the startup URL (so its forms carry the token)."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    p.set_default_timeout(15_000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.goto(served(f"/?token={token}"))
    yield p
    context.close()
    assert errors == [], errors


def shot(page, name: str) -> None:
    where = os.environ.get("EVENTBUS_CONSOLE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(where) / f"console-{name}.png"))


def test_replay_one_dead_letter_through_the_page(page, served, worker) -> None:
    events = worker.dead(3)
    worker.bus.publish("order.created", {"order": 99})  # handled: the chart has traffic
    row = page.locator('#groups tr[data-group="billing"]')
    expect(row.locator(".dead")).to_have_text("3")  # the page refreshes itself
    if os.environ.get("EVENTBUS_CONSOLE_SCREENSHOTS"):
        page.wait_for_timeout(1500)  # let the charts collect a few samples
        page.reload()
    shot(page, "groups")
    row.locator(".dead a").click()
    assert page.locator("#letters tbody tr").count() == 3
    page.locator("#letters tbody tr").first.locator("a").click()
    assert '"order": 0' in page.locator("pre.payload").inner_text()
    assert "card declined for order 0" in page.locator(".reason-line").inner_text()
    shot(page, "dead-letter")
    page.get_by_role("button", name="Replay this letter").click()
    assert "Replay" in page.locator(".question").inner_text()  # asked first
    assert worker.handled == [] or all(e.id != events[0].id for e in worker.handled)
    page.get_by_role("button", name="Yes, do it").click()
    assert page.locator("#result").inner_text() == "replayed 1 dead letter(s) of group 'billing'"
    eventually(
        lambda: any(e.id == events[0].id for e in worker.handled) or None,
        what="the handler to get the replayed event",
    )
    page.get_by_role("link", name="Back").click()
    ids = page.locator("#letters tbody tr td:first-child").all_inner_texts()
    assert ids == [e.id for e in events[1:]]


def test_purge_through_the_page(page, served, worker) -> None:
    worker.dead(2)
    page.goto(served(f"/groups/{GROUP}/dead"))
    page.get_by_role("button", name="Purge all").click()
    page.get_by_role("button", name="Yes, do it").click()
    assert "purged 2 dead letter(s)" in page.locator("#result").inner_text()
    page.goto(served("/"))
    row = page.locator('#groups tr[data-group="billing"]')
    expect(row.locator(".dead")).to_have_text("0")


def test_search_the_log(page, served, worker) -> None:
    bus = worker.bus
    for i in range(6):
        bus.publish("order.paid", {"order": i}, correlationid=f"checkout-{i % 3}")
    bus.publish("parcel.shipped", {"parcel": "P-1"}, correlationid="checkout-1")
    page.goto(served("/log"))
    page.fill('input[name="correlationid"]', "checkout-1")
    page.get_by_role("button", name="Search").click()
    types = page.locator("#log tbody tr td:nth-child(3)").all_inner_texts()
    assert types == ["order.paid", "order.paid", "parcel.shipped"]
    shot(page, "log")
    page.fill('input[name="type"]', "parcel.#")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#log tbody tr").count() == 1
    page.fill('input[name="type"]', "")
    page.fill('input[name="correlationid"]', "")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#log tbody tr").count() == 7
    page.fill('input[name="type"]', "parcel.#")
    page.get_by_role("button", name="Search").click()
    page.locator("#log tbody tr a").first.click()
    assert '"parcel": "P-1"' in page.locator("pre.payload").inner_text()


def test_live_tail_shows_new_events(page, served, worker) -> None:
    page.goto(served("/tail?pattern=order.*"))
    page.wait_for_selector('#tail-status[data-ready="yes"]')
    sent = [
        worker.bus.publish("order.created", {"order": i, "user": "Ana"}, correlationid="tail-demo")
        for i in range(3)
    ]
    worker.bus.publish("parcel.shipped", {"parcel": 1})  # not matching: not shown
    expect(page.locator("#tail tbody tr")).to_have_count(3)
    page.wait_for_timeout(500)  # the non-matching event had time to (wrongly) show up
    expect(page.locator("#tail tbody tr")).to_have_count(3)
    ids = page.locator("#tail tbody tr td:nth-child(3)").all_inner_texts()
    assert sorted(ids) == sorted(r.id for r in sent)
    shot(page, "tail")


HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def test_a_hostile_payload_cannot_run_script(page, served, worker) -> None:
    worker.failing.set()
    worker.bus.publish_many(
        [
            Event(
                type="order.paid",
                data={"order": 1, "note": HOSTILE},
                subject=HOSTILE,
                source="/shop",
            )
        ]
    )
    worker.publish_raw(
        "order.raw",
        b"\xff\xfe" + HOSTILE.encode(),
        {"id": "raw-1", "specversion": "9.9", "type": HOSTILE},
    )
    probe = SqliteAdapter(worker.db)
    try:
        eventually(lambda: len(probe.dead_letters(GROUP, 10)) == 2 or None, what="dead letters")
        letters = probe.dead_letters(GROUP, 10)
    finally:
        probe.close()
    tail = served("/tail?pattern=%23")
    views = [served(f"/groups/{GROUP}/dead")]
    views += [served(f"/groups/{GROUP}/dead/{d.message.headers['id']}") for d, _ in letters]
    views += [served("/log"), served("/log?type=%23"), served("/log/1"), served("/log/2")]
    for url in views:
        page.goto(url)
        page.wait_for_timeout(100)
        assert page.evaluate("window.pwned") is None, url
        assert page.locator("script:not([src])").count() == 0, url
        assert page.locator("img[src=x]").count() == 0, url
    page.goto(served(f"/groups/{GROUP}/dead/raw-1"))
    assert "cannot decode" in page.locator(".note.warn").inner_text()
    assert HOSTILE in page.locator("pre.raw").inner_text()  # shown as text
    assert "\\xff\\xfe" in page.locator("pre.raw").inner_text()  # bytes shown escaped
    page.goto(tail)
    page.wait_for_selector('#tail-status[data-ready="yes"]')
    worker.failing.clear()
    worker.bus.publish("order.paid", {"order": 2, "note": HOSTILE})
    expect(page.locator("#tail tbody tr")).to_have_count(1)
    shown = page.locator("#tail tbody tr td.preview").first.inner_text()
    assert "<script>window.pwned = 1</script><img src=x" in shown  # as text, in JSON
    assert page.evaluate("window.pwned") is None
