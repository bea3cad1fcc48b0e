"""The one pattern matcher: AMQP topic semantics, property-tested."""

from __future__ import annotations

import re
from functools import cache

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from eventbus import (
    ConfigError,
    Matcher,
    matches,
    pattern_to_regex,
    validate_pattern,
    validate_topic,
)

pytestmark = pytest.mark.memory


def reference(pattern: str, topic: str) -> bool:
    """The AMQP definition, written as plainly as possible (exponential, fine for tests)."""

    @cache
    def go(p: tuple[str, ...], w: tuple[str, ...]) -> bool:
        if not p:
            return not w
        if p[0] == "#":
            return go(p[1:], w) or (bool(w) and go(p, w[1:]))
        if not w:
            return False
        return (p[0] == "*" or p[0] == w[0]) and go(p[1:], w[1:])

    return go(
        tuple(pattern.split(".")) if pattern else (), tuple(topic.split(".")) if topic else ()
    )


WORDS = st.sampled_from(["a", "b", "order", "created", "", "x1"])
topics = st.lists(WORDS, min_size=1, max_size=6).map(".".join)
patterns = st.lists(st.one_of(WORDS, st.just("*"), st.just("#")), min_size=1, max_size=6).map(
    ".".join
)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("order.#", "order", True),
        ("order.#", "order.created", True),
        ("order.#", "order.created.eu", True),
        ("order.#", "orders", False),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.b.c", False),
        ("#", "anything.at.all", True),
        ("#", "", True),
        ("a.*.b", "a..b", True),  # an empty word inside is still a word
        ("*", "one", True),
        ("*", "", False),  # the empty topic has no words (RabbitMQ 3.10)
        ("*", "one.two", False),
        ("order.*", "order", False),
        ("order.*", "order.created", True),
        ("order.*", "order.created.eu", False),
        ("*.created", "order.created", True),
        ("order.created", "order.created", True),
        ("order.created", "order.createdx", False),
        ("#.#", "a", True),
        ("#.*", "a", True),
        ("*.#", "a", True),
        ("*.*", "a", False),
        ("a.*.#", "a", False),
        ("a..b", "a..b", True),
    ],
)
def test_amqp_cases(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected
    assert reference(pattern, topic) is expected
    if topic:  # the regex form is for broker topic names, never empty
        assert bool(re.match(pattern_to_regex(pattern), topic)) is expected
    assert Matcher([pattern])(topic) is expected


@settings(max_examples=2000, deadline=None)
@given(patterns, topics)
def test_matcher_agrees_with_the_definition(pattern: str, topic: str) -> None:
    assert matches(pattern, topic) == reference(pattern, topic)


@settings(max_examples=2000, deadline=None)
@given(patterns, topics)
def test_regex_form_agrees_with_the_matcher(pattern: str, topic: str) -> None:
    assume(topic != "")
    assert bool(re.match(pattern_to_regex(pattern), topic)) == matches(pattern, topic)


@settings(max_examples=500, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=4), topics)
def test_matcher_set_is_any_of_its_patterns(pats: list[str], topic: str) -> None:
    assert Matcher(pats)(topic) == any(matches(p, topic) for p in pats)


def test_star_never_matches_zero_or_two_words() -> None:
    for topic in ("order", "order.a.b"):
        assert not matches("order.*", topic)


@pytest.mark.parametrize("bad", ["order.cre*", "a#", "#b.c", "a.**"])
def test_wildcards_must_be_whole_words(bad: str) -> None:
    with pytest.raises(ConfigError, match="whole word"):
        validate_pattern(bad)


def test_topics_refuse_wildcards_and_overlong() -> None:
    with pytest.raises(ValueError):
        validate_topic("order.*")
    with pytest.raises(ValueError):
        validate_topic("x" * 256)
    assert validate_topic("order.created") == "order.created"
