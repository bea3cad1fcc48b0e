"""``eventbus.matches`` and RabbitMQ's topic exchange agree, case by case.

The cases are generated (seeded, so a failure can be replayed) from a small word
alphabet, which makes wildcards collide often, plus the edge cases people get
wrong (``order.#`` vs ``order``, ``a.#.b`` vs ``a.b``, empty words). Each pattern
gets its own queue on a private topic exchange; every topic is published once
with confirms (so routing is done when we read), and each queue's contents are
compared with what our matcher says. Plain pika on purpose: the adapter filters
with our matcher itself, which would hide a disagreement.
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any

import pika
import pytest

from eventbus import matches

pytestmark = [pytest.mark.rabbitmq]

SEED = int(os.environ.get("EVENTBUS_MATCH_SEED", "0")) or random.randrange(1, 1 << 30)

EDGE_PATTERNS = [
    "#",
    "*",
    "#.#",
    "*.#",
    "#.*",
    "*.*",
    "order.#",
    "order.*",
    "#.order",
    "*.created",
    "a.#.b",
    "a.*.b",
    "a.#.#.b",
    "#.b.#",
    "a.#",
    "a",
    "a.b",
    "order.created",
    "a.*.#",
    "#.a.*",
    "*.*.*",
    "",
    "a..b",
    "a.#.",
    ".#",
]
# The empty topic is tested on its own below: no event can have it (encode refuses
# an empty type), but both sides read it as zero words.
EDGE_TOPICS = [
    "order",
    "order.created",
    "order.created.eu",
    "a.b",
    "a.x.b",
    "a.x.y.b",
    "x.b",
    "b",
    "a",
    "a..b",
    "a.b.",
    ".a",
    "..",
    "a.b.a.b",
    "created",
    "x.created",
    "a.b.c.d.e",
]


def generated(rng: random.Random) -> tuple[list[str], list[str]]:
    """70 distinct random patterns and 100 distinct random topics, plus the edge cases.

    Drawn until distinct: with so small an alphabet a fixed number of draws holds
    repeats, and how many depended on the seed (4,964 cases for one, under the
    5,000 the test asks for).
    """
    words = ["a", "b", "c"]
    patterns: set[str] = set()
    while len(patterns) < 70:
        patterns.add(".".join(rng.choice([*words, "*", "#"]) for _ in range(rng.randint(1, 5))))
    topics: set[str] = set()
    while len(topics) < 100:  # 363 topics of 1-5 words exist
        topics.add(".".join(rng.choice(words) for _ in range(rng.randint(1, 5))))
    return sorted(set(EDGE_PATTERNS) | patterns), sorted(set(EDGE_TOPICS) | topics)


def test_our_matcher_agrees_with_rabbitmq(rabbitmq_url: str) -> None:
    patterns, topics = generated(random.Random(SEED))
    disagreements = routed_differently(rabbitmq_url, patterns, topics)
    cases = len(patterns) * len(topics)
    assert cases > 5000
    assert not disagreements, (
        f"seed {SEED} (EVENTBUS_MATCH_SEED to replay): {len(disagreements)} of {cases} cases "
        f"differ, (pattern, topic, rabbitmq routed): {disagreements[:20]}"
    )


def test_empty_topic(rabbitmq_url: str) -> None:
    patterns = ["#", "*", "*.#", "#.*", ".#", "", "#.#"]
    assert routed_differently(rabbitmq_url, patterns, [""]) == []


def routed_differently(
    rabbitmq_url: str, patterns: list[str], topics: list[str]
) -> list[tuple[str, str, bool]]:
    """(pattern, topic, routed by RabbitMQ) for every case where ``matches`` says otherwise."""
    exchange = f"eventbus-test-match-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", auto_delete=True)
        queues: dict[str, str] = {}
        for pattern in patterns:
            q = ch.queue_declare("", exclusive=True).method.queue  # deleted with the connection
            ch.queue_bind(q, exchange, routing_key=pattern)
            queues[pattern] = q
        ch.confirm_delivery()
        for i, topic in enumerate(topics):
            ch.basic_publish(exchange, topic, str(i).encode())
        disagreements: list[tuple[str, str, bool]] = []
        for pattern, q in queues.items():
            routed = set()
            while True:
                method, _, body = ch.basic_get(q, auto_ack=True)
                if method is None:
                    break
                routed.add(topics[int(body)])
            for topic in topics:
                if matches(pattern, topic) != (topic in routed):
                    disagreements.append((pattern, topic, topic in routed))
        return disagreements
    finally:
        _close(conn, exchange)


def _close(conn: Any, exchange: str) -> None:
    if conn.is_open:
        ch = conn.channel()
        ch.exchange_delete(exchange)
        conn.close()
