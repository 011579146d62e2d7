"""One deploy at a time per app (issue 17): a lock on a file in the app's folder on the share, held for the
deploy's whole run, so a second deploy (another notebook, a teammate, CI) waits and then plans from what
the first one left.

* Azure Files: a lease on the lock file (Lease File). File leases are infinite only (duration -1) and a
  write to a leased file needs the lease id, so a lease left by a killed deploy would never end by
  itself: the holder writes who it is and a heartbeat into the file's metadata, renewed every
  ``HEARTBEAT_SECONDS`` while the deploy runs; a lease whose heartbeat is older than ``STALE_SECONDS`` is
  broken and taken over (holder clocks are compared: minutes of margin for seconds of skew).
* Local target: ``fcntl.flock`` on the same file in the share folder (the kernel drops it when its holder
  dies), with the same holder and heartbeat written in the file for the waiting line.
"""
from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Callable

from inference_app.contract import lock_path

from .errors import DeployError

HEARTBEAT_SECONDS = 10.0
STALE_SECONDS = 90.0
WAIT_SECONDS = 1800.0
POLL_SECONDS = 1.0


def holder_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "someone"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


class _LocalBackend:
    """flock on the lock file in the local share folder."""

    def __init__(self, root, path: str):
        self.path = os.path.join(root, path)
        self.fd: int | None = None

    def try_acquire(self, info: dict) -> bool:
        import fcntl

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder before us deletes the file as it lets go: a lock on the file it deleted is no lock
            current = os.stat(self.path).st_ino
        except BlockingIOError:
            os.close(fd)
            return False
        except FileNotFoundError:
            current = None
        if current != os.fstat(fd).st_ino:
            os.close(fd)
            return self.try_acquire(info)
        self.fd = fd
        self.write(info)
        return True

    def write(self, info: dict) -> None:
        data = json.dumps(info).encode()
        os.pwrite(self.fd, data, 0)  # written, then cut to its length: a reader never sees an empty file
        os.ftruncate(self.fd, len(data))

    def holder(self) -> dict | None:
        try:
            with open(self.path, "rb") as f:
                return json.loads(f.read() or b"null")
        except (OSError, ValueError):
            return None

    def take_over(self) -> bool:
        """A flock outlives no process: a holder whose heartbeat stopped is alive (hung), and is waited for."""
        return False

    def release(self) -> None:
        if self.fd is not None:
            os.unlink(self.path)  # nothing left on the share; then closing drops the flock
            os.close(self.fd)
            self.fd = None


class _AzureBackend:
    """A lease on the lock file; holder and heartbeat in its metadata (written with the lease id)."""

    def __init__(self, share, path: str):
        self.share, self.path = share, path
        self.file = share.get_file_client(path)
        self.lease = None

    def _make_parents(self) -> None:
        """The app's folder on the share (a first deploy finds none)."""
        from azure.core.exceptions import ResourceExistsError

        parts = PurePosixPath(self.path).parent.parts
        for i in range(1, len(parts) + 1):
            try:
                self.share.get_directory_client("/".join(parts[:i])).create_directory()
            except ResourceExistsError:
                pass

    def try_acquire(self, info: dict) -> bool:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

        try:
            lease = self.file.acquire_lease()
        except ResourceNotFoundError:
            try:
                try:
                    self.file.create_file(0)
                except ResourceNotFoundError:  # ParentNotFound: a first deploy, no app folder yet
                    self._make_parents()
                    self.file.create_file(0)
            except HttpResponseError as e:  # created and leased by another deploy in between
                if e.status_code != 412:
                    raise
                return False
            return self.try_acquire(info)
        except ResourceExistsError as e:  # 409 LeaseAlreadyPresent
            if getattr(e, "error_code", None) in (None, "LeaseAlreadyPresent"):
                return False
            raise
        self.lease = lease
        self.write(info)
        return True

    def write(self, info: dict) -> None:
        self.file.set_file_metadata({k: str(v) for k, v in info.items()}, lease=self.lease)

    def holder(self) -> dict | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self.file.get_file_properties()
        except ResourceNotFoundError:
            return None
        meta = dict(props.metadata or {})
        if "heartbeat" in meta:
            meta["heartbeat"] = float(meta["heartbeat"])
            meta["since"] = float(meta.get("since", meta["heartbeat"]))
        elif props.lease.state == "leased":  # leased, nothing written yet: it was just taken
            meta = {"holder": "another deploy", "since": props.last_modified.timestamp(),
                    "heartbeat": props.last_modified.timestamp()}
        return meta or None

    def take_over(self) -> bool:
        from azure.core.exceptions import HttpResponseError
        from azure.storage.fileshare import ShareLeaseClient

        try:
            ShareLeaseClient(self.file).break_lease()
        except HttpResponseError as e:  # 409: no lease any more (its holder released it, or another broke it)
            if e.status_code != 409:
                raise
        return True

    def release(self) -> None:
        """Delete the lock file with the lease (nothing left on the share); a waiter then creates and leases it."""
        if self.lease is not None:
            from azure.core.exceptions import HttpResponseError

            try:
                self.file.delete_file(lease=self.lease)
            except HttpResponseError:  # broken and taken over by a deploy that found it stale: not ours any more
                pass
            self.lease = None


class DeployLock:
    """Held with ``with DeployLock.acquire(remote, ...)``; a heartbeat thread renews it until released."""

    def __init__(self, backend, info: dict):
        self.backend, self.info = backend, info
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="deploy-lock-heartbeat", daemon=True)
        self.lost: str | None = None  # why the heartbeat could not be written (the lock was taken over)

    @classmethod
    def acquire(cls, remote, app: str, *, wait: bool = True, timeout: float | None = None,
                say: Callable[[str], None] = print, checkpoint: Callable[[], None] | None = None) -> "DeployLock":
        """Take the deploy lock of ``app`` (a file in its folder on the share, ``contract.lock_path``); with
        ``wait`` wait for the holder (one line says who and since when), else ``DeployError`` at once. A
        holder whose heartbeat stopped ``STALE_SECONDS`` ago is taken over."""
        path = lock_path(app)
        backend = _AzureBackend(remote.share, path) if hasattr(remote, "share") else _LocalBackend(remote.root, path)
        limit = WAIT_SECONDS if timeout is None else timeout
        start = time.monotonic()
        said = None
        while True:
            now = time.time()
            info = {"holder": holder_name(), "since": now, "heartbeat": now}
            if backend.try_acquire(info):
                lock = cls(backend, info)
                lock._thread.start()
                return lock
            held = backend.holder() or {}
            who, since = held.get("holder", "another deploy"), held.get("since")
            beat = held.get("heartbeat")
            if beat is not None and time.time() - float(beat) > STALE_SECONDS and backend.take_over():
                say(f"the deploy lock {remote.where(path)} was held by {who} since {_stamp(float(since or beat))} "
                    f"and its heartbeat stopped {time.time() - float(beat):.0f} s ago: taken over")
                continue
            line = f"another deploy to this app is running: {who}" + (f", since {_stamp(float(since))}" if since else "")
            if not wait:
                raise DeployError(f"{line}; wait for it to finish, or deploy again without --no-wait-lock to wait")
            if line != said:
                say(f"{line}; waiting for it to finish (lock {remote.where(path)})")
                said = line
            if checkpoint is not None:
                checkpoint()  # a cancel while waiting
            if time.monotonic() - start > limit:
                raise DeployError(f"{line}; still running after {limit:.0f} s of waiting; try again later")
            time.sleep(POLL_SECONDS)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self.info["heartbeat"] = time.time()
            try:
                self.backend.write(self.info)
            except Exception as e:  # noqa: BLE001 — the deploy goes on; the next one may take the lock over
                self.lost = f"{type(e).__name__}: {e}"

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)
        self.backend.release()

    def __enter__(self) -> "DeployLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["DeployLock", "HEARTBEAT_SECONDS", "STALE_SECONDS", "holder_name"]
