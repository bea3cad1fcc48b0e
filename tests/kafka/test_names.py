"""Topic naming and wildcard regexes: the same answers as eventbus.matches, in Kafka's alphabet."""

from __future__ import annotations

import re

import pytest
from eventbus_kafka import (
    MAX_TOPIC,
    dead_topic,
    escape,
    group_regex,
    retry_topic,
    topic_for,
    unescape,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eventbus import EncodeError, matches

pytestmark = pytest.mark.kafka

KAFKA_NAME = re.compile(r"[A-Za-z0-9._\-]{1,249}\Z")
# words with the characters that need escaping, and the escape character itself
WORDS = st.sampled_from(["a", "b", "order", "x_y", "é", "-", "A1", "", " ", "_5F", "注文"])
TOPICS = st.lists(WORDS, min_size=1, max_size=5).map(".".join).filter(bool)
PATTERNS = st.lists(st.one_of(WORDS, st.sampled_from(["*", "#"])), min_size=1, max_size=5).map(
    ".".join
)
PREFIXES = st.sampled_from(["", "shop.", "app-1_", "t.x-"])


@given(TOPICS, PREFIXES)
def test_escaped_topics_are_legal_kafka_names_and_round_trip(topic: str, prefix: str) -> None:
    assume(prefix + topic not in (".", ".."))  # the two names Kafka refuses (EncodeError)
    name = topic_for(topic, prefix)
    assert KAFKA_NAME.match(name)
    assert name.startswith(prefix)
    assert unescape(name[len(prefix) :]) == topic


@settings(max_examples=1500)
@given(PATTERNS, TOPICS, PREFIXES)
def test_regex_means_what_matches_means(pattern: str, topic: str, prefix: str) -> None:
    assume(prefix + topic not in (".", ".."))
    regex = group_regex(prefix, pattern)
    assert bool(re.match(regex, topic_for(topic, prefix))) == matches(pattern, topic), regex


@given(PATTERNS, st.sampled_from(["g", "billing", "x_y.z", "é"]), PREFIXES)
def test_internal_topics_never_match_a_wildcard(pattern: str, group: str, prefix: str) -> None:
    regex = group_regex(prefix, pattern)
    for name in (retry_topic(prefix, group), dead_topic(prefix, group), "__consumer_offsets"):
        assert not re.match(regex, name), (regex, name)


def test_examples() -> None:
    assert topic_for("order.created") == "order.created"
    assert topic_for("user_signed-up") == "user_5Fsigned-up"
    assert topic_for("commande.créée") == "commande.cr_C3_A9_C3_A9e"
    assert retry_topic("shop.", "billing") == "shop.__eventbus.retry.billing"
    assert dead_topic("", "a b") == "__eventbus.dlt.a_20b"
    assert escape("a.b") == "a.b"


def test_names_kafka_cannot_hold() -> None:
    with pytest.raises(EncodeError, match="249"):
        topic_for("é" * 50)  # 300 characters escaped
    with pytest.raises(EncodeError):
        topic_for(".")
    long_group = "g" * 400
    assert len(retry_topic("", long_group)) == MAX_TOPIC
    assert retry_topic("", long_group) != retry_topic("", long_group + "x")


def test_librdkafka_regex_dialect_has_no_noncapturing_groups() -> None:
    # librdkafka rejects "(?:" (found on confluent-kafka 2.16): our regexes must not use it
    for pattern in ("#", "a.#.b", "#.b", "*.x", "a.*"):
        assert "(?" not in group_regex("p.", pattern)
