"""The double's Azure Files data plane, driven by the real azure-storage-file-share clients."""
from __future__ import annotations

import hashlib
import os
import time

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.fileshare import ContentSettings, ExponentialRetry

from azure_double.clients import clients, share_client
from azure_double.scenario import provision

RG = "rg-files"


@pytest.fixture
def share(azure_double):
    out = provision(azure_double, RG, "app1")
    fast = ExponentialRetry(initial_backoff=0.05, increment_base=1.2, retry_total=3, random_jitter_range=0)
    return share_client(azure_double, out["STORAGE_ACCOUNT_NAME"], out["FILE_SHARE_NAME"], retry_policy=fast), out


def _md5(b: bytes) -> bytearray:
    return bytearray(hashlib.md5(b).digest())


def test_account_key_from_list_keys_works_and_bad_key_is_refused(azure_double, share):
    client, out = share
    account = out["STORAGE_ACCOUNT_NAME"]
    _, _, _, st, _ = clients(azure_double)
    key2 = st.storage_accounts.list_keys(RG, account).keys_property[1].value
    share_client(azure_double, account, out["FILE_SHARE_NAME"], key2).get_share_properties()
    bad = share_client(azure_double, account, out["FILE_SHARE_NAME"], "AAAA" + key2[4:])
    with pytest.raises(ClientAuthenticationError) as e:
        bad.get_directory_client("x").create_directory()
    assert e.value.status_code == 403 and e.value.error_code == "AuthenticationFailed"
    assert not (azure_double.state.share_path(account, out["FILE_SHARE_NAME"]) / "x").exists()


def test_share_and_directories(azure_double, share):
    client, out = share
    assert client.get_share_properties().quota > 0
    with pytest.raises(ResourceExistsError):
        client.create_share()
    other = share_client(azure_double, out["STORAGE_ACCOUNT_NAME"], "second")
    other.create_share()
    assert other.get_share_properties().name == "second"
    d = client.get_directory_client("inference")
    d.create_directory()
    with pytest.raises(ResourceExistsError):
        d.create_directory()
    assert d.exists() and not client.get_directory_client("nope").exists()
    assert d.get_directory_properties().is_directory
    with pytest.raises(ResourceNotFoundError):
        client.get_directory_client("a/b").create_directory()   # parent missing
    sub = d.get_subdirectory_client("sub")
    sub.create_directory()
    for i in range(12):
        d.get_file_client(f"f{i:02d}.txt").upload_file(b"x" * i)
    pages = d.list_directories_and_files(results_per_page=5).by_page()
    names = [item["name"] for page in pages for item in page]
    assert sorted(names) == [f"f{i:02d}.txt" for i in range(12)] + ["sub"]
    assert sum(1 for r in azure_double.requests if "comp=list" in r.path) == 3   # continuation markers
    sizes = {i["name"]: i["size"] for i in d.list_directories_and_files() if not i["is_directory"]}
    assert sizes["f07.txt"] == 7
    with pytest.raises(ResourceExistsError):   # DirectoryNotEmpty
        d.delete_directory()
    sub.delete_directory()
    assert not sub.exists()


def test_chunked_upload_md5_ranges_and_download(azure_double, share):
    client, out = share
    client.get_directory_client("models").create_directory()
    data = os.urandom(9 * 1024 * 1024 + 123)   # three 4 MiB ranges
    f = client.get_file_client("models/weights.bin")
    f.upload_file(data, max_concurrency=3, content_settings=ContentSettings(content_md5=_md5(data)))
    ranges = [r for r in azure_double.requests if r.method == "PUT" and "comp=range" in r.path]
    assert len(ranges) == 3 and azure_double.uploaded_bytes() == len(data)
    props = f.get_file_properties()
    assert props.size == len(data) and bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()
    assert f.download_file().readall() == data
    assert f.download_file(offset=5, length=100).readall() == data[5:105]
    assert f.download_file(max_concurrency=2).readall() == data
    account, name = out["STORAGE_ACCOUNT_NAME"], out["FILE_SHARE_NAME"]
    assert azure_double.state.file_md5(account, name, "models/weights.bin") == hashlib.md5(data).hexdigest()
    assert azure_double.state.files(account, name)["models/weights.bin"] == data
    assert (azure_double.state.share_path(account, name) / "models" / "weights.bin").read_bytes() == data
    # set HTTP headers replaces the content settings (and the stored MD5)
    f.set_http_headers(ContentSettings(content_type="text/plain", content_md5=_md5(b"other")))
    p = f.get_file_properties()
    assert p.content_settings.content_type == "text/plain" and bytes(p.content_settings.content_md5) == hashlib.md5(b"other").digest()
    # an empty file
    e = client.get_file_client("models/empty")
    e.upload_file(b"")
    assert e.download_file().readall() == b""
    e.delete_file()
    with pytest.raises(ResourceNotFoundError):
        e.get_file_properties()


def test_connection_reset_mid_range_upload_is_retried(azure_double, share):
    client, out = share
    data = os.urandom(6 * 1024 * 1024)
    azure_double.faults.reset_connection("PUT", r"comp=range", count=2, after_bytes=1024 * 1024)
    client.get_file_client("big.bin").upload_file(data, content_settings=ContentSettings(content_md5=_md5(data)))
    assert [r.status for r in azure_double.requests if "comp=range" in r.path].count(0) == 2
    assert azure_double.state.file_md5(out["STORAGE_ACCOUNT_NAME"], out["FILE_SHARE_NAME"], "big.bin") == hashlib.md5(data).hexdigest()


def test_server_busy_is_retried_but_429_is_not(azure_double, share):
    client, _ = share
    azure_double.faults.error("PUT", r"comp=range", status=503)
    client.get_file_client("a.bin").upload_file(b"abc")
    assert [r.status for r in azure_double.requests if "comp=range" in r.path] == [503, 201]
    azure_double.faults.throttle("PUT", r"comp=range", retry_after=0)
    with pytest.raises(HttpResponseError) as e:
        client.get_file_client("b.bin").upload_file(b"abc")
    assert e.value.status_code == 429


def test_interrupted_upload_leaves_the_final_md5_on_wrong_bytes(azure_double, share):
    """As on Azure: Create File stores x-ms-content-md5 before any range is written. A sync that
    trusts the Content-MD5 property must not set it before the bytes are all there."""
    client, out = share
    data = os.urandom(300 * 1024)
    azure_double.faults.reset_connection("PUT", r"comp=range", count=10, after_bytes=10)
    with pytest.raises(Exception):
        client.get_file_client("half.bin").upload_file(data, content_settings=ContentSettings(content_md5=_md5(data)))
    props = client.get_file_client("half.bin").get_file_properties()
    assert bytes(props.content_settings.content_md5) == hashlib.md5(data).digest()
    assert azure_double.state.file_md5(out["STORAGE_ACCOUNT_NAME"], out["FILE_SHARE_NAME"], "half.bin") != hashlib.md5(data).hexdigest()


def test_latency_is_added_per_request(azure_double, share):
    client, _ = share
    azure_double.latency(0.2)
    t = time.monotonic()
    client.get_share_properties()
    assert time.monotonic() - t >= 0.2
