"""Subscription rule filters: a small, real subset of Service Bus SQL, and correlation filters.

SQL grammar (case-insensitive keywords)::

    expr      := or
    or        := and ("OR" and)*
    and       := not ("AND" not)*
    not       := "NOT" not | predicate
    predicate := "(" expr ")" | "TRUE" | "FALSE" | "EXISTS" "(" ident ")"
               | operand "IS" ["NOT"] "NULL"
               | operand ["NOT"] "LIKE" string ["ESCAPE" string]
               | operand ["NOT"] "IN" "(" operand ("," operand)* ")"
               | operand cmp operand              cmp: = <> != < <= > >=
    operand   := string | number | ident
    ident     := [sys. | user.] name | [sys. | user.] "[" any "]"

``sys.Label`` and ``sys.Subject`` are the message's subject; other system
properties: ``sys.MessageId``, ``sys.CorrelationId``, ``sys.To``,
``sys.ReplyTo``, ``sys.SessionId``, ``sys.ContentType``. An unqualified name
or ``user.name`` is an application property. Missing properties are NULL with
SQL's three-valued logic (a comparison with NULL is unknown, and a rule
matches only when its filter is true). ``LIKE`` has ``%`` (any run) and ``_``
(one character) and an optional ``ESCAPE`` character. Not supported: rule
actions, arithmetic, functions other than ``EXISTS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["FilterError", "compile_sql", "correlation_matches", "system_properties"]

Props = Mapping[str, Any]
Pred = Callable[[Props, Props], Any]  # (system, user) -> True | False | None (unknown)

_SYSTEM = {
    "label": "subject",
    "subject": "subject",
    "messageid": "message_id",
    "correlationid": "correlation_id",
    "to": "to",
    "replyto": "reply_to",
    "sessionid": "group_id",
    "contenttype": "content_type",
    "replytosessionid": "reply_to_group_id",
}

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<op><>|!=|<=|>=|=|<|>|\(|\)|,)"
    r"|(?P<ident>(?:(?:sys|user)\.)?(?:\[[^\]]*\]|[A-Za-z_][A-Za-z0-9_\-]*)))"
)


class FilterError(ValueError):
    """A SQL filter this broker cannot parse."""


def system_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The filterable system properties from a parsed properties section."""
    return {k: _text(v) for k, v in properties.items() if v is not None}


def _text(v: Any) -> Any:
    if isinstance(v, (bytes, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    if hasattr(v, "hex") and type(v).__name__ == "UUID":
        return str(v)
    return v


def _tokens(sql: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    sql = sql.rstrip()
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"cannot parse SQL filter near {sql[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, sql: str) -> None:
        self.toks = _tokens(sql)
        self.i = 0

    def peek_word(self) -> str:
        if self.i < len(self.toks) and self.toks[self.i][0] == "ident":
            return self.toks[self.i][1].upper()
        return ""

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise FilterError("SQL filter ends too early")
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, value: str) -> None:
        t = self.take()
        if t[1].upper() != value:
            raise FilterError(f"expected {value!r}, found {t[1]!r}")

    def parse(self) -> Pred:
        p = self.or_()
        if self.i != len(self.toks):
            raise FilterError(f"unexpected {self.toks[self.i][1]!r} in SQL filter")
        return p

    def or_(self) -> Pred:
        left = self.and_()
        while self.peek_word() == "OR":
            self.take()
            right = self.and_()
            left = _or(left, right)
        return left

    def and_(self) -> Pred:
        left = self.not_()
        while self.peek_word() == "AND":
            self.take()
            right = self.not_()
            left = _and(left, right)
        return left

    def not_(self) -> Pred:
        if self.peek_word() == "NOT":
            self.take()
            inner = self.not_()
            return lambda s, u: None if (v := inner(s, u)) is None else not v
        return self.predicate()

    def predicate(self) -> Pred:
        t = self.peek()
        if t is None:
            raise FilterError("SQL filter ends too early")
        if t[1] == "(":
            self.take()
            inner = self.or_()
            self.expect(")")
            return inner
        word = self.peek_word()
        if word in ("TRUE", "FALSE"):
            self.take()
            return (lambda s, u: True) if word == "TRUE" else (lambda s, u: False)
        if word == "EXISTS":
            self.take()
            self.expect("(")
            get = self._ident(self.take())
            self.expect(")")
            return lambda s, u: get(s, u) is not None
        left = self.operand()
        negate = False
        if self.peek_word() == "IS":
            self.take()
            if self.peek_word() == "NOT":
                self.take()
                negate = True
            self.expect("NULL")
            return (
                (lambda s, u: left(s, u) is not None)
                if negate
                else (lambda s, u: left(s, u) is None)
            )
        if self.peek_word() == "NOT":
            self.take()
            negate = True
        word = self.peek_word()
        if word == "LIKE":
            self.take()
            pattern = self._string(self.take())
            escape = None
            if self.peek_word() == "ESCAPE":
                self.take()
                escape = self._string(self.take())
                if len(escape) != 1:
                    raise FilterError("ESCAPE takes one character")
            rx = _like(pattern, escape)

            def like(s: Props, u: Props) -> Any:
                v = left(s, u)
                if v is None:
                    return None
                hit = isinstance(v, str) and rx.fullmatch(v) is not None
                return hit != negate

            return like
        if word == "IN":
            self.take()
            self.expect("(")
            items = [self.operand()]
            while self.peek() is not None and self.peek() == ("op", ","):
                self.take()
                items.append(self.operand())
            self.expect(")")

            def in_(s: Props, u: Props) -> Any:
                v = left(s, u)
                if v is None:
                    return None
                hit = any(_eq(v, it(s, u)) for it in items)
                return hit != negate

            return in_
        if negate:
            raise FilterError("NOT must be followed by LIKE or IN here")
        op = self.take()
        if op[0] != "op" or op[1] in ("(", ")", ","):
            raise FilterError(f"expected a comparison, found {op[1]!r}")
        right = self.operand()
        return _compare(op[1], left, right)

    def operand(self) -> Callable[[Props, Props], Any]:
        t = self.take()
        if t[0] == "str":
            value: Any = self._string(t)
            return lambda s, u: value
        if t[0] == "num":
            num = float(t[1]) if "." in t[1] else int(t[1])
            return lambda s, u: num
        if t[0] == "ident":
            if t[1].upper() == "NULL":
                return lambda s, u: None
            return self._ident(t)
        raise FilterError(f"expected a value, found {t[1]!r}")

    @staticmethod
    def _string(t: tuple[str, str]) -> str:
        if t[0] != "str":
            raise FilterError(f"expected a string literal, found {t[1]!r}")
        return t[1][1:-1].replace("''", "'")

    @staticmethod
    def _ident(t: tuple[str, str]) -> Callable[[Props, Props], Any]:
        if t[0] != "ident":
            raise FilterError(f"expected a property name, found {t[1]!r}")
        name = t[1]
        scope = "user"
        if name.lower().startswith(("sys.", "user.")):
            scope, name = name.split(".", 1)
            scope = scope.lower()
        if name.startswith("["):
            name = name[1:-1]
        if scope == "sys":
            key = _SYSTEM.get(name.lower())
            if key is None:
                raise FilterError(f"unknown system property sys.{name}")
            return lambda s, u: s.get(key)
        return lambda s, u: u.get(name)


def _like(pattern: str, escape: str | None) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape is not None and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, str) != isinstance(b, str):
        return False
    return bool(a == b)


def _compare(op: str, left: Pred, right: Pred) -> Pred:
    def cmp(s: Props, u: Props) -> Any:
        a, b = left(s, u), right(s, u)
        if a is None or b is None:
            return None
        if op == "=":
            return _eq(a, b)
        if op in ("<>", "!="):
            return not _eq(a, b)
        if isinstance(a, str) != isinstance(b, str):
            return False
        try:
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        except TypeError:
            return False

    return cmp


def _and(a: Pred, b: Pred) -> Pred:
    def f(s: Props, u: Props) -> Any:
        x, y = a(s, u), b(s, u)
        if x is False or y is False:
            return False
        if x is None or y is None:
            return None
        return True

    return f


def _or(a: Pred, b: Pred) -> Pred:
    def f(s: Props, u: Props) -> Any:
        x, y = a(s, u), b(s, u)
        if x is True or y is True:
            return True
        if x is None or y is None:
            return None
        return False

    return f


def compile_sql(sql: str) -> Callable[[Props, Props], bool]:
    """A predicate ``(system properties, application properties) -> bool`` for ``sql``."""
    pred = _Parser(sql).parse()
    return lambda s, u: pred(s, u) is True


_CORRELATION_SYSTEM = {
    "correlation_id": "correlation_id",
    "message_id": "message_id",
    "to": "to",
    "reply_to": "reply_to",
    "label": "subject",
    "subject": "subject",
    "session_id": "group_id",
    "reply_to_session_id": "reply_to_group_id",
    "content_type": "content_type",
}


def correlation_matches(spec: Mapping[str, Any], system: Props, user: Props) -> bool:
    """A correlation filter: every given system property and user property is equal."""
    for key, want in spec.items():
        if key == "properties":
            for name, value in dict(want or {}).items():
                if not _eq(user.get(name), value):
                    return False
            continue
        prop = _CORRELATION_SYSTEM.get(key)
        if prop is None:
            raise FilterError(f"unknown correlation filter field {key!r}")
        if want is not None and not _eq(system.get(prop), want):
            return False
    return True
