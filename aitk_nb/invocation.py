"""How the user runs a verb where they are: `%aitk deploy` in a notebook (`%%aitk eval`, a cell magic),
`aitk deploy` in a terminal. Every message that tells the user to run a command builds it with
`command()`, so it reads right in both; the CLI marks its calls with `in_terminal()`.

A context variable, not a global: long verbs run in a thread started in a copy of the caller's
context (`Operation.start`), so their messages still know where the caller is.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

CELL_VERBS = frozenset({"eval"})  # cell magics in a notebook; in a terminal the cell body is a file

_terminal: contextvars.ContextVar[bool] = contextvars.ContextVar("aitk_terminal", default=False)


@contextlib.contextmanager
def in_terminal() -> Iterator[None]:
    """Messages built inside name the CLI's commands (`aitk provision`)."""
    token = _terminal.set(True)
    try:
        yield
    finally:
        _terminal.reset(token)


def command(line: str) -> str:
    """`line` ("deploy --adapter PATH") as the user types it here, in backticks."""
    verb = line.split(" ", 1)[0]
    cell = verb in CELL_VERBS and " --resume " not in f"{line} "  # a resume reads its prompts from FILE
    if _terminal.get():
        return f"`aitk {line}{' PROMPTS_FILE' if cell else ''}`"
    return f"`{'%%' if cell else '%'}aitk {line}`"
