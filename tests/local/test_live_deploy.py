"""Deploys to a running local app (issue 17): an adapter-only deploy is applied by the running server (same
process, no failed request from a concurrent client, the new weights answer, the card is what /health
says); a broken adapter is refused with the server's reason while the old set keeps serving; a change of
base model still restarts and the card says why."""
import json
import shutil
import time

import httpx
import pytest

import aitk_nb
from helpers import Traffic, as_if_trained_on_another_model, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def pid(project) -> int:
    return json.loads((project / ".aitk/local/replica.json").read_text())["pid"]


@pytest.fixture(scope="module")
def running(tmp_path_factory, demo_assets):
    from helpers import REPO

    root = tmp_path_factory.mktemp("live")
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    aitk_nb.provision("local", project=root, port=free_port(), progress=False)
    first = aitk_nb.deploy([str(demo_assets.adapter)], str(demo_assets.base_model), project=root, progress=False)
    yield root, first
    aitk_nb.teardown(yes=True, project=root)


def ask(url: str, model: str, prompt: str = "Name a colour.", client=None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 16, "temperature": 0}
    return (client or httpx).post(url + "/v1/chat/completions", json=body, timeout=60)


def test_adapter_only_deploys_are_applied_live(running, demo_assets, other_adapter):
    root, first = running
    path, fact = other_adapter
    demo = demo_assets.adapter_name
    before = pid(root)
    with Traffic(lambda c, m: ask(first.endpoint, m, client=c), ["base", demo]) as traffic:
        added = aitk_nb.deploy([str(demo_assets.adapter), str(path)], project=root, progress=False)
        assert added.live and not added.restarted and added.state == "ready: adapters applied live, no restart"
        assert added.health["variants"] == ["base", demo, "vellimar-lora"]
        answer = ask(first.endpoint, "vellimar-lora", fact["prompt"]).json()["choices"][0]["message"]["content"]
        assert fact["expected"] in answer.lower()  # the new weights answer
        renamed = aitk_nb.deploy([str(demo_assets.adapter), f"river={path}"], project=root, progress=False)
        assert renamed.live and renamed.health["variants"] == ["base", demo, "river"]
        removed = aitk_nb.deploy([str(demo_assets.adapter)], project=root, progress=False)
        assert removed.live and removed.health["variants"] == ["base", demo]
        assert ask(first.endpoint, "river").status_code == 404
    assert pid(root) == before
    assert traffic.done > 2 and traffic.failures == [], traffic.failures[:5]
    card = dict(removed.card().rows)
    assert card["variants"] == f"base, {demo}" and removed.health["settings_hash"] in card["served"]


def test_a_broken_adapter_is_refused_with_the_servers_reason(running, demo_assets, other_adapter, tmp_path):
    root, first = running
    demo = demo_assets.adapter_name
    broken = tmp_path / "broken"
    shutil.copytree(other_adapter[0], broken)
    as_if_trained_on_another_model(broken)
    before = pid(root)
    with pytest.raises(aitk_nb.AitkError) as e:
        aitk_nb.deploy([str(demo_assets.adapter), str(broken)], project=root, progress=False)
    message = str(e.value)
    assert "the server refused the new adapters: adapter 'broken'" in message and "org/another-model" in message
    assert f"it still serves base, {demo}" in message and "\n" not in message
    health = httpx.get(first.endpoint + "/health").json()
    assert health["variants"] == ["base", demo] and pid(root) == before
    assert ask(first.endpoint, demo).status_code == 200


def test_a_base_model_change_restarts_and_says_why(running, demo_assets):
    root, first = running
    share = root / ".aitk/local/shares" / json.loads((root / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    moved = share / "model-cache/v2" / demo_assets.base_model.name  # the same weights at another place on the share
    moved.parent.mkdir(parents=True)
    moved.symlink_to(demo_assets.base_model.resolve(), target_is_directory=True)
    before = pid(root)
    result = aitk_nb.deploy([str(demo_assets.adapter)], f"share:model-cache/v2/{demo_assets.base_model.name}",
                            project=root, progress=False)
    assert result.restarted and not result.live and pid(root) != before
    assert result.state.startswith("ready: restarted (base model changed (")
    forced = aitk_nb.deploy(project=root, restart=True, progress=False)
    assert forced.restarted and forced.state == "ready: restarted (--restart)"


def test_two_deploys_started_together_are_serialized_and_each_card_matches_health(running, demo_assets, other_adapter,
                                                                                 capsys):
    from concurrent.futures import ThreadPoolExecutor

    root, first = running
    demo = demo_assets.adapter_name
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(aitk_nb.deploy, [str(demo_assets.adapter), f"one={other_adapter[0]}"], project=root)
        time.sleep(0.5)
        two = pool.submit(aitk_nb.deploy, [str(demo_assets.adapter), f"two={other_adapter[0]}"], project=root)
        one, two = one.result(), two.result()
    out = capsys.readouterr().out
    assert "another deploy to this app is running: " in out and "waiting for it to finish" in out
    assert one.health["variants"] == ["base", demo, "one"]
    assert two.health["variants"] == ["base", demo, "two"]
    assert one.health["settings_hash"] != two.health["settings_hash"]
    assert httpx.get(first.endpoint + "/health").json()["settings_hash"] == two.health["settings_hash"]
    from aitk_nb.deploy_lock import DeployLock
    from aitk_nb.sync import LocalFolderRemote

    share = root / ".aitk/local/shares" / json.loads((root / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    with DeployLock.acquire(LocalFolderRemote(share), json.loads((root / "infra/inference.config.json").read_text())["ACA_APP_NAME"]):
        with pytest.raises(aitk_nb.AitkError, match="another deploy to this app is running: .*pid .*, since "):
            aitk_nb.deploy(project=root, progress=False, wait_lock=False)
