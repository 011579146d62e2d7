"""The template functions that need nothing but their arguments, written from learn.microsoft.com's
"ARM template functions" pages (array, comparison, date, logical, numeric, object, string).

Functions that need the deployment (parameters, variables, resourceGroup, resourceId, reference,
list*, copyIndex, ...) are in template.py. Not here: the lambda functions (filter, map, reduce,
sort, toObject), user-defined functions and the languageVersion 2.0 functions (tryGet, ...)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import re
import urllib.parse
import uuid
from typing import Any, Callable

from .errors import TemplateError
from .expressions import to_json, type_name
from .hashing import guid, unique_string

STRING, INT, BOOL, ARRAY, OBJECT = "String", "Integer", "Boolean", "Array", "Object"


# -- argument checks ---------------------------------------------------------------------------------
def arity(name: str, args: tuple, least: int, most: int | None = None) -> None:
    most = least if most is None else most
    if not least <= len(args) <= (most if most >= 0 else len(args)):
        want = f"at least {least}" if most < 0 else (f"{least}" if least == most else f"{least} to {most}")
        raise TemplateError(f"Unable to evaluate template language function '{name}': function requires {want} argument(s) "
                            f"while {len(args)} were provided. Please see https://aka.ms/arm-functions for usage details.")


def expect(name: str, value: Any, *kinds: str) -> Any:
    if type_name(value) not in kinds:
        raise TemplateError(f"The template language function '{name}' expects its parameter to be of type '{' or '.join(kinds)}'. "
                            f"The provided value is of type '{type_name(value)}'. Please see https://aka.ms/arm-functions for usage details.")
    return value


def equal(a: Any, b: Any) -> bool:
    """Deep equality with the language's types: 1 is not true, 'a' is not 'A'."""
    if type_name(a) != type_name(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(equal(v, b[k]) for k, v in a.items())
    return a == b


def text(value: Any) -> str:
    """string(value): objects and arrays as compact JSON, booleans as .NET writes them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return to_json(value)
    return str(value)


# -- strings ---------------------------------------------------------------------------------------------
def _concat(_, *args):
    arity("concat", args, 1, -1)
    if any(isinstance(a, list) for a in args):
        if not all(isinstance(a, list) or a is None for a in args):
            raise TemplateError("The provided parameters for language function 'concat' are invalid. Either all or none of the "
                                "parameters must be an array. Please see https://aka.ms/arm-functions for usage details.")
        return [x for a in args if a is not None for x in a]
    for a in args:
        expect("concat", a, STRING, INT, BOOL, "Null")
    return "".join(text(a) for a in args)


_FORMAT_ITEM = re.compile(r"\{\{|\}\}|\{(\d+)(?:,(-?\d+))?(?::([^{}]*))?\}|[{}]")


def _format(_, fmt=None, *args):
    """.NET composite formatting, as String.Format: {index[,alignment][:format]}, {{ and }} escape."""
    expect("format", fmt, STRING)

    def item(m: re.Match) -> str:
        if m[0] in ("{{", "}}"):
            return m[0][0]
        if m[1] is None:
            raise TemplateError("The template language function 'format' has an invalid format string: Input string was not in a correct format.")
        index = int(m[1])
        if index >= len(args):
            raise TemplateError("The template language function 'format' has an invalid format string: Index (zero based) must be "
                                "greater than or equal to zero and less than the size of the argument list.")
        out = _format_value(args[index], m[3] or "")
        width = int(m[2]) if m[2] else 0
        return out.rjust(width) if width > 0 else out.ljust(-width)

    return _FORMAT_ITEM.sub(item, fmt)


def _format_value(value: Any, spec: str) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or not spec:
        return text(value)
    kind, digits = spec[0], spec[1:]
    n = int(digits) if digits.isdigit() else None
    if kind in "Nn":
        return f"{value:,.{2 if n is None else n}f}"
    if kind in "Dd":
        return f"{value:0{n or 0}d}" if value >= 0 else "-" + f"{-value:0{n or 0}d}"
    if kind in "Xx":
        return format(value & 0xFFFFFFFF if value < 0 else value, f"0{n or 0}{kind}")
    if kind in "Ff":
        return f"{value:.{2 if n is None else n}f}"
    return str(value)                                   # G and custom formats: plain digits


def _substring(_, s=None, start=0, length=None):
    expect("substring", s, STRING)
    expect("substring", start, INT)
    if length is None:
        length = len(s) - start
    expect("substring", length, INT)
    if start < 0 or length < 0 or start + length > len(s):
        raise TemplateError(f"The index and length parameters must refer to a location within the string. The index parameter: "
                            f"'{start}', the length parameter: '{length}', the length of the string parameter: '{len(s)}'. "
                            "Please see https://aka.ms/arm-functions for usage details.")
    return s[start:start + length]


def _take(name: str, skip: bool):
    def fn(_, value=None, count=None):
        expect(name, value, STRING, ARRAY)
        expect(name, count, INT)
        n = max(0, count)
        return value[n:] if skip else value[:n]
    return fn


def _split(_, s=None, delimiters=None):
    expect("split", s, STRING)
    delims = [delimiters] if isinstance(delimiters, str) else expect("split", delimiters, STRING, ARRAY)
    if not delims:
        return [s]
    return re.split("|".join(re.escape(d) for d in delims if d), s) if any(delims) else [s]


def _pad_left(_, value=None, total=None, char=" "):
    expect("padLeft", value, STRING, INT)
    expect("padLeft", total, INT)
    if not isinstance(char, str) or len(char) != 1:
        raise TemplateError("The template language function 'padLeft' expects its third parameter to be a single character.")
    return text(value).rjust(total, char)


def _index_of(last: bool):
    name = "lastIndexOf" if last else "indexOf"

    def fn(_, container=None, item=None):
        arity(name, (container, item), 2)
        if isinstance(container, str):
            expect(name, item, STRING)
            haystack, needle = container.lower(), item.lower()     # case-insensitive on strings
            return haystack.rfind(needle) if last else haystack.find(needle)
        expect(name, container, ARRAY)
        order = range(len(container) - 1, -1, -1) if last else range(len(container))
        return next((i for i in order if equal(container[i], item)), -1)
    return fn


def _json(_, value=None):
    expect("json", value, STRING)
    try:
        return json.loads(value)
    except ValueError:
        try:   # Json.NET, which ARM uses, also reads single-quoted strings: {'one': 'a'}
            return json.loads(_single_to_double_quotes(value))
        except ValueError as e:
            raise TemplateError(f"The template language function 'json' has an invalid parameter: the value is not valid JSON "
                                f"({e}). Please see https://aka.ms/arm-functions for usage details.") from None


def _single_to_double_quotes(s: str) -> str:
    out, i, quote = [], 0, None
    while i < len(s):
        c = s[i]
        if quote is None and c in "'\"":
            quote = c
            out.append('"')
        elif quote is not None and c == "\\" and i + 1 < len(s):
            out.append(s[i:i + 2])
            i += 1
        elif quote is not None and c == quote:
            quote = None
            out.append('"')
        elif quote == "'" and c == '"':
            out.append('\\"')
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _data_uri_to_string(_, uri=None):
    expect("dataUriToString", uri, STRING)
    head, _, data = uri.partition(",")
    if not head.startswith("data:"):
        raise TemplateError("The template language function 'dataUriToString' expects a data URI.")
    return base64.b64decode(data).decode() if head.endswith(";base64") else urllib.parse.unquote(data)


def _uri(_, base=None, relative=None):
    expect("uri", base, STRING)
    expect("uri", relative, STRING)
    return urllib.parse.urljoin(base, relative)


# -- arrays and objects -------------------------------------------------------------------------------
def _contains(_, container=None, item=None):
    if isinstance(container, str):
        expect("contains", item, STRING, INT)
        return text(item) in container                           # case-sensitive
    if isinstance(container, dict):
        expect("contains", item, STRING)
        return any(k.lower() == item.lower() for k in container)  # keys: case-insensitive
    expect("contains", container, ARRAY, OBJECT, STRING)
    return any(equal(x, item) for x in container)


def _empty(_, value=None):
    if value is None:
        return True
    return len(expect("empty", value, STRING, ARRAY, OBJECT)) == 0


def _length(_, value=None):
    return len(expect("length", value, STRING, ARRAY, OBJECT))


def _first_last(name: str, index: int):
    def fn(_, value=None):
        expect(name, value, STRING, ARRAY)
        if not value:
            return "" if isinstance(value, str) else None
        return value[index]
    return fn


def _union(_, *args):
    arity("union", args, 1, -1)
    if all(isinstance(a, dict) for a in args):
        out: dict = {}
        for a in args:
            out = _merge(out, a)
        return out
    for a in args:
        expect("union", a, ARRAY)
    out_list: list = []
    for a in args:
        for x in a:
            if not any(equal(x, y) for y in out_list):
                out_list.append(x)
    return out_list


def _merge(base: dict, extra: dict) -> dict:
    """union() of objects: later values win; nested objects are merged too, arrays are not."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _intersection(_, *args):
    arity("intersection", args, 2, -1)
    if all(isinstance(a, dict) for a in args):
        first, rest = args[0], args[1:]
        return {k: v for k, v in first.items() if all(k in r and equal(r[k], v) for r in rest)}
    for a in args:
        expect("intersection", a, ARRAY)
    out: list = []
    for x in args[0]:
        if all(any(equal(x, y) for y in a) for a in args[1:]) and not any(equal(x, y) for y in out):
            out.append(x)
    return out


def _index_from_end(values, index):
    expect("indexFromEnd", values, ARRAY)
    expect("indexFromEnd", index, INT)
    if not 1 <= index <= len(values):
        raise TemplateError(f"The template language function 'indexFromEnd' has an index '{index}' out of bounds.")
    return values[-index]


def _create_object(_, *args):
    if len(args) % 2:
        raise TemplateError("The template language function 'createObject' must have an even number of parameters.")
    keys = args[::2]
    for k in keys:
        expect("createObject", k, STRING)
    return dict(zip(keys, args[1::2]))


def _items(_, value=None):
    expect("items", value, OBJECT)
    return [{"key": k, "value": value[k]} for k in sorted(value)]


def _range(_, start=None, count=None):
    expect("range", start, INT)
    expect("range", count, INT)
    if count < 0 or start + count > 2147483647:
        raise TemplateError("The template language function 'range' has invalid parameters: count must be non-negative and "
                            "startIndex + count at most 2147483647.")
    return list(range(start, start + count))


def _min_max(name: str, pick: Callable):
    def fn(_, *args):
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not values:
            raise TemplateError(f"The template language function '{name}' needs at least one value.")
        for v in values:
            expect(name, v, INT)
        return pick(values)
    return fn


# -- numbers, comparison, logic ------------------------------------------------------------------------------
def _arith(name: str, op: Callable[[int, int], int]):
    def fn(_, a=None, b=None):
        expect(name, a, INT)
        expect(name, b, INT)
        if name in ("div", "mod") and b == 0:
            raise TemplateError(f"The template language function '{name}' cannot divide by zero.")
        return op(a, b)
    return fn


def _truncating_div(a: int, b: int) -> int:   # .NET integer division rounds toward zero
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _compare(name: str, op: Callable[[Any, Any], bool]):
    def fn(_, a=None, b=None):
        expect(name, a, INT, STRING)
        expect(name, b, INT, STRING)
        if type_name(a) != type_name(b):
            raise TemplateError(f"The template language function '{name}' expects two values of the same type (Integer or String).")
        return op(a, b)
    return fn


def _int(_, value=None):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    expect("int", value, STRING)
    try:
        return int(value.strip())
    except ValueError:
        raise TemplateError(f"The template language function 'int' cannot convert '{value}' to an integer.") from None


def _bool(_, value=None):
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    expect("bool", value, STRING, INT, BOOL)
    if value.lower() not in ("true", "false"):
        raise TemplateError(f"The template language function 'bool' cannot convert '{value}' to a boolean.")
    return value.lower() == "true"


def _not(_, value=None):
    return not expect("not", value, BOOL)


# lazy: (scope, evaluate, *nodes)
def _if(scope, evaluate, *nodes):
    arity("if", nodes, 3)
    return evaluate(nodes[1]) if expect("if", evaluate(nodes[0]), BOOL) else evaluate(nodes[2])


def _and_or(name: str, stop_at: bool):
    def fn(scope, evaluate, *nodes):
        arity(name, nodes, 1, -1)
        for node in nodes:
            if expect(name, evaluate(node), BOOL) is stop_at:
                return stop_at
        return not stop_at
    return fn


def _coalesce(scope, evaluate, *nodes):
    arity("coalesce", nodes, 1, -1)
    for node in nodes:
        value = evaluate(node)
        if value is not None:
            return value
    return None


# -- dates ----------------------------------------------------------------------------------------------------------
_DURATION = re.compile(r"^(-)?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _parse_time(name: str, value: Any) -> dt.datetime:
    expect(name, value, STRING)
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise TemplateError(f"The template language function '{name}' cannot parse '{value}' as a date and time.") from None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def format_time(t: dt.datetime, fmt: str | None) -> str:
    """The .NET format strings the date functions take: custom (yyyy MM dd HH mm ss, literal T and Z),
    'u', 'o' and 's'; the default is ISO 8601 with a Z."""
    t = t.astimezone(dt.timezone.utc)
    if fmt in (None, "", "o", "O"):
        return t.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if not t.microsecond else f".{t.microsecond:06d}0Z")
    if fmt == "u":
        return t.strftime("%Y-%m-%d %H:%M:%SZ")
    if fmt == "s":
        return t.strftime("%Y-%m-%dT%H:%M:%S")
    tokens = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
    pattern = re.sub("|".join(tokens), lambda m: tokens[m[0]], fmt)
    return t.strftime(pattern)


def _date_time_add(_, base=None, duration=None, fmt=None):
    t = _parse_time("dateTimeAdd", base)
    m = _DURATION.match(expect("dateTimeAdd", duration, STRING))
    if not m or duration in ("P", "PT"):
        raise TemplateError(f"The template language function 'dateTimeAdd' cannot parse '{duration}' as an ISO 8601 duration.")
    sign = -1 if m[1] else 1
    years, months, weeks, days, hours, minutes = (int(x or 0) for x in m.groups()[1:7])
    seconds = float(m[8] or 0)
    month_index = t.month - 1 + sign * (years * 12 + months)
    t = t.replace(year=t.year + month_index // 12, month=month_index % 12 + 1)
    t += sign * dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return format_time(t, fmt)


def _epoch_to_time(_, epoch=None):
    return format_time(dt.datetime.fromtimestamp(expect("dateTimeFromEpoch", epoch, INT), dt.timezone.utc), None)


def _time_to_epoch(_, value=None):
    return int(_parse_time("dateTimeToEpoch", value).timestamp())


def utc_now(_, fmt=None) -> str:
    return format_time(dt.datetime.now(dt.timezone.utc), fmt or "yyyyMMddTHHmmssZ")


def _strings_only(name: str, fn: Callable[..., str]):
    def call(_, *args):
        arity(name, args, 1, -1)
        for a in args:
            expect(name, a, STRING)
        return fn(*args)
    return call


def _one_string(name: str, fn: Callable[[str], Any]):
    def call(_, value=None):
        return fn(expect(name, value, STRING))
    return call


BUILTINS: dict[str, Callable] = {
    # strings
    "base64": _one_string("base64", lambda s: base64.b64encode(s.encode()).decode()),
    "base64tostring": _one_string("base64ToString", lambda s: base64.b64decode(s).decode()),
    "base64tojson": lambda scope, s=None: _json(scope, base64.b64decode(expect("base64ToJson", s, STRING)).decode()),
    "concat": _concat,
    "contains": _contains,
    "datauri": _one_string("dataUri", lambda s: "data:text/plain;charset=utf8;base64," + base64.b64encode(s.encode()).decode()),
    "datauritostring": _data_uri_to_string,
    "empty": _empty,
    "endswith": lambda _, s=None, x=None: expect("endsWith", s, STRING).lower().endswith(expect("endsWith", x, STRING).lower()),
    "startswith": lambda _, s=None, x=None: expect("startsWith", s, STRING).lower().startswith(expect("startsWith", x, STRING).lower()),
    "first": _first_last("first", 0),
    "last": _first_last("last", -1),
    "format": _format,
    "guid": _strings_only("guid", guid),
    "uniquestring": _strings_only("uniqueString", unique_string),
    "indexof": _index_of(False),
    "lastindexof": _index_of(True),
    "json": _json,
    "join": lambda _, items=None, sep=None: expect("join", sep, STRING).join(text(expect("join", x, STRING, INT, BOOL)) for x in expect("join", items, ARRAY)),
    "length": _length,
    "padleft": _pad_left,
    "replace": lambda _, s=None, a=None, b=None: expect("replace", s, STRING).replace(expect("replace", a, STRING), expect("replace", b, STRING)),
    "skip": _take("skip", True),
    "take": _take("take", False),
    "split": _split,
    "string": lambda _, *a: (arity("string", a, 1), text(a[0]))[1],
    "substring": _substring,
    "tolower": _one_string("toLower", str.lower),
    "toupper": _one_string("toUpper", str.upper),
    "trim": _one_string("trim", str.strip),
    "uri": _uri,
    "uricomponent": _one_string("uriComponent", lambda s: urllib.parse.quote(s, safe="-_.~")),
    "uricomponenttostring": _one_string("uriComponentToString", urllib.parse.unquote),
    # arrays and objects
    "array": lambda _, v=None: v if isinstance(v, list) else [v],
    "flatten": lambda _, v=None: [x for inner in expect("flatten", v, ARRAY) for x in expect("flatten", inner, ARRAY)],
    "indexfromend": lambda _, v=None, i=None: _index_from_end(v, i),
    "createarray": lambda _, *a: list(a),
    "createobject": _create_object,
    "intersection": _intersection,
    "items": _items,
    "union": _union,
    "range": _range,
    "min": _min_max("min", min),
    "max": _min_max("max", max),
    "null": lambda _: None,
    # comparison and logic
    "equals": lambda _, *a: (arity("equals", a, 2), equal(*a))[1],
    "greater": _compare("greater", lambda a, b: a > b),
    "greaterorequals": _compare("greaterOrEquals", lambda a, b: a >= b),
    "less": _compare("less", lambda a, b: a < b),
    "lessorequals": _compare("lessOrEquals", lambda a, b: a <= b),
    "bool": _bool,
    "not": _not,
    "true": lambda _: True,
    "false": lambda _: False,
    # numbers
    "int": _int,
    "add": _arith("add", lambda a, b: a + b),
    "sub": _arith("sub", lambda a, b: a - b),
    "mul": _arith("mul", lambda a, b: a * b),
    "div": _arith("div", _truncating_div),
    "mod": _arith("mod", lambda a, b: a - _truncating_div(a, b) * b),
    # dates
    "datetimeadd": _date_time_add,
    "datetimefromepoch": _epoch_to_time,
    "datetimetoepoch": _time_to_epoch,
    "utcnow": utc_now,
    "newguid": lambda _: str(uuid.uuid4()),
}

LAZY: dict[str, Callable] = {
    "if": _if,
    "and": _and_or("and", False),
    "or": _and_or("or", True),
    "coalesce": _coalesce,
}
