"""How the user runs a verb where they are: `%aitk deploy` in a notebook (`%%aitk eval`, a cell magic),
`aitk deploy` in a terminal. Every message that tells the user to run a command builds it with
`command()`, so it reads right in both; the CLI marks its calls with `in_terminal()`.

A context variable, not a global: long verbs run in a thread started in a copy of the caller's
context (`Operation.start`), so their messages still know where the caller is.
"""
from __future__ import annotations

import contextlib
import contextvars
import shlex
from typing import Iterator

CELL_VERBS = frozenset({"eval"})  # cell magics in a notebook; in a terminal the cell body is a file

_terminal: contextvars.ContextVar[bool] = contextvars.ContextVar("aitk_terminal", default=False)
# the --project the user passed: a suggested command names it too, so it works where they are (issue 20)
_project: contextvars.ContextVar[str | None] = contextvars.ContextVar("aitk_project", default=None)
# what a cell magic's body is in a terminal: the file the CLI read it from (issue 20, item 8)
_body: contextvars.ContextVar[str] = contextvars.ContextVar("aitk_body", default="the prompts file")


@contextlib.contextmanager
def in_terminal() -> Iterator[None]:
    """Messages built inside name the CLI's commands (`aitk provision`)."""
    token = _terminal.set(True)
    try:
        yield
    finally:
        _terminal.reset(token)


@contextlib.contextmanager
def body_read_from(source: str) -> Iterator[None]:
    """Messages built inside name `source` (a file, or stdin) where a notebook's would name the cell body."""
    token = _body.set(source)
    try:
        yield
    finally:
        _body.reset(token)


@contextlib.contextmanager
def for_project(project: str | None) -> Iterator[None]:
    """Commands built inside name `--project PROJECT` (the user's own words for it), when given."""
    token = _project.set(project)
    try:
        yield
    finally:
        _project.reset(token)


def body() -> str:
    """Where a cell magic's text (eval's prompts) comes from, as the user knows it here."""
    return _body.get() if _terminal.get() else "the cell body"


def command(line: str) -> str:
    """`line` ("deploy --adapter PATH") as the user types it here, in backticks."""
    verb = line.split(" ", 1)[0]
    if (project := _project.get()) is not None:
        line += f" --project {shlex.quote(str(project))}"
    cell = verb in CELL_VERBS and " --resume " not in f"{line} "  # a resume reads its prompts from FILE
    if _terminal.get():
        return f"`aitk {line}{' PROMPTS_FILE' if cell else ''}`"
    return f"`{'%%' if cell else '%'}aitk {line}`"
