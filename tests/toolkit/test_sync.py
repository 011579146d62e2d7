import hashlib
from pathlib import Path

import pytest

from aitk_nb import sync
from aitk_nb.sync import LocalFolderRemote


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def remote_md5s(root: Path) -> dict[str, str]:
    """The files of a folder (the share's: less the mark that says sync owns it)."""
    return {p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*")
            if p.is_file() and p.name != sync.OWNED_MARK}


class CountingRemote(LocalFolderRemote):
    def __init__(self, root):
        super().__init__(root)
        self.uploaded: list[str] = []
        self.fail_after: int | None = None

    def upload(self, path, source, state, progress):
        if self.fail_after is not None and len(self.uploaded) >= self.fail_after:
            raise ConnectionResetError("connection reset mid-upload")
        super().upload(path, source, state, progress)
        self.uploaded.append(path)


def test_first_sync_uploads_everything_then_a_noop_uploads_nothing(tmp_path):
    src = tree(tmp_path / "src", {"a.py": b"a", "pkg/b.bin": b"b" * 10_000, "__pycache__/x.pyc": b"junk"})
    remote = CountingRemote(tmp_path / "share")
    p = sync.sync(src, remote, "inference/app", progress=False)
    assert sorted(remote.uploaded) == ["inference/app/a.py", "inference/app/pkg/b.bin"]
    assert p.upload_bytes == 10_001
    remote.uploaded.clear()
    again = sync.sync(src, remote, "inference/app", progress=False)
    assert remote.uploaded == [] and again.upload_bytes == 0 and again.unchanged == 2


def test_only_the_changed_file_is_uploaded_and_deleted_files_are_removed(tmp_path):
    src = tree(tmp_path / "src", {f"f{i}.txt": str(i).encode() for i in range(20)})
    remote = CountingRemote(tmp_path / "share")
    sync.sync(src, remote, "d", progress=False)
    remote.uploaded.clear()
    (src / "f3.txt").write_bytes(b"changed, same folder")
    (src / "f7.txt").unlink()
    p = sync.sync(src, remote, "d", progress=False)
    assert remote.uploaded == ["d/f3.txt"]
    assert p.deletes == ["f7.txt"] and not (tmp_path / "share/d/f7.txt").exists()
    assert remote_md5s(tmp_path / "share/d") == remote_md5s(src)


def test_same_size_different_content_is_detected(tmp_path):
    src = tree(tmp_path / "src", {"w.bin": b"aaaa"})
    remote = CountingRemote(tmp_path / "share")
    sync.sync(src, remote, "", progress=False)
    (src / "w.bin").write_bytes(b"bbbb")
    sync.sync(src, remote, "", progress=False)
    assert (tmp_path / "share/w.bin").read_bytes() == b"bbbb"


def test_an_interrupted_sync_leaves_whole_files_and_a_rerun_finishes(tmp_path):
    src = tree(tmp_path / "src", {f"f{i}.bin": bytes([i]) * (1000 + i) for i in range(10)})
    remote = CountingRemote(tmp_path / "share")
    remote.fail_after = 4
    with pytest.raises(ConnectionResetError):
        sync.sync(src, remote, "m", workers=1, progress=False)
    share = tmp_path / "share/m"
    # no partial files: what is there is whole
    for rel, md5 in remote_md5s(share).items():
        assert md5 == hashlib.md5((src / rel).read_bytes()).hexdigest()
    assert not list(share.glob(".*.part"))
    remote.fail_after = None
    done = len(remote.uploaded)
    sync.sync(src, remote, "m", progress=False)
    assert len(remote.uploaded) - done == 10 - done
    assert remote_md5s(share) == remote_md5s(src)


def test_deletes_stay_inside_the_destination(tmp_path):
    src = tree(tmp_path / "src", {"a": b"1"})
    share = tree(tmp_path / "share", {"inference/settings.json": b"{}", "inference/app/old.py": b"x",
                                      f"inference/app/{sync.OWNED_MARK}": b""})
    sync.sync(src, LocalFolderRemote(share), "inference/app", progress=False)
    assert (share / "inference/settings.json").exists()
    assert not (share / "inference/app/old.py").exists()


def test_a_folder_holding_files_sync_did_not_put_there_is_never_written_into(tmp_path):
    src = tree(tmp_path / "src", {"adapter_config.json": b"mine", "adapter_model.safetensors": b"my weights"})
    share = tree(tmp_path / "share", {"models/lora/adapter_config.json": b"theirs",
                                      "models/lora/adapter_model.safetensors": b"their weights", "models/lora/notes.md": b"n"})
    remote = CountingRemote(share)
    p = sync.plan(src, remote, "models/lora")
    assert p.foreign == ["adapter_config.json", "adapter_model.safetensors", "notes.md"] and not p.uploads and not p.deletes
    with pytest.raises(ValueError, match="models/lora holds files this toolkit did not put there"):
        sync.run(p, remote, progress=False)
    assert remote.uploaded == [] and (share / "models/lora/notes.md").read_bytes() == b"n"
    assert (share / "models/lora/adapter_model.safetensors").read_bytes() == b"their weights"
    adopted = sync.plan(src, remote, "models/lora", adopt=True)  # a folder the layout reserves for the toolkit
    assert adopted.mark and adopted.deletes == ["notes.md"] and not adopted.foreign


def test_the_first_sync_marks_the_folder_first_and_a_marked_folder_is_synced(tmp_path):
    src = tree(tmp_path / "src", {"a.bin": b"a" * 100})
    remote = CountingRemote(tmp_path / "share")
    remote.fail_after = 0  # the first upload fails: the mark is already there
    with pytest.raises(ConnectionResetError):
        sync.sync(src, remote, "models/x", progress=False)
    assert (tmp_path / "share/models/x" / sync.OWNED_MARK).is_file()
    remote.fail_after = None
    again = sync.sync(src, remote, "models/x", progress=False)
    assert not again.mark and remote.uploaded == ["models/x/a.bin"] and again.changes
    assert not sync.plan(src, remote, "models/x").changes
