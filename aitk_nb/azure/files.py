"""The Azure Files share as a sync `Remote`: MD5s from each file's Content-MD5 property, parallel
chunked uploads by the SDK (`max_concurrency`), retries from the SDK's retry policy."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Callable

from ..sync import FileState
from .session import AzureError, AzureSession, azure_call, missing_ok

CHUNK_CONCURRENCY = 4   # ranges in flight per large file
LIST_CONCURRENCY = 8    # property reads in flight while listing
POOL_SIZE = 32          # kept-alive connections: sync's 4 files x CHUNK_CONCURRENCY ranges, or the listing's


def share_client(session: AzureSession, resource_group: str, account: str, share: str):
    """A ShareClient authorised with the account key, which stays in memory only."""
    from azure.storage.fileshare import ExponentialRetry, ShareClient

    with azure_call(f"reading storage account {account}"):
        props = session.storage.storage_accounts.get_properties(resource_group, account)
        keys = session.storage.storage_accounts.list_keys(resource_group, account).keys_property
    endpoint = (props.primary_endpoints.file if props.primary_endpoints else None) or f"https://{account}.file.core.windows.net/"
    # Azure Storage throttles with 503 ServerBusy, which this policy retries; its default starts at
    # 15 s, too slow for interactive use (DESIGN.md facts)
    # waits 0.5, 2.5, 4.5, 8.5 s (± jitter): a dead connection is reported within ~20 s
    retry = ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=4, random_jitter_range=0.5)
    return ShareClient(endpoint.rstrip("/"), share, credential={"account_name": account, "account_key": keys[0].value},
                       retry_policy=retry, transport=_pooled_transport(session.transport_kwargs))


def _pooled_transport(kwargs: dict):
    """azure-core's requests transport with a connection pool as large as the uploads in flight
    (requests keeps 10 per host: beyond that, each range would open a new TLS connection)."""
    import requests
    from azure.core.pipeline.transport import RequestsTransport
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    http = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for scheme in ("https://", "http://"):
        http.mount(scheme, adapter)
    return RequestsTransport(session=http, session_owner=True, **kwargs)


class AzureFilesRemote:
    """`chunk_concurrency`: ranges of one large file in flight at once (1 = one sequential stream)."""

    def __init__(self, share, *, chunk_concurrency: int = CHUNK_CONCURRENCY):
        self.share = share
        self.chunk_concurrency = chunk_concurrency
        self._dirs: set[str] = set()
        self._lock = threading.Lock()

    # -- listing -----------------------------------------------------------------------------------
    def list_files(self, folder: str) -> dict[str, FileState]:
        paths: list[str] = []
        with missing_ok(f"listing {folder}"):
            self._walk(folder, "", paths)

        def state(rel: str) -> tuple[str, FileState]:
            with azure_call(f"reading {folder}/{rel}"):
                p = self.share.get_file_client(_join(folder, rel)).get_file_properties()
            md5 = p.content_settings.content_md5
            return rel, FileState(p.size, bytes(md5) if md5 else b"")

        with ThreadPoolExecutor(LIST_CONCURRENCY) as pool:
            return dict(pool.map(state, paths))

    def _walk(self, folder: str, rel: str, out: list[str], depth: int | None = None) -> None:
        directory = self.share.get_directory_client(_join(folder, rel) if rel else folder)
        for item in directory.list_directories_and_files():
            child = f"{rel}/{item['name']}" if rel else item["name"]
            if not item.get("is_directory"):
                out.append(child)
            elif depth is None or depth > 0:
                self._walk(folder, child, out, None if depth is None else depth - 1)

    def list_names(self, folder: str, depth: int) -> list[str]:
        names: list[str] = []
        with missing_ok(f"listing {folder}"):
            self._walk(folder, "", names, depth)
        return sorted(names)

    def exists(self, path: str) -> bool:
        with missing_ok(f"reading {path}"):
            self.share.get_file_client(path).get_file_properties()
            return True
        return False

    def where(self, path: str) -> str:
        return f"{path} on the file share {self.share.share_name} (storage account {self.share.account_name})"

    # -- writing -----------------------------------------------------------------------------------
    def upload(self, path: str, source: Path, state: FileState, progress: Callable[[int], None]) -> None:
        from azure.storage.fileshare import ContentSettings

        self._ensure_dirs(str(PurePosixPath(path).parent))
        sent = [0]

        def hook(current: int, total: int | None) -> None:
            progress(current - sent[0])
            sent[0] = current

        client = self.share.get_file_client(path)
        with open(source, "rb") as f, azure_call(f"uploading {path}"):
            # Content-MD5 is what the next deploy compares, so it is set only once every range is in:
            # set at create (as upload_file's content_settings does), an interrupted upload would leave
            # a file of the right size claiming the final MD5 over missing ranges, and never be re-sent
            client.upload_file(f, length=state.size, max_concurrency=self.chunk_concurrency, progress_hook=hook)
            client.set_http_headers(ContentSettings(content_md5=bytearray(state.md5)))

    def read_bytes(self, path: str) -> bytes | None:
        with missing_ok(f"reading {path}"):
            return self.share.get_file_client(path).download_file().readall()
        return None

    def write_bytes(self, path: str, data: bytes) -> None:
        import hashlib

        from azure.storage.fileshare import ContentSettings

        self._ensure_dirs(str(PurePosixPath(path).parent))
        client = self.share.get_file_client(path)
        with azure_call(f"writing {path}"):
            client.upload_file(data)
            client.set_http_headers(ContentSettings(content_md5=bytearray(hashlib.md5(data).digest())))

    def delete(self, path: str) -> None:
        with missing_ok(f"deleting {path}"):
            self.share.get_file_client(path).delete_file()

    def delete_tree(self, folder: str) -> None:
        """Delete a folder and everything in it: its files, then its folders from the deepest."""
        files: list[str] = []
        with missing_ok(f"listing {folder}"):
            self._walk(folder, "", files)
        for rel in files:
            self.delete(_join(folder, rel))
        dirs: list[str] = []
        with missing_ok(f"listing {folder}"):
            self._walk_dirs(folder, dirs)
        for d in sorted(dirs, key=lambda d: d.count("/"), reverse=True) + [folder]:
            with missing_ok(f"deleting folder {d}"):
                self.share.get_directory_client(d).delete_directory()
            with self._lock:
                self._dirs.discard(d)

    def _walk_dirs(self, folder: str, out: list[str]) -> None:
        for item in self.share.get_directory_client(folder).list_directories_and_files():
            if item.get("is_directory"):
                out.append(_join(folder, item["name"]))
                self._walk_dirs(out[-1], out)

    def _ensure_dirs(self, folder: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        parts = [p for p in PurePosixPath(folder).parts if p not in ("", ".")]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            with self._lock:
                if d in self._dirs:
                    continue
            try:
                with azure_call(f"creating folder {d}"):
                    self.share.get_directory_client(d).create_directory()
            except AzureError as e:
                if not isinstance(e.__cause__, ResourceExistsError):
                    raise
            with self._lock:
                self._dirs.add(d)


def _join(folder: str, rel: str) -> str:
    return str(PurePosixPath(folder) / rel) if folder else rel
