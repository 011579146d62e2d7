"""Template language expressions (learn.microsoft.com: "Syntax and expressions in ARM templates").

A JSON string that starts with '[' and ends with ']' is an expression; '[[' at the start escapes it
(the value is the string without its first bracket). An expression is a function call, a 'string'
literal ('' inside is a quote), an integer literal, and `.property` / `[index]` access on a value.
Function names are case-insensitive; so is property access on objects (an exact match wins).

Expressions are parsed once into a small tree and evaluated against a `Scope`, which supplies the
functions. Evaluation is lazy where the language is: `if` evaluates only the branch it returns,
`and`/`or` stop at the first deciding argument, `coalesce` at the first non-null one."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import TemplateError

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?![\w.]))|(?P<name>[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?=\s*\())"
                    r"|(?P<ident>[A-Za-z_$][\w$]*)|(?P<sym>[(),.\[\]]))")


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 2 and value[0] == "[" and value[-1] == "]" and not value.startswith("[[")


def unescape(value: str) -> str:
    """A literal string that looks like an expression is written with '[[' at the start."""
    return value[1:] if value.startswith("[[") and value.endswith("]") else value


# -- syntax tree ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str                     # as written; looked up case-insensitively
    args: tuple


@dataclass(frozen=True)
class Member:
    target: Any
    key: Any                      # a property name (str) for `.name`, or a node for `[expr]`
    dotted: bool


def parse(text: str) -> Any:
    """The tree of one expression (the text between the outer brackets)."""
    return _parse_cached(text)


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Any:
    tokens = _tokenize(text)
    node, pos = _expr(tokens, 0, text)
    if pos != len(tokens):
        raise TemplateError(f"The language expression '{text}' is not valid: unexpected '{tokens[pos][1]}' after a complete expression.")
    return node


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, pos, text = [], 0, text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"The language expression '{text}' is not valid: the character '{text[pos]}' at position '{pos}' is not expected.")
        pos = m.end()
        kind = m.lastgroup
        value = m[kind]
        if kind == "str":
            value = value[1:-1].replace("''", "'")
        elif kind == "num":
            value = int(value)
        tokens.append((kind, value))
    return tokens


def _expr(tokens: list, pos: int, text: str) -> tuple[Any, int]:
    if pos >= len(tokens):
        raise TemplateError(f"The language expression '{text}' is not valid: the expression ends unexpectedly.")
    kind, value = tokens[pos]
    pos += 1
    if kind == "str":
        node = Literal(value)
    elif kind == "num":
        node = Literal(value)
    elif kind == "name":
        pos += 1                                             # '('
        args = []
        while pos < len(tokens) and tokens[pos] != ("sym", ")"):
            arg, pos = _expr(tokens, pos, text)
            args.append(arg)
            if pos < len(tokens) and tokens[pos] == ("sym", ","):
                pos += 1
            elif pos >= len(tokens) or tokens[pos] != ("sym", ")"):
                raise TemplateError(f"The language expression '{text}' is not valid: expected ',' or ')' in the arguments of '{value}'.")
        if pos >= len(tokens):
            raise TemplateError(f"The language expression '{text}' is not valid: the call of '{value}' is not closed.")
        pos += 1
        node = Call(value, tuple(args))
    elif kind == "ident":
        raise TemplateError(f"The language expression '{text}' is not valid: '{value}' is neither a function call nor a string "
                            "literal (strings are written in single quotes; true, false and null are the functions true(), false(), null()).")
    else:
        raise TemplateError(f"The language expression '{text}' is not valid: unexpected '{value}'.")
    while pos < len(tokens) and tokens[pos] in (("sym", "."), ("sym", "[")):
        if tokens[pos] == ("sym", "."):
            if pos + 1 >= len(tokens) or tokens[pos + 1][0] not in ("ident", "name"):
                raise TemplateError(f"The language expression '{text}' is not valid: expected a property name after '.'.")
            prop = tokens[pos + 1][1]
            pos += 2
            for part in prop.split("."):                    # the tokenizer keeps a.b.c together
                node = Member(node, part, True)
        else:
            index, pos = _expr(tokens, pos + 1, text)
            if pos >= len(tokens) or tokens[pos] != ("sym", "]"):
                raise TemplateError(f"The language expression '{text}' is not valid: expected ']'.")
            pos += 1
            node = Member(node, index, False)
    return node, pos


# -- evaluation --------------------------------------------------------------------------------------
class Unresolved(Exception):
    """Raised by a runtime function (reference, list*) whose value is not known yet: during validation
    and what-if ARM keeps such an expression as written."""


Function = Callable[..., Any]   # fn(scope, *evaluated args); lazy ones get nodes: fn(scope, evaluate, *nodes)


class Scope:
    """Where an expression is evaluated: its functions (name lower-case -> fn) and the names of the
    lazy ones, plus the place in the template for error messages."""

    def __init__(self, functions: dict[str, Function], lazy: dict[str, Function], *,
                 disallowed: dict[str, str] | None = None, fallback: Callable[[str], Function | None] | None = None):
        self.functions, self.lazy = functions, lazy
        self.disallowed = disallowed or {}   # lower name -> why ("only in parameter default values", ...)
        self.fallback = fallback             # for families of names (list*: listKeys, listSecrets, ...)

    def child(self, *, functions: dict[str, Function] | None = None, disallowed: dict[str, str] | None = None) -> "Scope":
        return Scope({**self.functions, **(functions or {})}, self.lazy, fallback=self.fallback,
                     disallowed=self.disallowed if disallowed is None else disallowed)

    def function(self, name: str) -> Function | None:
        fn = self.functions.get(name.lower())
        return fn if fn is not None or self.fallback is None else self.fallback(name)


def evaluate_node(node: Any, scope: Scope) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Member):
        target = evaluate_node(node.target, scope)
        key = node.key if node.dotted else evaluate_node(node.key, scope)
        return member(target, key)
    name = node.name.lower()
    if name in scope.disallowed or (name.startswith("list") and "list*" in scope.disallowed and name not in scope.functions):
        why = scope.disallowed.get(name) or scope.disallowed["list*"]
        raise TemplateError(f"The template function '{node.name}' is not expected at this location. {why} "
                            "Please see https://aka.ms/arm-functions for usage details.")
    if name in scope.lazy:
        return scope.lazy[name](scope, lambda n: evaluate_node(n, scope), *node.args)
    fn = scope.function(node.name)
    if fn is None:
        raise TemplateError(f"The template function '{node.name}' is not valid. Please see https://aka.ms/arm-functions for usage details.")
    args = [evaluate_node(a, scope) for a in node.args]
    return fn(scope, *args)


def member(target: Any, key: Any) -> Any:
    """`target.key` / `target[key]` as the template language does it."""
    if isinstance(target, dict):
        if not isinstance(key, str):
            raise TemplateError(f"The language expression property '{key}' can't be evaluated, property name must be a string.")
        if key in target:
            return target[key]
        for k, v in target.items():
            if k.lower() == key.lower():
                return v
        raise TemplateError(f"The language expression property '{key}' doesn't exist, available properties are '{', '.join(target)}'.")
    if isinstance(target, list):
        if isinstance(key, bool) or not isinstance(key, int):
            raise TemplateError(f"The language expression property '{key}' can't be evaluated, property index must be an integer.")
        if not 0 <= key < len(target):
            raise TemplateError(f"The language expression property array index '{key}' is out of bounds.")
        return target[key]
    raise TemplateError(f"The language expression property '{key}' can't be evaluated: the value is of type '{type_name(target)}', "
                        "not an object or an array.")


def type_name(value: Any) -> str:
    """The template language's name for a value's type (as its error messages say)."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    return "Object"


def to_json(value: Any) -> str:
    """Objects and arrays as the language writes them in strings: compact JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
