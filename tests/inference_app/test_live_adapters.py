"""Adapters changed on a running server (issue 17): settings.json on the share is rewritten, and the
server adds, changes and removes adapters without a restart, with no failed request from a client
that keeps asking the variants that did not change; a broken adapter is refused while the old set
keeps serving, and /health says which settings are served and why a change was refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers import Traffic, as_if_trained_on_another_model, stop
from server_helpers import REPO, free_port, server_env, write_settings

from inference_app.contract import settings_digest

pytestmark = pytest.mark.timeout(300)
BASE = "model-cache/SmolLM2-135M-Instruct"


@pytest.fixture
def live_root(tmp_path, mount_root, adapter_name, second_adapter) -> Path:
    """A share of its own (the session server's must not change): the base model and two adapters."""
    root = tmp_path / "mount"
    (root / "model-cache").mkdir(parents=True)
    (root / BASE).symlink_to((mount_root / BASE).resolve(), target_is_directory=True)
    shutil.copytree(mount_root / "models" / adapter_name, root / "models" / adapter_name)
    shutil.copytree(second_adapter[1], root / "models" / "second")
    write_settings(root, {"base_model": BASE, "adapters": {adapter_name: f"models/{adapter_name}"}, "max_new_tokens": 12})
    return root


@pytest.fixture
def live_server(live_root, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "inference_app"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                env=server_env(live_root, port, AITK_SETTINGS_POLL_SECONDS="0.2"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, proc, log
    finally:
        stop(proc)


def ask(url: str, model: str, client: httpx.Client | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8, "temperature": 0}
    return (client or httpx).post(url + "/v1/chat/completions", json=body, timeout=60)


def text(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def deploy_settings(root: Path, content: dict) -> str:
    """Rewrite settings.json as deploy does; the hash /health will report once it is served."""
    path = write_settings(root, content)
    return settings_digest(path.read_bytes())


def served(url: str, digest: str, timeout: float = 30) -> dict:
    """/health once it reports ``digest`` (served) or refused it (apply_error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(url + "/health", timeout=5).json()
        if body.get("settings_hash") == digest or (body.get("apply_error") or {}).get("settings_hash") == digest:
            return body
        time.sleep(0.1)
    raise AssertionError(f"settings {digest} neither served nor refused in {timeout} s: {body}")


def test_add_change_remove_an_adapter_on_a_running_server(live_server, live_root, adapter_name):
    url, proc, log = live_server
    before = {m: text(ask(url, m)) for m in ("base", adapter_name)}
    settings = {"base_model": BASE, "adapters": {adapter_name: f"models/{adapter_name}"}, "max_new_tokens": 12}
    with Traffic(lambda c, m: ask(url, m, c), ["base", adapter_name]) as traffic:
        # add
        settings["adapters"]["second"] = "models/second"
        health = served(url, deploy_settings(live_root, settings))
        assert "apply_error" not in health and health["variants"] == ["base", adapter_name, "second"]
        second = text(ask(url, "second"))
        assert second != before["base"]  # the new weights answer
        # change adapter_name's weights in place (the second adapter's files), as a redeploy of that folder does
        shutil.rmtree(live_root / "models" / adapter_name)
        shutil.copytree(live_root / "models" / "second", live_root / "models" / adapter_name)
        settings["adapter_versions"] = {adapter_name: "v2"}
        health = served(url, deploy_settings(live_root, settings))
        assert "apply_error" not in health, health
        assert text(ask(url, adapter_name)) == second  # its new weights: the same as the second adapter's
        # remove
        del settings["adapters"]["second"]
        health = served(url, deploy_settings(live_root, settings))
        assert health["variants"] == ["base", adapter_name]
        assert ask(url, "second").status_code == 404
        time.sleep(0.5)
    assert proc.poll() is None and "loading base model" in log.read_text()
    assert log.read_text().count("loading base model") == 1, "the base model was loaded again"
    assert traffic.done > 4 and traffic.failures == [], traffic.failures[:5]
    assert text(ask(url, "base")) == before["base"]


@pytest.mark.parametrize("breakage, says", [
    ("bad config", "adapter_config.json cannot be read"),
    ("other base", "trained on base model 'org/another-model'"),
    ("no weights", "weights cannot be read"),
])
def test_a_broken_adapter_is_refused_and_the_old_set_keeps_serving(live_server, live_root, adapter_name, breakage, says):
    url, proc, _ = live_server
    old = httpx.get(url + "/health").json()
    broken = live_root / "models" / "broken"
    shutil.copytree(live_root / "models" / "second", broken)
    if breakage == "bad config":
        (broken / "adapter_config.json").write_text("{not json")
    elif breakage == "other base":
        as_if_trained_on_another_model(broken)
    else:
        (broken / "adapter_model.safetensors").unlink()
    digest = deploy_settings(live_root, {"base_model": BASE, "adapters": {adapter_name: f"models/{adapter_name}",
                                                                         "broken": "models/broken"}, "max_new_tokens": 12})
    health = served(url, digest)
    assert health["settings_hash"] == old["settings_hash"] and health["variants"] == old["variants"]
    assert health["apply_error"]["settings_hash"] == digest
    assert "adapter 'broken'" in health["apply_error"]["error"] and says in health["apply_error"]["error"]
    assert text(ask(url, "base")) and text(ask(url, adapter_name))
    assert ask(url, "broken").status_code == 404
    assert proc.poll() is None


def test_an_adapter_whose_recorded_base_has_another_name_but_fits_is_served(live_server, live_root, adapter_name):
    """The README's `--model models/base` serves the model under a folder named `base`, while the adapter
    records the name it was trained from: names are a hint, the weights decide (they fit: served)."""
    url, proc, _ = live_server
    renamed = live_root / "models" / "renamed"
    shutil.copytree(live_root / "models" / "second", renamed)
    config = json.loads((renamed / "adapter_config.json").read_text())
    (renamed / "adapter_config.json").write_text(json.dumps(config | {"base_model_name_or_path": "/elsewhere/my-copy"}))
    digest = deploy_settings(live_root, {"base_model": BASE, "adapters": {adapter_name: f"models/{adapter_name}",
                                                                         "renamed": "models/renamed"}, "max_new_tokens": 12})
    health = served(url, digest)
    assert health["settings_hash"] == digest and "renamed" in health["variants"], health
    assert text(ask(url, "renamed")) and proc.poll() is None
