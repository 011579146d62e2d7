"""What the forms share: running an action from a button, and the message line under the buttons."""
from __future__ import annotations

import html
import traceback
from typing import Any, Callable

from ..errors import AitkError

OK, ERROR, INFO = "#1e7e34", "#c62828", "#555"
ACTION_STYLE = {"create": ("#e6f4ea", "#1e7e34"), "modify": ("#fff4e5", "#a15c00"), "delete": ("#fce8e6", "#c62828")}


def message_html(text: str, color: str = INFO) -> str:
    # inline-block with its own line height: a wrapped message stays compact beside its field
    return f"<span style='color:{color};display:inline-block;line-height:1.3'>{html.escape(text)}</span>"


def changes_table(changes: list[tuple[str, str]]) -> str:
    """What-if as a table: one row per resource, the action as a coloured badge."""
    rows = ""
    for what, action in changes:
        bg, fg = ACTION_STYLE.get(action.lower().replace("no change", "nochange"), ("#f1f3f4", "#555"))
        rows += (f"<tr><td style='text-align:left;padding:2px 12px 2px 0'>{html.escape(what)}</td>"
                 f"<td style='text-align:left'><span style='background:{bg};color:{fg};border-radius:8px;"
                 f"padding:1px 8px'>{html.escape(action)}</span></td></tr>")
    return (f"<table class='aitk-changes'><tr><th style='text-align:left'>resource</th>"
            f"<th style='text-align:left'>action</th></tr>{rows}</table>")


class ActionRunner:
    """Runs a button's action: every action button disabled while it runs (re-enabled in `finally`),
    the output area cleared, the outcome one line in `message`; an AitkError is that one line, any
    other exception also leaves its traceback in `output` — never lost to the kernel log."""

    def __init__(self, buttons: list, output, message, after: Callable[[], None] | None = None):
        self.buttons, self.output, self.message, self.after = buttons, output, message, after
        self.running = False
        self.last_error: BaseException | None = None

    def run(self, action: Callable[[], Any], busy: str) -> Any:
        if self.running:
            return None
        self.running = True
        states = [b.disabled for b in self.buttons]
        for b in self.buttons:
            b.disabled = True
        self.last_error = None
        self.message.value = message_html(busy + " …")
        self.output.clear_output(wait=True)
        try:
            # the handlers sit inside the `with`: in a kernel, Output.__exit__ would otherwise show a
            # full traceback for an AitkError and swallow it
            with self.output:
                try:
                    return action()
                except AitkError as e:
                    self.last_error = e
                    self.message.value = message_html(f"{type(e).__name__}: {e}".splitlines()[0], ERROR)
                    if "\n" in str(e):  # e.g. a crashed replica's log tail: the detail goes below
                        self.output.append_stderr(str(e) + "\n")
                except Exception as e:  # a bug: keep the traceback where the user sees it
                    self.last_error = e
                    self.message.value = message_html(f"unexpected error: {type(e).__name__}: {e}; traceback below", ERROR)
                    self.output.append_stderr(traceback.format_exc())
                except KeyboardInterrupt as e:
                    self.last_error = e
                    self.message.value = message_html("interrupted", ERROR)
        finally:
            for b, state in zip(self.buttons, states):
                b.disabled = state
            self.running = False
            if self.after is not None:
                self.after()
        return None
