"""Content-hash sync of a local folder to a remote file tree (the local share folder, Azure Files).

Only files whose MD5 differs are uploaded; remote files that no longer exist locally are deleted
within the destination folder; each upload replaces its file whole, so an interrupted sync leaves
every file either old or new, and re-running it finishes the job.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Protocol

EXCLUDE = ("__pycache__", "*.pyc", ".ipynb_checkpoints", ".DS_Store", ".git")
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileState:
    size: int
    md5: bytes


class Remote(Protocol):
    """A file tree addressed by posix paths relative to its root."""

    def list_files(self, folder: str) -> dict[str, FileState]:
        """Every file under `folder`, keyed by path relative to `folder`; {} if it does not exist."""

    def upload(self, path: str, source: Path, state: FileState, progress: Callable[[int], None]) -> None:
        """Write `source` to `path` whole (parents created), calling progress(n_bytes) as it goes."""

    def delete(self, path: str) -> None:
        ...

    def read_bytes(self, path: str) -> bytes | None:
        """A small file's content, or None if it does not exist."""

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace a small file whole."""


_md5_cache: dict[tuple, bytes] = {}
_md5_lock = threading.Lock()


def file_md5(path: Path) -> bytes:
    """MD5 of a file, remembered per (path, size, mtime, inode) so a redeploy does not re-read models."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    with _md5_lock:
        if key in _md5_cache:
            return _md5_cache[key]
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    with _md5_lock:
        _md5_cache[key] = h.digest()
    return h.digest()


def _excluded(rel: PurePosixPath, exclude: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in rel.parts for pat in exclude)


def scan(folder: Path, exclude: tuple[str, ...] = EXCLUDE) -> dict[str, tuple[Path, FileState]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = PurePosixPath(path.relative_to(folder).as_posix())
            if _excluded(rel, exclude) or not path.is_file():
                continue
            out[str(rel)] = (path, FileState(path.stat().st_size, file_md5(path)))
    return out


@dataclass
class SyncPlan:
    dest: str
    uploads: list[tuple[str, Path, FileState]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def upload_bytes(self) -> int:
        return sum(s.size for _, _, s in self.uploads)

    def summary(self) -> str:
        return (f"{self.dest}: {len(self.uploads)} changed ({human(self.upload_bytes)}), "
                f"{self.unchanged} unchanged, {len(self.deletes)} deleted")


def plan(source: Path, remote: Remote, dest: str, *, delete_extra: bool = True,
         exclude: tuple[str, ...] = EXCLUDE) -> SyncPlan:
    local = scan(source, exclude)
    remote_files = remote.list_files(dest)
    p = SyncPlan(dest)
    for rel, (path, state) in local.items():
        if remote_files.get(rel) == state:
            p.unchanged += 1
        else:
            p.uploads.append((rel, path, state))
    if delete_extra:
        p.deletes = sorted(set(remote_files) - set(local))
    return p


def run(p: SyncPlan, remote: Remote, *, workers: int = 4, progress: bool = True,
        checkpoint: Callable[[], None] | None = None, on_bytes: Callable[[int], None] | None = None) -> SyncPlan:
    """Carry out a plan: uploads in parallel with one byte-progress bar, then deletions.

    `checkpoint()` is called before each file (it raises to stop the sync there: the uploads in flight
    finish, so no file is left half-written by a stop); `on_bytes(n)` as bytes are sent."""
    from tqdm.auto import tqdm

    with tqdm(total=p.upload_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=f"upload {p.dest}",
              disable=not progress or not p.uploads, leave=True) as bar:
        lock = threading.Lock()

        def advance(n: int) -> None:
            with lock:
                bar.update(n)
                if on_bytes is not None:
                    on_bytes(n)

        def one(item: tuple[str, Path, FileState]) -> None:
            if checkpoint is not None:
                checkpoint()
            rel, path, state = item
            remote.upload(_join(p.dest, rel), path, state, advance)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            # list() re-raises the first failure (after the uploads in flight end); files written stay whole
            list(pool.map(one, sorted(p.uploads, key=lambda u: -u[2].size)))
    for rel in p.deletes:
        if checkpoint is not None:
            checkpoint()
        remote.delete(_join(p.dest, rel))
    return p


def sync(source: Path, remote: Remote, dest: str, *, delete_extra: bool = True, workers: int = 4,
         progress: bool = True) -> SyncPlan:
    return run(plan(source, remote, dest, delete_extra=delete_extra), remote, workers=workers, progress=progress)


def _join(dest: str, rel: str) -> str:
    return str(PurePosixPath(dest) / rel) if dest else rel


def human(n: float) -> str:
    """A byte count for people: "512 B", "3.2 MiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


class LocalFolderRemote:
    """A folder playing the file share (the local target's mount root)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def list_files(self, folder: str) -> dict[str, FileState]:
        base = self.root / folder
        if not base.is_dir():
            return {}
        return {rel: state for rel, (_, state) in scan(base, exclude=()).items()}

    def upload(self, path: str, source: Path, state: FileState, progress: Callable[[int], None]) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    progress(len(chunk))
            shutil.copymode(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def read_bytes(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    def delete(self, path: str) -> None:
        target = self.root / path
        target.unlink(missing_ok=True)
        # drop folders the deletion left empty, up to the share root
        parent = target.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
