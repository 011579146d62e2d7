"""Cached builds: an asset folder holds a stamp file with the key of its inputs; it is rebuilt when
missing or when the key changed, in a temporary sibling folder renamed into place when complete,
under an `fcntl` lock, so an interrupted build leaves nothing behind and two callers build once."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from . import log

STAMP = "aitk_asset.json"


def cache_root() -> Path:
    return Path(os.environ.get("AITK_CACHE") or Path.home() / ".cache" / "aitk-nb").expanduser().resolve()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_json(obj: Any) -> str:
    return sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build of {target} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_current(target: Path, key: str) -> bool:
    stamp = read_stamp(target)
    return bool(stamp) and stamp.get("key") == key


def cached_build(
    target: Path, inputs: dict[str, Any], builder: Callable[[Path], None], force: bool = False
) -> Path:
    """Build ``target`` with ``builder(tmp_dir)`` unless its stamp matches ``inputs``.

    The build happens in a temporary sibling folder that is renamed into place when complete.
    """
    target = Path(target).resolve()
    key = _sha256_json(inputs)
    if not force and _is_current(target, key):
        return target
    with _locked(target):
        if not force and _is_current(target, key):  # built by a concurrent caller meanwhile
            return target
        # leftovers of builds that were killed (no exception handler ran)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            t0 = time.monotonic()
            builder(tmp)
            stamp = {"key": key, "inputs": inputs, "built_at": time.time(),
                     "build_seconds": round(time.monotonic() - t0, 2)}
            (tmp / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.tmp-old-{os.getpid()}"
                os.rename(target, old)
            os.rename(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target
