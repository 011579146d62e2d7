"""Checks shared by the azure target tests."""
import hashlib
import json
from pathlib import Path

SUBSCRIPTION_OPTIONS = "--target azure --resource-group rg-aitk --location eastus"


def config_of(project: Path) -> dict:
    return json.loads((project / "infra" / "inference.config.json").read_text())


def share_matches(double, config: dict, dest: str, local: Path) -> None:
    """Every file of `local` is on the share under `dest` with the same bytes (MD5 of what is stored,
    not of the Content-MD5 property) and a Content-MD5 that tells the truth."""
    account, share = config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"]
    stored = double.state.files(account, share)
    for f in local.rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts:
            path = f"{dest}/{f.relative_to(local).as_posix()}"
            want = hashlib.md5(f.read_bytes()).hexdigest()
            assert path in stored, f"{path} missing on the share"
            assert hashlib.md5(stored[path]).hexdigest() == want, f"{path}: stored bytes differ"
            assert bytes(double.state.file_properties(account, share, path)["content_md5"]).hex() == want, path


def assert_no_secret(double, *texts: str, folders: tuple[Path, ...] = ()) -> None:
    """None of the double's secrets (account keys, API key, tokens) in these texts or files."""
    secrets = [s for s in double.state.secret_strings() if s and len(s) >= 8]
    assert secrets, "the double handed out no secret: the check would prove nothing"
    for text in texts:
        for s in secrets:
            assert s not in text, "a secret appears in the output"
    for folder in folders:
        for f in folder.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                for s in secrets:
                    assert s.encode() not in data, f"a secret appears in {f}"
