"""A small, safe condition language for tenant rules, e.g. ``velocity_1m > 5 and amount > 1000000``.

Tokenizer + recursive-descent parser to an AST, a static type check against a fixed variable set, and a
tree-walking evaluator. Nothing here reaches Python's eval/exec/compile; there are no calls, attribute access,
subscripts or names outside the variable set, so a rule can only compare the payment's facts.

Grammar::

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | NAME | "(" expr ")" | "[" [literal ("," literal)*] "]"
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from x402.errors import ValidationFailed

MAX_LENGTH = 1000
MAX_TOKENS = 300
MAX_DEPTH = 32
MAX_LIST_ITEMS = 256
MAX_NUMBER_DIGITS = 80  # uint256 amounts have up to 78 digits
MAX_STRING = 256

Type = Literal["num", "str", "bool", "list"]

#: The only names an expression may use, with their types (``list`` values are sets of addresses/strings).
VARIABLES: Mapping[str, Type] = {
    "amount": "num",
    "network": "str",
    "asset": "str",
    "scheme": "str",
    "payer": "str",
    "pay_to": "str",
    "resource": "str",
    "tenant": "str",
    "velocity_1m": "num",
    "velocity_1h": "num",
    "amount_1m": "num",
    "amount_1h": "num",
    "payer_settlements": "num",
    "payer_pay_to_settlements": "num",
    "first_time": "bool",
    "anomaly_z": "num",
    "sanctioned": "bool",
    "hour_utc": "num",
    "weekday": "num",
    "intent_tier": "str",
    "intent_confidence": "num",
    "deny_list": "list",
    "allow_list": "list",
    "exchange_list": "list",
    "mixer_list": "list",
    "exploit_list": "list",
}
DEFAULTS: Mapping[Type, Any] = {"num": 0, "str": "", "bool": False, "list": frozenset()}

_KEYWORDS = {"and", "or", "not", "in", "true", "false"}
#: Python words that people try; named in the error instead of "unknown variable".
_FORBIDDEN = {
    "lambda", "import", "exec", "eval", "compile", "open", "getattr", "setattr", "globals", "locals", "def",
    "class", "for", "while", "if", "else", "is", "yield", "await", "async", "del", "with", "return", "none",
}  # fmt: skip


class RuleSyntaxError(ValidationFailed):
    """An expression that does not parse; ``position`` is the 0-based character offset."""

    code = "rule_syntax_error"
    title = "Invalid rule expression"

    def __init__(self, message: str, position: int, source: str = "") -> None:
        caret = ""
        if source and len(source) <= 200:
            caret = f"\n  {source}\n  {' ' * position}^"
        super().__init__(f"{message} at column {position + 1}{caret}", position=position, reason=message)
        self.position = position
        self.message = message


class UnknownVariable(RuleSyntaxError):
    """A name outside the fixed variable set."""

    code = "rule_unknown_variable"


class RuleTypeError(RuleSyntaxError):
    """Operands of the wrong type (e.g. ``payer > 3``)."""

    code = "rule_type_error"


class RuleEvalError(Exception):
    """A run-time failure (division by zero); the engine reports it as ``rule_error``."""


# --------------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token with its source offset."""

    kind: str  # num, str, name, op, end
    value: Any
    pos: int


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<num>\d+(?:\.\d+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
      | (?P<op>==|!=|<=|>=|\*\*|[<>+\-*/()\[\],.])""",
    re.VERBOSE,
)


def tokenize(src: str) -> list[Token]:
    """Split ``src`` into tokens; raises RuleSyntaxError with the offset of anything unexpected."""
    if len(src) > MAX_LENGTH:
        raise RuleSyntaxError(f"expression is longer than {MAX_LENGTH} characters", MAX_LENGTH, "")
    out: list[Token] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None:
            ch = src[pos]
            hint = " (use 'and', 'or', 'not')" if ch in "&|!" else ""
            raise RuleSyntaxError(f"unexpected character {ch!r}{hint}", pos, src)
        kind = m.lastgroup or ""
        text = m.group()
        if kind == "num":
            if len(text) > MAX_NUMBER_DIGITS:
                raise RuleSyntaxError(f"number longer than {MAX_NUMBER_DIGITS} digits", pos, src)
            out.append(Token("num", float(text) if "." in text else int(text), pos))
        elif kind == "str":
            body = text[1:-1]
            if len(body) > MAX_STRING:
                raise RuleSyntaxError(f"string longer than {MAX_STRING} characters", pos, src)
            out.append(Token("str", re.sub(r"\\(.)", r"\1", body), pos))
        elif kind == "name":
            if text.lower() in _FORBIDDEN or text.startswith("__"):
                raise RuleSyntaxError(f"{text!r} is not allowed in a rule", pos, src)
            out.append(Token("name", text, pos))
        elif kind == "op":
            out.append(Token("op", text, pos))
        pos = m.end()
        if len(out) > MAX_TOKENS:
            raise RuleSyntaxError(f"expression has more than {MAX_TOKENS} tokens", pos, src)
    out.append(Token("end", None, len(src)))
    return out


# ----------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True, slots=True)
class Node:
    """An AST node: ``op`` is lit, var, list, neg, not, and, or, or a binary operator."""

    op: str
    pos: int
    value: Any = None
    left: Node | None = None
    right: Node | None = None
    type: Type = "bool"


class _Parser:
    def __init__(self, src: str, variables: Mapping[str, Type]) -> None:
        self.src = src
        self.variables = variables
        self.tokens = tokenize(src)
        self.i = 0
        self.depth = 0

    # -- helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def error(self, message: str, tok: Token | None = None) -> RuleSyntaxError:
        return RuleSyntaxError(message, (tok or self.tok).pos, self.src)

    def type_error(self, message: str, pos: int) -> RuleTypeError:
        return RuleTypeError(message, pos, self.src)

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "name" and self.tok.value in words

    def take(self) -> Token:
        t = self.tok
        self.i += 1
        return t

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nests deeper than {MAX_DEPTH} levels")

    # -- grammar
    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.describe(self.tok)} after a complete expression")
        if node.type != "bool":
            raise self.type_error(f"a rule must be true or false, this is a {node.type}", 0)
        return node

    def describe(self, tok: Token) -> str:
        if tok.kind == "end":
            return "end of expression"
        return repr(tok.value) if tok.kind != "str" else "string"

    def expr(self) -> Node:
        self.enter()
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> Node:
        node = self.and_()
        while self.is_word("or"):
            t = self.take()
            node = self.logic("or", t.pos, node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.is_word("and"):
            t = self.take()
            node = self.logic("and", t.pos, node, self.not_())
        return node

    def logic(self, op: str, pos: int, left: Node, right: Node) -> Node:
        for side in (left, right):
            if side.type != "bool":
                raise self.type_error(f"'{op}' needs true/false operands, got a {side.type}", side.pos)
        return Node(op, pos, left=left, right=right, type="bool")

    def not_(self) -> Node:
        if self.is_word("not"):
            t = self.take()
            self.enter()
            try:
                operand = self.not_()
            finally:
                self.depth -= 1
            if operand.type != "bool":
                raise self.type_error(f"'not' needs a true/false operand, got a {operand.type}", operand.pos)
            return Node("not", t.pos, left=operand, type="bool")
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum_()
        if self.is_op("==", "!=", "<", "<=", ">", ">="):
            t = self.take()
            right = self.sum_()
            op = str(t.value)
            if op in ("==", "!="):
                if left.type != right.type or left.type == "list":
                    raise self.type_error(f"cannot compare {left.type} {op} {right.type}", t.pos)
            elif left.type != "num" or right.type != "num":
                raise self.type_error(f"'{op}' compares numbers, got {left.type} and {right.type}", t.pos)
            node = Node(op, t.pos, left=left, right=right, type="bool")
        elif self.is_word("in") or (self.is_word("not") and self.peek_word("in")):
            t = self.take()
            op = "in"
            if t.value == "not":
                self.take()
                op = "not in"
            right = self.sum_()
            ok = (right.type == "list" and left.type in ("str", "num")) or (left.type == right.type == "str")
            if not ok:
                raise self.type_error(f"'{op}' needs a value and a list (or two strings), got {left.type}", t.pos)
            node = Node(op, t.pos, left=left, right=right, type="bool")
        else:
            return left
        if self.is_op("==", "!=", "<", "<=", ">", ">=") or self.is_word("in"):
            raise self.error("chained comparisons are not allowed; join them with 'and'")
        return node

    def peek_word(self, word: str) -> bool:
        nxt = self.tokens[self.i + 1]
        return nxt.kind == "name" and nxt.value == word

    def sum_(self) -> Node:
        node = self.product()
        while self.is_op("+", "-"):
            t = self.take()
            node = self.arith(str(t.value), t.pos, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.is_op("*", "/"):
            t = self.take()
            node = self.arith(str(t.value), t.pos, node, self.unary())
        return node

    def arith(self, op: str, pos: int, left: Node, right: Node) -> Node:
        if left.type != "num" or right.type != "num":
            raise self.type_error(f"'{op}' needs numbers, got {left.type} and {right.type}", pos)
        return Node(op, pos, left=left, right=right, type="num")

    def unary(self) -> Node:
        if self.is_op("-"):
            t = self.take()
            self.enter()
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if operand.type != "num":
                raise self.type_error("unary '-' needs a number", t.pos)
            return Node("neg", t.pos, left=operand, type="num")
        node = self.primary()
        if self.is_op("("):
            raise self.error("function calls are not allowed")
        if self.is_op("["):
            raise self.error("subscripts are not allowed")
        if self.is_op("."):
            raise self.error("attribute access is not allowed")
        if self.is_op("**"):
            raise self.error("'**' is not allowed")
        return node

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.take()
            return Node("lit", t.pos, value=t.value, type="num")
        if t.kind == "str":
            self.take()
            return Node("lit", t.pos, value=t.value, type="str")
        if t.kind == "name":
            return self.name()
        if self.is_op("("):
            self.take()
            if self.is_op(")"):
                raise self.error("empty parentheses")
            node = self.expr()
            if not self.is_op(")"):
                raise self.error(f"expected ')' but found {self.describe(self.tok)}")
            self.take()
            return node
        if self.is_op("["):
            return self.list_literal()
        if self.is_op("**"):
            raise self.error("'**' is not allowed")
        raise self.error(f"expected a value but found {self.describe(t)}")

    def name(self) -> Node:
        t = self.take()
        word = str(t.value)
        if word in ("true", "false"):
            return Node("lit", t.pos, value=word == "true", type="bool")
        if self.is_op("("):
            raise self.error("function calls are not allowed")
        if self.is_op("."):
            raise self.error("attribute access is not allowed")
        if self.is_op("["):
            raise self.error("subscripts are not allowed")
        if word.startswith("_"):
            raise RuleSyntaxError(f"names starting with '_' are not allowed ({word!r})", t.pos, self.src)
        if word.lower() in _FORBIDDEN:
            raise RuleSyntaxError(f"{word!r} is not allowed in a rule", t.pos, self.src)
        if word in _KEYWORDS:
            raise RuleSyntaxError(f"expected a value but found keyword {word!r}", t.pos, self.src)
        if word not in self.variables:
            known = ", ".join(sorted(self.variables))
            raise UnknownVariable(f"unknown variable {word!r} (known: {known})", t.pos, self.src)
        return Node("var", t.pos, value=word, type=self.variables[word])

    def list_literal(self) -> Node:
        start = self.take()
        items: list[Any] = []
        while not self.is_op("]"):
            t = self.tok
            if t.kind not in ("num", "str"):
                raise self.error("list items must be numbers or strings")
            items.append(self.take().value)
            if len(items) > MAX_LIST_ITEMS:
                raise self.error(f"list has more than {MAX_LIST_ITEMS} items")
            if self.is_op(","):
                self.take()
            elif not self.is_op("]"):
                raise self.error(f"expected ',' or ']' but found {self.describe(self.tok)}")
        self.take()
        return Node("list", start.pos, value=frozenset(items), type="list")


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, type-checked condition; evaluate it with :meth:`evaluate`."""

    source: str
    root: Node
    names: frozenset[str]

    def evaluate(self, env: Mapping[str, Any]) -> bool:
        """True when the condition holds for these facts; missing facts take their type's default."""
        return bool(_eval(self.root, env))


def compile_expression(src: str, variables: Mapping[str, Type] = VARIABLES) -> Expression:
    """Parse and type-check ``src``; raises RuleSyntaxError (or a subclass) with the offending position."""
    if not src.strip():
        raise RuleSyntaxError("empty expression", 0, src)
    root = _Parser(src, variables).parse()
    return Expression(src, root, frozenset(_names(root)))


def _names(node: Node | None) -> set[str]:
    if node is None:
        return set()
    here = {str(node.value)} if node.op == "var" else set()
    return here | _names(node.left) | _names(node.right)


def _var(name: str, env: Mapping[str, Any]) -> Any:
    value = env.get(name)
    if value is None:
        return DEFAULTS[VARIABLES.get(name, "num")]
    return value


#: Binary operators after both sides are evaluated (``and``/``or`` short-circuit in ``_eval``).
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _eval(node: Node, env: Mapping[str, Any]) -> Any:
    op = node.op
    if op == "lit" or op == "list":
        return node.value
    if op == "var":
        return _var(str(node.value), env)
    assert node.left is not None
    if op == "not":
        return not _eval(node.left, env)
    if op == "neg":
        return -_eval(node.left, env)
    if op == "and":
        return _eval(node.left, env) and _eval(node.right, env)  # type: ignore[arg-type]
    if op == "or":
        return _eval(node.left, env) or _eval(node.right, env)  # type: ignore[arg-type]
    assert node.right is not None
    a, b = _eval(node.left, env), _eval(node.right, env)
    if op == "/" and b == 0:
        raise RuleEvalError("division by zero")
    binary = _BINARY.get(op)
    if binary is None:
        raise RuleEvalError(f"unknown operator {op}")
    return binary(a, b)
