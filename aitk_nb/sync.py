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
from typing import Callable, Iterator, Protocol

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

    def exists(self, path: str) -> bool:
        """Whether a file is at `path`."""

    def list_names(self, folder: str, depth: int) -> list[str]:
        """The files under `folder` down to `depth` folders deep, by path relative to it (no properties
        read: cheap on a share that holds models)."""

    def where(self, path: str) -> str:
        """`path` as the user finds it (a local path; the account and share on Azure Files)."""


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


def scan(folder: Path, exclude: tuple[str, ...] = EXCLUDE,
         skipped: list[tuple[str, str]] | None = None) -> dict[str, tuple[Path, FileState]]:
    """Every file of `folder` by posix path relative to it, with its size and MD5. Links are followed
    only when they resolve inside `folder`, files and folders alike (so a link cannot send a file from
    elsewhere, and a folder given as links is still whole); the others are left out and listed in
    `skipped` as (path, why)."""
    out = {}
    for rel, path in _walk(Path(folder), exclude, skipped if skipped is not None else []):
        out[rel] = (path, FileState(path.stat().st_size, file_md5(path)))
    return out


def _walk(folder: Path, exclude: tuple[str, ...], skipped: list[tuple[str, str]]) -> Iterator[tuple[str, Path]]:
    root = folder.resolve()

    def visit(real: Path, rel: PurePosixPath, chain: frozenset[Path]) -> Iterator[tuple[str, Path]]:
        for entry in sorted(os.scandir(real), key=lambda e: e.name):
            child = rel / entry.name
            if _excluded(child, exclude):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    path = path.resolve(strict=True)
                except (OSError, RuntimeError):  # missing target, or a loop of links
                    skipped.append((child.as_posix(), "target missing"))
                    continue
                if not path.is_relative_to(root):
                    skipped.append((child.as_posix(), "outside"))
                    continue
                if path in chain:
                    skipped.append((child.as_posix(), "a folder that holds itself"))
                    continue
            if path.is_dir():
                yield from visit(path, child, chain | {path})
            elif path.is_file():
                yield child.as_posix(), path

    yield from visit(root, PurePosixPath(), frozenset({root}))


# The mark sync leaves in each folder it writes: the proof that the folder's files are the toolkit's
# to replace and prune. A folder that holds files and no mark (a fine-tuning's output, a teammate's
# upload) is never written into: `plan` reports its files in `foreign` and `run` refuses it.
OWNED_MARK = ".aitk-deployed"
_MARK_TEXT = (b"aitk-nb deploys into this folder: it replaces and deletes the files here to match the folder it "
              b"deploys. Delete this file to keep aitk-nb out of it.\n")


@dataclass
class SyncPlan:
    dest: str
    uploads: list[tuple[str, Path, FileState]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    unchanged: int = 0
    mark: bool = False  # the folder is not marked as the toolkit's yet: the mark is written first
    foreign: list[str] = field(default_factory=list)  # files of an unmarked folder: not ours to touch
    skipped: list[tuple[str, str]] = field(default_factory=list)  # links not followed, and why

    @property
    def upload_bytes(self) -> int:
        return sum(s.size for _, _, s in self.uploads)

    @property
    def changes(self) -> bool:
        return bool(self.uploads or self.deletes or self.mark)

    def summary(self) -> str:
        return (f"{self.dest}: {len(self.uploads)} changed ({human(self.upload_bytes)}), "
                f"{self.unchanged} unchanged, {len(self.deletes)} deleted")

    def lines(self) -> list[str]:
        """The summary, and what was left out and why."""
        if not self.skipped:
            return [self.summary()]
        links = ", ".join(f"{rel} ({why})" for rel, why in sorted(self.skipped))
        return [self.summary(), f"{self.dest}: {len(self.skipped)} link{'s' * (len(self.skipped) != 1)} skipped "
                                f"(followed only inside the folder): {links}"]


def plan(source: Path, remote: Remote, dest: str, *, delete_extra: bool = True,
         exclude: tuple[str, ...] = EXCLUDE, adopt: bool = False) -> SyncPlan:
    """What to send and delete so that `dest` matches `source`. `adopt`: an unmarked folder with files
    is the toolkit's all the same (one the share layout reserves for it)."""
    p = SyncPlan(dest)
    local = scan(source, exclude, p.skipped)
    remote_files = remote.list_files(dest)
    p.mark = remote_files.pop(OWNED_MARK, None) is None
    if p.mark and remote_files and not adopt:
        p.foreign = sorted(remote_files)
        return p
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

    if p.foreign:
        raise ValueError(f"{p.dest} holds files this toolkit did not put there; refusing to sync into it")
    if p.mark:  # first: an interrupted first sync leaves a folder that is recognised as ours
        remote.write_bytes(_join(p.dest, OWNED_MARK), _MARK_TEXT)

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

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def list_names(self, folder: str, depth: int) -> list[str]:
        base = self.root / folder
        names = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(base)
            if len(rel.parts) >= depth:
                dirnames.clear()
            names += [(rel / name).as_posix() for name in filenames]
        return sorted(names)

    def where(self, path: str) -> str:
        return str(self.root / path)

    def delete(self, path: str) -> None:
        target = self.root / path
        target.unlink(missing_ok=True)
        # drop folders the deletion left empty, up to the share root
        parent = target.parent
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
