"""The replica as a process: started in a session of its own (so its whole group can be stopped),
recognised later by its pid and its start time in /proc (a recycled pid is not taken for it), and
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

    @classmethod
    def spawn(cls, command: list[str], *, cwd: str, env: dict[str, str], log: Path, port: int) -> "ReplicaProcess":
        with open(log, "ab") as out:
            child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        _children[child.pid] = child
        return cls(child.pid, _proc_start(child.pid), port,
                   dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_json(cls, data: dict) -> "ReplicaProcess":
        return cls(data["pid"], data.get("proc_start"), data.get("port", 0), data.get("started", ""))

    def to_json(self) -> dict:
        return asdict(self)

    def alive(self) -> bool:
        child = _children.get(self.pid)
        if child is not None:
            return child.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        stat = _proc_stat(self.pid)
        if stat is None:
            return True  # no /proc: trust kill(0)
        return stat[0] != "Z" and (self.proc_start is None or stat[19] == self.proc_start)

    def exit_code(self) -> int | None:
        """The exit code, when this process started the replica and it has ended."""
        child = _children.get(self.pid)
        return child.poll() if child else None

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the replica's whole process group (TERM, then KILL after `timeout`). True if it ran."""
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
        return was_running


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
