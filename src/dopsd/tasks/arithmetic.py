"""A small, safe arithmetic evaluator for model-written expressions: integers, + - * / and parentheses only.

Never ``eval``: the input is tokenized against a whitelist and parsed by recursive descent with bounded length and
nesting, so ``__import__('os')``, ``**``, names, or 10,000 nested parentheses are rejected quickly. Values are exact
fractions; division by zero is an error.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_LENGTH = 200
MAX_DEPTH = 20
MAX_DIGITS = 12
TOKEN = re.compile(r"\s*([0-9]+|[-+*/()])")


class ExpressionError(ValueError):
    pass


def tokenize(text: str) -> list[str]:
    if len(text) > MAX_LENGTH:
        raise ExpressionError("expression too long")
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None:
            raise ExpressionError(f"unexpected character {text[position]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Parser:
    """expression := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*;
    factor := INTEGER | '(' expression ')' | '-' factor  (unary minus allowed, as in ``-3+5``)."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.position, self.numbers = tokens, 0, []

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ExpressionError("unexpected end of expression")
        self.position += 1
        return token

    def expression(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
        return value

    def term(self, depth: int) -> Fraction:
        value = self.factor(depth)
        while self.peek() in ("*", "/"):
            operator, right = self.take(), self.factor(depth)
            if operator == "*":
                value *= right
            elif right == 0:
                raise ExpressionError("division by zero")
            else:
                value /= right
        return value

    def factor(self, depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise ExpressionError("expression nested too deeply")
        token = self.take()
        if token == "(":
            value = self.expression(depth + 1)
            if self.take() != ")":
                raise ExpressionError("unbalanced parentheses")
            return value
        if token == "-":
            return -self.factor(depth + 1)
        if token.isdigit():
            if len(token) > MAX_DIGITS:
                raise ExpressionError("number too large")
            self.numbers.append(int(token))
            return Fraction(int(token))
        raise ExpressionError(f"unexpected {token!r}")


def evaluate_expression(text: str) -> tuple[Fraction, list[int]]:
    """The exact value of ``text`` and the integers it uses, or ExpressionError."""
    parser = _Parser(tokenize(text))
    value = parser.expression(0)
    if parser.peek() is not None:
        raise ExpressionError(f"unexpected {parser.peek()!r}")
    return value, parser.numbers
