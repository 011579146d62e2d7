"""What the forms share: running an action from a button (in the background when it is long, with
progress and a Cancel button), and the message line under the buttons."""
from __future__ import annotations

import contextlib
import html
import time
import traceback
from typing import Any, Callable, Iterator

from ..errors import AitkError
from ..operations import Operation, Progress

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
    """Runs the forms' actions. A long one (`start`: a `begin_*` call returning an `Operation`) runs in
    the background, so the kernel stays free: every action button is disabled meanwhile (re-enabled in
    `finally`), the Cancel button is enabled, and the bar and the message line follow its progress. A
    quick one (`run_now`) runs on the spot. Either way the outcome is one line in `message`: an
    AitkError is that line (its detail below it, in `output`), any other exception also leaves its
    traceback in `output`; nothing is lost to the kernel log."""

    def __init__(self, buttons: list, output, message, after: Callable[[], None] | None = None):
        import ipywidgets as w

        self.buttons, self.output, self.message, self.after = buttons, output, message, after
        self.cancel_button = w.Button(description="Cancel", icon="stop", disabled=True,
                                      tooltip="stop at the next safe point (what that leaves is said below)")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="300px", visibility="hidden"))
        self.running = False
        self.operation: Operation | None = None
        self.last_error: BaseException | None = None
        self._states: list[bool] = []

    # -- long actions: in the background -------------------------------------------------------
    def start(self, begin: Callable[[], Operation], busy: str, done: Callable[[Any], None]) -> Operation | None:
        """Start `begin()` (bad input raises there, and is shown at once); `done(result)` when it ends."""
        if self.running:
            return None
        self._begin(busy)
        self.bar.layout.visibility = "visible"
        op = None
        with self._shown():
            op = begin()
        if op is None:  # begin() refused the input; the form shows why
            self._end()
            return None
        self.operation = op
        self.cancel_button.disabled = False
        op.add_progress_callback(lambda p: self._progress(busy, p))
        op.add_done_callback(lambda finished: self._finish(finished, done))
        return op

    def _progress(self, busy: str, progress: Progress) -> None:
        self.message.value = message_html(f"{busy}: {progress.message}")
        if progress.fraction is not None:
            self.bar.value = progress.fraction

    def _finish(self, op: Operation, done: Callable[[Any], None]) -> None:
        try:
            with self._shown():
                done(op.result())
        finally:
            failed = self.last_error is not None
            self.bar.bar_style, self.bar.value = ("danger", self.bar.value) if failed else ("success", 1.0)
            self._end()

    def cancel(self) -> bool:
        """Ask the running action to stop where it is safe (its error then says what that left)."""
        if self.operation is None or self.operation.done():
            return False
        self.cancel_button.disabled = True
        self.message.value = message_html("cancelling: stopping at the next safe point …")
        return self.operation.cancel()

    def wait(self, timeout: float | None = None) -> None:
        """Wait until the running action has ended and the form shows its outcome (tests, scripts)."""
        op = self.operation
        if op is not None:
            op.wait(timeout)
        deadline = time.monotonic() + (timeout if timeout is not None else 30.0)
        while self.running and time.monotonic() < deadline:  # the done callback is finishing the display
            time.sleep(0.01)

    # -- quick actions: on the spot ------------------------------------------------------------
    def run_now(self, action: Callable[[], Any], busy: str) -> Any:
        if self.running:
            return None
        self._begin(busy)
        try:
            with self._shown():
                return action()
        finally:
            self._end()

    # -- shared --------------------------------------------------------------------------------
    def _begin(self, busy: str) -> None:
        self.running = True
        self._states = [b.disabled for b in self.buttons]
        for b in self.buttons:
            b.disabled = True
        self.last_error = None
        self.operation = None
        self.bar.value, self.bar.bar_style = 0.0, ""
        self.message.value = message_html(busy + " …")
        self.output.outputs = ()  # what is shown is appended to this trait (from any thread), so it is reset here

    def _end(self) -> None:
        for b, state in zip(self.buttons, self._states):
            b.disabled = state
        self.cancel_button.disabled = True
        self.running = False
        if self.after is not None:
            self.after()

    @contextlib.contextmanager
    def _shown(self) -> Iterator[None]:
        """Show what goes wrong in the block in the form (it does not propagate)."""
        try:
            yield
        except AitkError as e:
            self.last_error = e
            self.message.value = message_html(f"{type(e).__name__}: {e}".splitlines()[0], ERROR)
            if "\n" in str(e):  # e.g. a crashed replica's log tail: the detail goes below
                self.output.append_stderr(str(e) + "\n")
        except Exception as e:  # a bug: keep the traceback where the user sees it
            self.last_error = e
            self.message.value = message_html(f"unexpected error: {type(e).__name__}: {e}; traceback below", ERROR)
            self.output.append_stderr("".join(traceback.format_exception(e)))
        except KeyboardInterrupt as e:
            self.last_error = e
            self.message.value = message_html("interrupted", ERROR)
