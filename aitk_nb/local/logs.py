"""The replica's log file: what it printed, kept beside the app record (the previous start's in `.1`)."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Callable, Iterator


# a line that names a cause: a log record at error level, an exception (a traceback's last line), a failure
_CAUSE = re.compile(r"(?i)error|exception|failed|fatal|killed|no such file|not found|denied")


class LogFile:
    def __init__(self, path: Path):
        self.path = path

    @property
    def previous(self) -> Path:
        """The previous start's log, kept by `rotate()`."""
        return self.path.with_suffix(self.path.suffix + ".1")

    def remove(self) -> None:
        """This start's log and the previous one's."""
        for path in (self.path, self.previous):
            path.unlink(missing_ok=True)

    def rotate(self) -> None:
        """Keep the previous replica's log as `<name>.1`; a new start writes a fresh file."""
        if self.path.exists():
            os.replace(self.path, self.previous)

    def tail(self, n: int | None) -> str:
        """The last `n` lines (None: all)."""
        if not self.path.exists():
            return ""
        lines = self.path.read_text(errors="replace").splitlines()
        return "\n".join(lines if n is None else lines[max(len(lines) - n, 0):] if n else [])

    def crash_excerpt(self, tail: int = 25, causes: int = 10, last: int = 5) -> str:
        """What a crash report shows: the last `tail` lines; but when lines that name a cause come before
        the last `last` ones (a process that fails, then shuts down cleanly, ends with its shutdown lines:
        issue 20, item 2), those lines (up to `causes`), then the last `last` lines."""
        lines = self.tail(None).splitlines()
        early = [line for line in lines[:max(len(lines) - last, 0)] if _CAUSE.search(line)][-causes:]
        if not early:
            return "\n".join(lines[max(len(lines) - tail, 0):] if tail else [])  # fewer lines than tail: all
        return "\n".join(early + ["... and its last lines:"] + lines[-last:])

    def follow(self, running: Callable[[], bool], tail: int = 0, poll: float = 0.5) -> Iterator[str]:
        """The last `tail` lines, then new ones as they are written, while `running()` (stop with an
        interrupt). A restart rotates the file: the new replica's log is then followed from its start."""
        if not self.path.exists():
            return
        f = open(self.path, "rb")
        try:
            lines = f.read().splitlines(keepends=True)
            pending = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""  # a line being written
            for line in lines[len(lines) - tail:] if tail else []:
                yield line.decode(errors="replace").rstrip("\n")
            while True:
                chunk = f.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith(b"\n"):
                        yield pending.decode(errors="replace").rstrip("\n")
                        pending = b""
                elif self._rotated(f):
                    f.close()
                    f, pending = open(self.path, "rb"), b""
                elif not running():
                    return
                else:
                    time.sleep(poll)
        finally:
            f.close()

    def _rotated(self, f) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            return False
