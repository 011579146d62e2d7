"""Enough of the ARM template language to read a template without Azure.

The local target reads the container app (command, port, probes, mount path) out of
`infra/provision/inference.json` with this, so both targets run what the same template says; the
Azure test double uses it to answer deployments with the template's outputs.

Expressions are strings in brackets, e.g. "[join(parameters('defaultCommands'), '; ')]":
function calls, 'string' literals ('' escapes a quote), integers, `.property` and `[index]`
access. `reference()`/`listKeys()` and the like need a live deployment: pass them in `functions`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][\w.]*)|(?P<sym>[(),.\[\]]))")


class TemplateError(ConfigError):
    """The template or a parameter value does not fit the template."""


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("[") and value.endswith("]") and not value.startswith("[[")


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse template expression at {text[pos:pos + 20]!r}")
        pos = m.end()
        if m["str"] is not None:
            tokens.append(("str", m["str"][1:-1].replace("''", "'")))
        elif m["num"] is not None:
            tokens.append(("num", int(m["num"])))
        elif m["name"] is not None:
            tokens.append(("name", m["name"]))
        else:
            tokens.append(("sym", m["sym"]))
    return tokens


def unique_string(*parts: str) -> str:
    """A deterministic 13-character id in ARM's uniqueString alphabet (not Azure's exact hash)."""
    digest = hashlib.sha256("-".join(parts).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


def _format(fmt: str, *args: Any) -> str:
    def sub(m: re.Match) -> str:
        if m[0] in ("{{", "}}"):
            return m[0][0]
        return _to_string(args[int(m[1])])
    return re.sub(r"\{\{|\}\}|\{(\d+)(?::[^}]*)?\}", sub, fmt)


def _to_string(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _take(v, n):
    return v[:n]


def _skip(v, n):
    return v[n:]


def _empty(v):
    return v is None or len(v) == 0


_BUILTINS: dict[str, Callable[..., Any]] = {
    "concat": lambda *a: [x for part in a for x in part] if a and isinstance(a[0], list) else "".join(_to_string(x) for x in a),
    "format": _format,
    "join": lambda items, sep: sep.join(_to_string(x) for x in items),
    "string": _to_string,
    "int": int,
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() == "true",
    "toLower": lambda s: s.lower(),
    "toUpper": lambda s: s.upper(),
    "take": _take,
    "skip": _skip,
    "replace": lambda s, old, new: s.replace(old, new),
    "substring": lambda s, start, length=None: s[start:] if length is None else s[start:start + length],
    "length": len,
    "empty": _empty,
    "coalesce": lambda *a: next((x for x in a if x is not None), None),
    "equals": lambda a, b: a == b,
    "not": lambda a: not a,
    "and": lambda *a: all(a),
    "or": lambda *a: any(a),
    "if": lambda c, a, b: a if c else b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "min": lambda *a: min(a),
    "max": lambda *a: max(a),
    "true": lambda: True,
    "false": lambda: False,
    "null": lambda: None,
    "createArray": lambda *a: list(a),
    "createObject": lambda *a: dict(zip(a[::2], a[1::2])),
    "newGuid": lambda: str(uuid.uuid4()),  # ARM allows it only in a parameter's defaultValue
    "json": json.loads,
    "union": lambda *a: {k: v for d in a for k, v in d.items()} if isinstance(a[0], dict) else list(dict.fromkeys(x for l in a for x in l)),
    "contains": lambda c, x: x in c,
    "uniqueString": unique_string,
    "guid": lambda *parts: str(uuid.uuid5(uuid.NAMESPACE_URL, "-".join(parts))),
}

_TYPES = {"string": str, "securestring": str, "int": int, "bool": bool, "array": list, "object": dict, "secureobject": dict}


@dataclass
class DeploymentScope:
    """What `subscription()` and `resourceGroup()` return."""

    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "local"
    location: str = "local"

    def resource_group_obj(self) -> dict:
        return {"id": f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}",
                "name": self.resource_group, "location": self.location, "type": "Microsoft.Resources/resourceGroups"}

    def subscription_obj(self) -> dict:
        return {"id": f"/subscriptions/{self.subscription_id}", "subscriptionId": self.subscription_id}

    def resource_id(self, rtype: str, *names: str) -> str:
        provider, *types = rtype.split("/")
        path = "/".join(f"{t}/{n}" for t, n in zip(types, names))
        return f"{self.resource_group_obj()['id']}/providers/{provider}/{path}"


@dataclass
class Template:
    """An ARM template bound to parameter values; expressions are evaluated on demand."""

    body: dict
    parameter_values: dict[str, Any]
    scope: DeploymentScope = field(default_factory=DeploymentScope)
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.body.get("parameters", {})
        unknown = sorted(set(self.parameter_values) - set(declared))
        if unknown:
            raise TemplateError(f"parameter(s) {', '.join(unknown)} are not declared by the template; "
                                f"remove them from the parameters file or add them to the template")
        self._params: dict[str, Any] = {}
        self._vars: dict[str, Any] = {}

    # -- values ------------------------------------------------------------------------------------
    def parameter(self, name: str) -> Any:
        if name not in self._params:
            spec = self.body.get("parameters", {}).get(name)
            if spec is None:
                raise TemplateError(f"template uses parameters('{name}') but does not declare it")
            if name in self.parameter_values:
                value = self.parameter_values[name]
            elif "defaultValue" in spec:
                value = self.evaluate(spec["defaultValue"])
            else:
                raise TemplateError(f"parameter {name} has no value and no default; set it in the parameters file")
            self._params[name] = self._check(name, spec, value)
        return self._params[name]

    def parameters(self) -> dict[str, Any]:
        return {name: self.parameter(name) for name in self.body.get("parameters", {})}

    def variable(self, name: str) -> Any:
        if name not in self._vars:
            variables = self.body.get("variables", {})
            if name not in variables:
                raise TemplateError(f"template uses variables('{name}') but does not declare it")
            self._vars[name] = self.evaluate(variables[name])
        return self._vars[name]

    def resources(self, rtype: str) -> list[dict]:
        return [r for r in self.body.get("resources", []) if r.get("type", "").lower() == rtype.lower()]

    def resource(self, rtype: str) -> dict:
        """The single resource of that type, with every expression in it evaluated."""
        found = self.resources(rtype)
        if len(found) != 1:
            raise TemplateError(f"template must declare exactly one {rtype} resource, found {len(found)}")
        return self.evaluate(found[0])

    def outputs(self) -> dict[str, Any]:
        return {k: self.evaluate(v["value"]) for k, v in self.body.get("outputs", {}).items()}

    # -- evaluation --------------------------------------------------------------------------------
    def evaluate(self, value: Any) -> Any:
        """Evaluate every expression inside a JSON value."""
        if isinstance(value, dict):
            return {self.evaluate(k): self.evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        if is_expression(value):
            tokens = _tokenize(value[1:-1])
            result, pos = self._expr(tokens, 0)
            if pos != len(tokens):
                raise TemplateError(f"unexpected text after expression in {value!r}")
            return result
        if isinstance(value, str) and value.startswith("[["):
            return value[1:]
        return value

    def _call(self, name: str, args: list[Any]) -> Any:
        if name == "parameters":
            return self.parameter(*args)
        if name == "variables":
            return self.variable(*args)
        if name == "resourceGroup":
            return self.scope.resource_group_obj()
        if name == "subscription":
            return self.scope.subscription_obj()
        if name == "resourceId":
            return self.scope.resource_id(*args)
        fn = self.functions.get(name) or _BUILTINS.get(name)
        if fn is None:
            raise TemplateError(f"template function {name}() is not supported here")
        return fn(*args)

    def _expr(self, tokens: list, pos: int) -> tuple[Any, int]:
        kind, val = tokens[pos]
        pos += 1
        if kind in ("str", "num"):
            result = val
        elif kind == "name":
            if pos >= len(tokens) or tokens[pos] != ("sym", "("):
                raise TemplateError(f"expected '(' after {val}")
            pos += 1
            args = []
            while tokens[pos] != ("sym", ")"):
                arg, pos = self._expr(tokens, pos)
                args.append(arg)
                if tokens[pos] == ("sym", ","):
                    pos += 1
            pos += 1
            result = self._call(val, args)
        else:
            raise TemplateError(f"unexpected {val!r} in template expression")
        # property and index access: a.b, a[0], a['b']
        while pos < len(tokens) and tokens[pos] in (("sym", "."), ("sym", "[")):
            if tokens[pos] == ("sym", "."):
                prop = tokens[pos + 1][1]
                pos += 2
                # the tokenizer keeps dotted names together: "a.b" after a '.' is two accesses
                for part in str(prop).split("."):
                    result = result[part]
            else:
                index, pos = self._expr(tokens, pos + 1)
                pos += 1  # ']'
                result = result[index]
        return result, pos

    @staticmethod
    def _check(name: str, spec: dict, value: Any) -> Any:
        expected = _TYPES.get(str(spec.get("type", "")).lower())
        if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
            raise TemplateError(f"parameter {name} must be of type {spec['type']}, not {type(value).__name__} {value!r}")
        if "allowedValues" in spec and value not in spec["allowedValues"]:
            raise TemplateError(f"parameter {name} must be one of {spec['allowedValues']}, not {value!r}")
        if "minValue" in spec and value < spec["minValue"] or "maxValue" in spec and value > spec["maxValue"]:
            raise TemplateError(f"parameter {name} must be between {spec.get('minValue')} and {spec.get('maxValue')}, not {value!r}")
        if "minLength" in spec and len(value) < spec["minLength"] or "maxLength" in spec and len(value) > spec["maxLength"]:
            raise TemplateError(f"parameter {name} must have length {spec.get('minLength', 0)}..{spec.get('maxLength', '')}, not {len(value)}")
        return value
