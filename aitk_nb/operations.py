"""Long work (provision, deploy) in the background, in the shape of the Azure SDK's pollers
(azure-core `LROPoller`): `result(timeout=None)`, `wait()`, `done()`, `status()`,
`continuation_token()`, `add_done_callback()`, and `cancel()` where the work has a safe place to stop.

The work runs in a thread of its own, in a copy of the caller's context: in a kernel its output
(progress bars, lines) lands in the cell that started it, and the kernel stays free meanwhile. The
plain verbs are `begin_<verb>(...).result()`.

Stopping: `cancel()` asks the work to stop at its next safe point (`checkpoint`), or hands the request
to the work's own way of cancelling (`on_cancel`: an ARM deployment is cancelled through ARM). An
interrupt while `result()` waits (Kernel > Interrupt, Ctrl-C) stops the work at its next safe point
too, and `result()` raises KeyboardInterrupt once it has stopped (a second interrupt stops waiting).

Questions: the work may ask the caller a yes/no question (`ask`, e.g. "apply these changes to resources
that existed before?"). It is answered in the thread that waits in `result()`, by the `confirm`
function the operation was started with (`input()` in a kernel must be called where the kernel runs
the cell, not from a worker thread): who passes `confirm` waits with `result()`. An operation started
without one (in the background) gets "no".
"""
from __future__ import annotations

import contextvars
import enum
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from .errors import OperationCancelledError

T = TypeVar("T")


class OperationStatus(str, enum.Enum):
    """The status words of Azure's long-running operations."""

    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"


@dataclass(frozen=True)
class Progress:
    """Where the work is: `message` ("uploading: 12 MiB of 500 MiB"), and `fraction` (0..1) when the
    work knows how far it is. It prints, and shows in a notebook, as its message (issue 20, item 5)."""

    message: str
    fraction: float | None = None  # 0..1 when the work knows how far it is

    def __str__(self) -> str:
        return self.message

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.message)


class Operation(Generic[T]):
    """One long operation. `work(operation)` runs in the background; it reports with `report()`,
    stops at `checkpoint()`s, and may set a continuation token and a cancel hook."""

    def __init__(self, title: str, work: Callable[["Operation[T]"], T],
                 confirm: Callable[[str], bool] | None = None):
        self.title = title
        self._work = work
        self._confirm = confirm
        self._question: _Question | None = None
        self._done = threading.Event()
        self._cancel = threading.Event()  # seen at the work's checkpoints
        self._interrupted = threading.Event()
        self._lock = threading.Lock()
        self._cancel_hook: Callable[[], None] | None = None
        self.cancel_requested = False
        self._value: T | None = None
        self._error: BaseException | None = None
        self._status = OperationStatus.IN_PROGRESS
        self._token: str | None = None
        self._progress = Progress("starting")
        self._progress_callbacks: list[Callable[[Progress], None]] = []
        self._done_callbacks: list[Callable[["Operation[T]"], None]] = []
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, title: str, work: Callable[["Operation[T]"], T],
              confirm: Callable[[str], bool] | None = None) -> "Operation[T]":
        """Run `work(operation)` in a thread. `confirm(question) -> bool` answers the work's questions
        (`ask`) in the thread that waits in `result()`; without it every question gets "no"."""
        op = cls(title, work, confirm)
        context = contextvars.copy_context()
        op._thread = threading.Thread(target=context.run, args=(op._run,), name=f"aitk {title}", daemon=True)
        op._thread.start()
        return op

    def _run(self) -> None:
        try:
            self._value = self._work(self)
            status = OperationStatus.SUCCEEDED
        except BaseException as e:  # handed to whoever calls result(), KeyboardInterrupt included
            self._error = e
            stopped = isinstance(e, (OperationCancelledError, KeyboardInterrupt))
            status = OperationStatus.CANCELED if stopped else OperationStatus.FAILED
        with self._lock:
            self._status, self._cancel_hook = status, None
            callbacks = list(self._done_callbacks)
        self._done.set()
        for callback in callbacks:
            _call(callback, self)

    # -- the caller's side (azure-core LROPoller's names) -----------------------------------------
    def result(self, timeout: float | None = None) -> T:
        """The work's result once it is done; its exception if it failed; `TimeoutError` if it is
        still running after `timeout` seconds (it keeps running)."""
        try:
            self._wait(timeout, answer=True)
        except KeyboardInterrupt:
            self._interrupted.set()  # the work stops at its next safe point
            try:
                self._wait(None)
            except KeyboardInterrupt:
                pass  # a second interrupt: stop waiting for it
            raise
        if not self._done.is_set():
            raise TimeoutError(f"{self.title} is still running after {timeout:g} s ({self._progress.message})")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def wait(self, timeout: float | None = None) -> None:
        """Wait until done, or `timeout` seconds; unlike `result()`, raises nothing about the work."""
        self._wait(timeout)

    def _wait(self, timeout: float | None, *, answer: bool = False) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        # short waits, so an interrupt (or a question) is seen promptly whatever the platform's lock semantics
        while not self._done.wait(0.05 if answer else 0.25 if deadline is None else
                                  max(0.0, min(0.25, deadline - time.monotonic()))):
            if answer:
                self._answer()
            if deadline is not None and time.monotonic() >= deadline:
                return

    def _answer(self) -> None:
        """Answer the work's pending question here, in the waiting thread."""
        with self._lock:
            question, self._question = self._question, None
        if question is None:
            return
        try:
            question.answer = bool(self._confirm(question.text)) if self._confirm else False
        finally:  # an interrupt while asking: the work gets "no" (and stops at its next checkpoint)
            question.answered.set()

    def done(self) -> bool:
        return self._done.is_set()

    def status(self) -> str:
        """InProgress, Succeeded, Failed or Canceled (a `str` enum)."""
        return self._status

    def continuation_token(self) -> str | None:
        """What resumes the work after a kernel restart (azure provision: the ARM deployment's poller
        token, which `begin_provision(continuation_token=...)` takes), or None where re-running is the
        way to resume (deploy only sends what is missing)."""
        return self._token

    def cancel(self) -> bool:
        """Ask the work to stop where it is safe; False if it is already done. What is safe is the
        work's to say: deploy stops between files (never half a file) and does not restart the replica;
        an ARM deployment is cancelled through ARM (what it made so far stays)."""
        with self._lock:
            if self._done.is_set():
                return False
            self.cancel_requested = True
            hook = self._cancel_hook
            self._question = None  # a pending question is not put to the caller any more
        if hook is not None:
            hook()
        else:
            self._cancel.set()
        return True

    def add_done_callback(self, callback: Callable[["Operation[T]"], None]) -> None:
        """Call `callback(operation)` when the work ends (at once if it has)."""
        with self._lock:
            if not self._done.is_set():
                self._done_callbacks.append(callback)
                return
        _call(callback, self)

    def add_progress_callback(self, callback: Callable[[Progress], None]) -> None:
        """Call `callback(progress)` (from the work's thread) each time the work reports."""
        self._progress_callbacks.append(callback)

    @property
    def progress(self) -> Progress:
        return self._progress

    def __repr__(self) -> str:
        return f"<{self.title}: {self._status.value} — {self._progress.message}>"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(repr(self))

    # -- the work's side -------------------------------------------------------------------------
    def ask(self, question: str) -> bool:
        """Ask the caller (yes/no) and wait until `result()` answers; "no" at once when the operation
        has no `confirm` (it runs in the background). A cancel or an interrupt meanwhile stops it here."""
        if self._confirm is None:
            return False
        asked = _Question(question)
        with self._lock:
            self._question = asked
        self.report(f"waiting for an answer: {question.splitlines()[0]}")
        while not asked.answered.wait(0.25):
            self.checkpoint("nothing was changed: the question was not answered")
            if self.cancel_requested:  # cancelled through a hook: no checkpoint raises, the answer is no
                return False
        return asked.answer

    def report(self, message: str, fraction: float | None = None) -> None:
        self._progress = Progress(message, fraction)
        for callback in list(self._progress_callbacks):
            _call(callback, self._progress)

    def checkpoint(self, leaves: str) -> None:
        """A safe place to stop: raises if the caller interrupted or cancelled. `leaves` says what
        stopping here leaves behind, for the error the caller sees."""
        if self._interrupted.is_set():
            raise KeyboardInterrupt
        if self._cancel.is_set():
            raise OperationCancelledError(f"{self.title} cancelled: {leaves}")

    def set_continuation_token(self, token: str | None) -> None:
        self._token = token

    def on_cancel(self, hook: Callable[[], None] | None) -> None:
        """While set, `cancel()` calls `hook` instead of stopping at the next checkpoint (the work
        cancels in its own way and ends when that takes effect). A cancel asked before is applied now."""
        with self._lock:
            self._cancel_hook = hook
            pending = hook is not None and self._cancel.is_set()
            if pending:
                self._cancel.clear()  # handed to the hook: the work ends when the hook's cancel takes effect
        if pending:
            hook()


@dataclass
class _Question:
    text: str
    answer: bool = False
    answered: threading.Event = field(default_factory=threading.Event)


def _call(callback: Callable, arg) -> None:
    """A callback's failure (a display, say) must not end the work: it is shown, not raised."""
    try:
        callback(arg)
    except Exception:  # noqa: BLE001 — printed where the user sees it
        traceback.print_exc()
