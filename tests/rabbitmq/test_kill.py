"""A consumer process killed with SIGKILL mid-batch: its unsettled events go to another member."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eventbus_rabbitmq import RabbitMQAdapter

from eventbus import Event, encode

pytestmark = [pytest.mark.rabbitmq]

# The member that dies: takes a batch of 20, settles 5, prints the settled ids and the
# ids still in hand, then "works" on the rest until it is killed. Its lease is long, so
# only the kill (the broker sees the TCP connection end) can hand those events on. (Its
# prefetch window refills by 5 after the ack: those are in its buffer, unsettled too.)
CHILD = """
import sys, time
from eventbus_rabbitmq import RabbitMQAdapter
url, exchange, group = sys.argv[1:4]
a = RabbitMQAdapter(url, exchange=exchange, lease=300, heartbeat=30)
c = a.consumer(group, ["kill.#"])
held = []
deadline = time.monotonic() + 30
while len(held) < 20 and time.monotonic() < deadline:
    held += c.receive(20 - len(held), 0.5)
c.ack(held[:5])
ids = [d.message.headers["id"] for d in held]
print(" ".join(ids[:5]), "|", " ".join(ids[5:]), flush=True)
time.sleep(600)  # the handler is busy when SIGKILL comes
"""


def test_sigkilled_member_hands_its_unacked_events_to_another(
    rabbitmq_url: str, exchange: str, make_adapter: Callable[..., RabbitMQAdapter]
) -> None:
    group = f"kill-{uuid.uuid4().hex[:8]}"
    publisher = make_adapter()
    publisher.declare(group, ["kill.#"])
    sent = [encode(Event(type="kill.job", data={"i": i}, source="/kill")) for i in range(50)]
    publisher.publish(sent)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, rabbitmq_url, exchange, group],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        settled_part, _, held_part = _read_line(child, timeout=60).partition("|")
        settled, in_hand = set(settled_part.split()), set(held_part.split())
        assert (len(settled), len(in_hand)) == (5, 15)
        survivor = make_adapter(lease=300).consumer(group, ["kill.#"])
        before = _drain(survivor)
        assert 25 <= len(before) <= 30  # 25: five more refilled the child's window
        assert not (settled | in_hand) & _ids(before), "events in a live member's hands moved"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        after = _receive(survivor, 45 - len(before))
        assert in_hand <= _ids(after)
        assert all(d.attempt == 2 for d in after)  # the broker flagged them redelivered
        assert _ids(before) | _ids(after) == {m.headers["id"] for m in sent} - settled
        survivor.ack(after)
        assert survivor.receive(20, 0.5) == [], "a settled event came back"
        survivor.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()


def _read_line(child: subprocess.Popen[str], timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    assert out and out[0].strip(), f"the child printed nothing in {timeout}s (exit {child.poll()})"
    return out[0]


def _ids(deliveries: list[Any]) -> set[str]:
    return {d.message.headers["id"] for d in deliveries}


def _drain(consumer: Any) -> list[Any]:
    """Receive and ack until nothing comes for a second."""
    got: list[Any] = []
    while batch := consumer.receive(50, 1.0):
        consumer.ack(batch)
        got += batch
    return got


def _receive(consumer: Any, n: int, timeout: float = 20.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"received {len(got)} of {n}"
        got += consumer.receive(n - len(got), 0.5)
    return got
