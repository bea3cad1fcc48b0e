"""Topic patterns with AMQP topic-exchange semantics, exactly.

A topic is a dot-separated list of words (``order.created``). A pattern is the
same with two wildcards, each standing for whole words only:

- ``*`` matches exactly one word;
- ``#`` matches zero or more words.

So ``order.#`` matches ``order``; ``a.#.b`` matches ``a.b``; ``#`` matches every
topic; ``*`` never matches zero words or two. A pattern without wildcards is a
direct (exact) match. This is the one matcher every adapter uses, either as its
whole routing (memory, sqlite) or as the exact check behind a broker's coarser
native filter (SNS prefix filters, Service Bus SQL rules, Kafka regexes).

Words may be empty (``a..b`` has three words, the middle one empty), as in
RabbitMQ; the empty topic has no words at all (so ``#`` matches it and ``*``
does not), again as RabbitMQ 3.10 does. Event types are never empty, so that
case only matters to adapters that compare with the broker.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable

from ._errors import ConfigError

__all__ = ["Matcher", "matches", "pattern_to_regex", "validate_pattern", "validate_topic"]

_MAX_TOPIC_LENGTH = 255  # the AMQP short-string limit RabbitMQ applies to routing keys


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it can be published to; raise ``ValueError`` otherwise."""
    if not isinstance(topic, str):
        raise TypeError(f"event type must be a str, not {type(topic).__name__}")
    if "*" in topic or "#" in topic:
        raise ValueError(f"event type {topic!r} contains a wildcard; wildcards are for patterns")
    if len(topic.encode()) > _MAX_TOPIC_LENGTH:
        raise ValueError(f"event type {topic!r} is longer than {_MAX_TOPIC_LENGTH} bytes")
    return topic


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` if well formed: wildcards must be whole words."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, not {type(pattern).__name__}")
    for word in pattern.split("."):
        if word not in ("*", "#") and ("*" in word or "#" in word):
            raise ConfigError(
                f"pattern {pattern!r}: a wildcard must be a whole word ({word!r}); "
                "write e.g. 'order.*' or 'order.#'"
            )
    if len(pattern.encode()) > _MAX_TOPIC_LENGTH:
        raise ConfigError(f"pattern {pattern!r} is longer than {_MAX_TOPIC_LENGTH} bytes")
    return pattern


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> tuple[str, ...]:
    return tuple(pattern.split("."))


def _match_words(pat: tuple[str, ...], words: list[str]) -> bool:
    # Iterative matcher with backtracking to the last '#', linear in practice.
    p = w = 0
    star_p = -1  # index in pat of the last '#' seen
    star_w = 0  # word index that '#' is currently extended to
    np, nw = len(pat), len(words)
    while w < nw:
        if p < np and pat[p] == "#":
            star_p, star_w = p, w
            p += 1
        elif p < np and (pat[p] == "*" or pat[p] == words[w]):
            p += 1
            w += 1
        elif star_p >= 0:
            star_w += 1
            w = star_w
            p = star_p + 1
        else:
            return False
    while p < np and pat[p] == "#":
        p += 1
    return p == np


def matches(pattern: str, topic: str) -> bool:
    """True if ``topic`` matches ``pattern`` under AMQP topic rules."""
    if pattern == "#":
        return True
    if "*" not in pattern and "#" not in pattern:
        return pattern == topic
    return _match_words(_compile(pattern), _words(topic))


def _words(topic: str) -> list[str]:
    return topic.split(".") if topic else []


class Matcher:
    """A set of patterns; ``matcher(topic)`` is true if any pattern matches.

    Exact patterns are checked with one set lookup, so a group bound by many
    direct patterns costs no more than one.
    """

    __slots__ = ("_cache", "_exact", "_match_all", "_wild", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(dict.fromkeys(validate_pattern(p) for p in patterns))
        self._match_all = "#" in self.patterns
        self._exact = frozenset(p for p in self.patterns if "*" not in p and "#" not in p)
        self._wild = tuple(_compile(p) for p in self.patterns if p not in self._exact)
        self._cache: dict[str, bool] = {}  # topic -> answer; topics are few, events many

    @property
    def test(self) -> Callable[[str], bool]:
        """``self`` as the cheapest callable: the set's own lookup when no pattern is wild."""
        if self._match_all or self._wild:
            return self
        return self._exact.__contains__

    def __call__(self, topic: str) -> bool:
        if self._match_all or topic in self._exact:
            return True
        if not self._wild:
            return False
        hit = self._cache.get(topic)
        if hit is None:
            words = _words(topic)
            hit = any(_match_words(p, words) for p in self._wild)
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[topic] = hit
        return hit

    def __repr__(self) -> str:
        return f"Matcher({list(self.patterns)!r})"


def pattern_to_regex(pattern: str) -> str:
    """An anchored regular expression with the same meaning as ``pattern``.

    For brokers that filter by regex (Kafka topic subscriptions), whose topic
    names are never empty (the regex does not treat ``""`` as zero words). Note that the
    regex works on the full topic string, so ``#`` between words absorbs the
    dots around it: ``a.#.b`` becomes ``^a(\\..*)?\\.b$`` and matches ``a.b``.
    """
    words: list[str] = []
    for word in validate_pattern(pattern).split("."):
        if not (word == "#" and words and words[-1] == "#"):  # '#.#' means '#'
            words.append(word)
    if words == ["#"]:
        return "^.*$"
    out = ""
    for i, word in enumerate(words):
        if word == "#":
            # first: zero or more leading words, each with its dot;
            # later: zero, or a dot and one or more words.
            out += "(?:[^.]*\\.)*" if i == 0 else "(?:\\..*)?"
            continue
        sep = "" if i == 0 or (i == 1 and words[0] == "#") else "\\."
        out += sep + ("[^.]*" if word == "*" else re.escape(word))
    return "^" + out + "$"
