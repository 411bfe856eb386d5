"""Whether a Cloud Logging filter matches a given log entry: the meaning of a log-match alert or a
log-based metric, judged by evaluating the filter on the entry Google writes, never by comparing it
with the text the program happens to generate today.

The subset of the Logging query language understood here
(https://cloud.google.com/logging/docs/view/logging-query-language): comparisons ``FIELD OP VALUE``
with ``=``, ``!=``, ``:`` (has: substring), ``=~`` / ``!~`` (regular expression), ``<``, ``<=``, ``>``,
``>=``; ``NOT`` (or a leading ``-``), ``AND`` (or juxtaposition) and ``OR``, with Google's precedence:
NOT binds tightest, then OR, then AND (``a OR NOT b AND c`` is ``(a OR (NOT b)) AND c``); parentheses;
a parenthesised value list (``resource.type = ("a" OR "b")``). String comparisons are not case
sensitive. Anything else (global restrictions, functions such as ``SEARCH()``) raises
:class:`UnsupportedFilterError`, so a filter the pack cannot judge is never taken as firing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

# LogSeverity order (https://cloud.google.com/logging/docs/reference/v2/rest/v2/LogEntry#logseverity).
SEVERITIES: Final = (
    "DEFAULT",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "CRITICAL",
    "ALERT",
    "EMERGENCY",
)
_TOKEN: Final = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<paren>[()])|(?P<op>=~|!~|!=|>=|<=|=|:|>|<)'
    r"|(?P<word>[^\s()=!<>:\"]+))"
)


class UnsupportedFilterError(ValueError):
    """A filter (or part of one) the evaluator cannot judge."""


Entry = Mapping[str, str]
Predicate = Callable[[Entry], bool]


@dataclass(frozen=True)
class _Token:
    kind: str  # string, paren, op, word
    text: str


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise UnsupportedFilterError(f"cannot read the filter at {text[position:][:20]!r}")
        kind = match.lastgroup or "word"
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(_Token(kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self._tokens = _tokens(text)
        self._at = 0

    def _peek(self) -> _Token | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            raise UnsupportedFilterError("the filter ends too early")
        self._at += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.text == word:
            self._at += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self._conjunction()
        if self._peek() is not None:
            raise UnsupportedFilterError(f"unexpected {self._peek().text!r}")  # type: ignore[union-attr]
        return predicate

    def _conjunction(self) -> Predicate:
        parts = [self._disjunction()]
        while True:
            token = self._peek()
            if token is None or (token.kind == "paren" and token.text == ")"):
                break
            self._keyword("AND")
            parts.append(self._disjunction())
        return lambda entry: all(part(entry) for part in parts)

    def _disjunction(self) -> Predicate:
        parts = [self._negation()]
        while self._keyword("OR"):
            parts.append(self._negation())
        return lambda entry: any(part(entry) for part in parts)

    def _negation(self) -> Predicate:
        token = self._peek()
        if self._keyword("NOT"):
            inner = self._negation()
            return lambda entry: not inner(entry)
        if token is not None and token.kind == "word" and token.text.startswith("-"):
            self._tokens[self._at] = _Token("word", token.text[1:])
            inner = self._negation()
            return lambda entry: not inner(entry)
        return self._primary()

    def _primary(self) -> Predicate:
        token = self._next()
        if token.kind == "paren" and token.text == "(":
            inner = self._conjunction()
            self._expect_close()
            return inner
        if token.kind != "word":
            raise UnsupportedFilterError(
                f"{token.text!r} on its own (a global restriction) cannot be judged"
            )
        operator = self._peek()
        if operator is None or operator.kind != "op":
            raise UnsupportedFilterError(
                f"{token.text!r} is not a comparison (a global restriction or a function)"
            )
        self._at += 1
        return self._values(token.text, operator.text)

    def _expect_close(self) -> None:
        token = self._next()
        if token.kind != "paren" or token.text != ")":
            raise UnsupportedFilterError(f"expected ')' but found {token.text!r}")

    def _values(self, field: str, operator: str) -> Predicate:
        token = self._next()
        if token.kind == "paren" and token.text == "(":
            # FIELD OP ("a" OR "b"): the comparison applied to each value.
            alternatives = [self._value(field, operator)]
            while True:
                if self._keyword("OR"):
                    alternatives.append(self._value(field, operator))
                    continue
                break
            self._expect_close()
            return lambda entry: any(alt(entry) for alt in alternatives)
        return _comparison(field, operator, token.text)

    def _value(self, field: str, operator: str) -> Predicate:
        token = self._next()
        if token.kind not in ("string", "word"):
            raise UnsupportedFilterError(f"expected a value but found {token.text!r}")
        return _comparison(field, operator, token.text)


def _severity_rank(value: str) -> int:
    upper = value.upper()
    if upper.isdigit():
        return int(upper)
    if upper not in SEVERITIES:
        raise UnsupportedFilterError(f"{value!r} is not a log severity")
    return SEVERITIES.index(upper) * 100


def _ordered(actual: str, value: str) -> int:
    return _severity_rank(actual) - _severity_rank(value)


Compare = Callable[[str, str, "re.Pattern[str] | None"], bool]
_COMPARE: Final[dict[str, Compare]] = {
    "=": lambda actual, value, _: actual.lower() == value.lower(),
    "!=": lambda actual, value, _: actual.lower() != value.lower(),
    ":": lambda actual, value, _: value.lower() in actual.lower(),
    "=~": lambda actual, _, pattern: pattern is not None and pattern.search(actual) is not None,
    "!~": lambda actual, _, pattern: pattern is not None and pattern.search(actual) is None,
    ">": lambda actual, value, _: _ordered(actual, value) > 0,
    ">=": lambda actual, value, _: _ordered(actual, value) >= 0,
    "<": lambda actual, value, _: _ordered(actual, value) < 0,
    "<=": lambda actual, value, _: _ordered(actual, value) <= 0,
}


def _comparison(field: str, operator: str, value: str) -> Predicate:
    if operator not in _COMPARE:
        raise UnsupportedFilterError(f"operator {operator!r}")
    if operator in ("<", "<=", ">", ">=") and field != "severity":
        raise UnsupportedFilterError(f"ordering comparison on {field}")
    try:
        pattern = re.compile(value) if operator in ("=~", "!~") else None
    except re.error as invalid:
        raise UnsupportedFilterError(f"{value!r} is not a regular expression: {invalid}") from None

    compare = _COMPARE[operator]

    def test(entry: Entry) -> bool:
        actual = entry.get(field)
        if actual is None:
            # Only a negative comparison holds for a field the entry does not have.
            return operator in ("!=", "!~")
        return compare(actual, value, pattern)

    return test


def matches(log_filter: str, entry: Entry) -> bool:
    """Whether ``log_filter`` selects ``entry`` (fields by dotted path, values as strings).

    Raises UnsupportedFilterError for a filter outside the supported subset."""
    if not log_filter.strip():
        return True  # An empty filter matches every entry.
    return _Parser(log_filter).parse()(entry)
