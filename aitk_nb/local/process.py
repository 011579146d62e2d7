"""The replica as a process: started in a session of its own (so its whole group can be stopped),
recognised later by its pid, its start time in /proc and its leading its own session (a recycled pid,
or a record that names another process, is not taken for it: such a process is never signalled), and
reaped when this process started it (which turns a crash into an exit code)."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Replicas this process started, by pid: reaping them is what turns a crashed child into an exit code.
_children: dict[int, subprocess.Popen] = {}


@dataclass
class ReplicaProcess:
    """A replica the toolkit started: its pid, its start time as /proc gives it, port and start date."""

    pid: int
    proc_start: str | None
    port: int
    started: str
    app: dict | None = None  # the app record it was started with: a provision since may have changed it

    @classmethod
    def spawn(cls, command: list[str], *, cwd: str, env: dict[str, str], log: Path, port: int,
              app: dict | None = None) -> "ReplicaProcess":
        with open(log, "ab") as out:
            child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _children[child.pid] = child
        return cls(child.pid, _proc_start(child.pid), port,
                   dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), app)

    @classmethod
    def from_json(cls, data: object) -> "ReplicaProcess":
        """The record as saved; ValueError when it is not one (truncated, hand-edited)."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        pid, start, port, started = data.get("pid"), data.get("proc_start"), data.get("port", 0), data.get("started", "")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"pid {pid!r}")
        app = data.get("app")
        if (not (start is None or isinstance(start, str)) or not isinstance(port, int) or not isinstance(started, str)
                or not (app is None or isinstance(app, dict))):
            raise ValueError("a key of the wrong type")
        return cls(pid, start, port, started, app)

    def to_json(self) -> dict:
        return asdict(self)

    def is_ours(self) -> bool:
        """Whether the pid is still the replica the toolkit started: this process's child, or a process
        that leads its own session and started when the record says. A record without a start time
        (an older version's, or forged) proves nothing."""
        if self.pid in _children:
            return True
        stat = _proc_stat(self.pid)
        return (self.proc_start is not None and stat is not None and stat[19] == self.proc_start
                and stat[3] == str(self.pid))

    def alive(self) -> bool:
        child = _children.get(self.pid)
        if child is not None:
            return child.poll() is None
        stat = _proc_stat(self.pid)
        return self.is_ours() and stat is not None and stat[0] != "Z"

    def exit_code(self) -> int | None:
        """The exit code, when this process started the replica and it has ended."""
        child = _children.get(self.pid)
        return child.poll() if child else None

    def stop(self, timeout: float = 15.0) -> str:
        """Stop the replica's whole process group (TERM, then KILL after `timeout`), only if the record
        proves the pid is the replica. Returns STOPPED, NOT_RUNNING or NOT_OURS."""
        if not self.is_ours():
            return NOT_OURS if _proc_stat(self.pid) is not None else NOT_RUNNING
        was_running = self.alive()
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        child = _children.pop(self.pid, None)
        if child is not None:
            child.wait(timeout=timeout)
        return STOPPED if was_running else NOT_RUNNING


STOPPED, NOT_RUNNING, NOT_OURS = "stopped", "not running", "not ours"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as uvicorn does: connections of a stopped replica in TIME_WAIT do not make the port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_start(pid: int) -> str | None:
    """The process's start time (Linux), so a recycled pid is not taken for our replica."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None
