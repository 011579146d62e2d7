"""The replica's log file: what it printed, kept beside the app record (the previous start's in `.1`)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Iterator


class LogFile:
    def __init__(self, path: Path):
        self.path = path

    def rotate(self) -> None:
        """Keep the previous replica's log as `<name>.1`; a new start writes a fresh file."""
        if self.path.exists():
            os.replace(self.path, self.path.with_suffix(self.path.suffix + ".1"))

    def tail(self, n: int | None) -> str:
        """The last `n` lines (None: all)."""
        if not self.path.exists():
            return ""
        lines = self.path.read_text(errors="replace").splitlines()
        return "\n".join(lines if n is None else lines[len(lines) - n:] if n else [])

    def follow(self, running: Callable[[], bool], poll: float = 0.5) -> Iterator[str]:
        """New lines as they are written, while `running()` (stop with an interrupt)."""
        with open(self.path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            while True:
                line = f.readline()
                if line:
                    yield line.rstrip("\n")
                elif not running():
                    return
                else:
                    time.sleep(poll)
