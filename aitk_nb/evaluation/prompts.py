"""What an evaluation asks and how an answer is scored: prompts from a cell body or a list, and the
built-in scorers."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable

from ..errors import EvalError
from ..invocation import body

# (answer, expected) -> bool, or None for "not scored". A user function is called for every answer,
# expected or not (expected is then None); the built-in modes score only prompts with an expected answer.
Scorer = Callable[[str, "str | None"], "bool | None"]
SCORERS: dict[str, Scorer] = {
    "contains": lambda answer, expected: expected.strip().lower() in answer.lower(),
    "exact": lambda answer, expected: answer.strip().lower() == expected.strip().lower(),
}

@dataclass(frozen=True)
class Prompt:
    prompt: str
    expected: str | None = None
    group: str | None = None  # e.g. "facts" vs "controls": the summary shows accuracy per group


def parse_prompts(source: str | Iterable[str | dict | Prompt]) -> list[Prompt]:
    """Prompts from a cell body (one per line, or JSONL lines {"prompt", "expected"?, "group"?}),
    or from a list of strings, dicts or `Prompt`s."""
    items = source.splitlines() if isinstance(source, str) else list(source)
    out = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Prompt):
            out.append(item)
            continue
        if isinstance(item, str):
            line = item.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("{"):
                out.append(Prompt(line))
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalError(f"prompt line {n} is not valid JSON ({e.msg}); write one prompt per line "
                                'or {"prompt": ..., "expected": ...}') from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise EvalError(f'prompt line {n} needs a non-empty "prompt" string')
        for key in ("expected", "group"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise EvalError(f'prompt line {n}: "{key}" must be a string')
        out.append(Prompt(item["prompt"], item.get("expected"), item.get("group") or None))
    if not out:
        raise EvalError(f"no prompts given; put one prompt per line in {body()}")
    return out
