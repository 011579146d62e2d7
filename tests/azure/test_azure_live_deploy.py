"""Deploys to a running app on Azure (issue 17), against the test double with a real replica: an
adapter-only deploy restarts no revision and no replica (the server applies it from the share), and
deploys to one app are serialized by a lease on a file beside settings.json (Azure Files Lease File),
which a deploy whose heartbeat stopped does not hold forever."""
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_azure_share_paths import MODEL_ID, leave_on_the_share

import aitk_nb
from aitk_nb import deploy_lock
from inference_app.contract import lock_path
from azure_double.clients import share_client
from azure_helpers import config_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def running(azure, project, demo_assets, second_adapter_folder):
    azure.run_replicas(env={"OMP_WAIT_POLICY": "PASSIVE"})
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    config = config_of(project)
    leave_on_the_share(azure, config, demo_assets.base_model, f"model-cache/{MODEL_ID}")
    leave_on_the_share(azure, config, demo_assets.adapter, "models/run-1/adapter")
    leave_on_the_share(azure, config, second_adapter_folder, "models/run-2/adapter")
    first = aitk_nb.deploy(["facts=share:models/run-1/adapter"], f"share:model-cache/{MODEL_ID}", project=project,
                           progress=False, timeout=600)
    assert first.restarted and first.health["variants"] == ["base", "facts"]
    return project, config, first


@pytest.fixture
def second_adapter_folder(tmp_path, demo_assets):
    """Another PEFT adapter of the demo base model (its weights differ from the demo adapter's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(demo_assets.base_model, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(tmp_path / "second")
    return tmp_path / "second"


def restarts(azure) -> int:
    return sum(1 for r in azure.requests if r.kind == "arm" and r[0] == "POST" and "/restart" in r[1])


def test_an_adapter_only_deploy_restarts_no_revision_and_no_replica(running, azure):
    project, config, first = running
    pid = azure.apps.runner.procs[config["ACA_APP_NAME"]].pid
    azure.clear_requests()
    added = aitk_nb.deploy(["facts=share:models/run-1/adapter", "second=share:models/run-2/adapter"], project=project,
                           progress=False)
    assert added.live and not added.restarted and added.health["variants"] == ["base", "facts", "second"]
    replica = azure.apps.current_replica(config["ACA_APP_NAME"])
    assert added.health["replica"] == replica and f"served by 1 replica(s) seen ({replica})" in added.served
    assert restarts(azure) == 0 and azure.apps.runner.procs[config["ACA_APP_NAME"]].pid == pid
    removed = aitk_nb.deploy(["facts=share:models/run-1/adapter"], project=project, progress=False)
    assert removed.live and removed.health["variants"] == ["base", "facts"]
    assert restarts(azure) == 0 and azure.apps.runner.procs[config["ACA_APP_NAME"]].pid == pid


def test_two_deploys_to_one_app_are_serialized_by_a_lease_on_the_share(running, azure, capsys):
    project, config, _ = running
    azure.clear_requests()
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(aitk_nb.deploy, ["facts=share:models/run-1/adapter", "one=share:models/run-2/adapter"],
                          project=project)
        time.sleep(0.5)
        two = pool.submit(aitk_nb.deploy, ["facts=share:models/run-1/adapter", "two=share:models/run-2/adapter"],
                          project=project)
        one, two = one.result(), two.result()
    assert "another deploy to this app is running: " in capsys.readouterr().out
    assert one.health["variants"] == ["base", "facts", "one"] and two.health["variants"] == ["base", "facts", "two"]
    leases = [r[1] for r in azure.requests if r.kind == "files" and "comp=lease" in r[1]]
    LOCK_PATH = lock_path(config["ACA_APP_NAME"])
    assert len(leases) >= 2 and all(LOCK_PATH.replace("/", "%2F") in t or LOCK_PATH in t for t in leases)
    share = share_client(azure, config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])
    assert not share.get_file_client(LOCK_PATH).exists()  # released and removed: nothing left behind


def test_a_lease_whose_heartbeat_stopped_is_taken_over_and_a_live_one_is_respected(running, azure, capsys, monkeypatch):
    project, config, _ = running
    share = share_client(azure, config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])
    lock = share.get_file_client(lock_path(config["ACA_APP_NAME"]))
    lock.create_file(0)
    lease = lock.acquire_lease()  # a deploy that holds the app now
    lock.set_file_metadata({"holder": "ana@laptop (pid 7)", "since": str(time.time()), "heartbeat": str(time.time())},
                           lease=lease)
    with pytest.raises(aitk_nb.AitkError, match=r"another deploy to this app is running: ana@laptop \(pid 7\), since "):
        aitk_nb.deploy(project=project, progress=False, wait_lock=False)
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as refused:  # Azure Files: a write to a leased file needs its lease id
        lock.set_file_metadata({"holder": "me"})
    assert refused.value.status_code == 412 and refused.value.error_code == "LeaseIdMissing"
    # the holder was killed: its heartbeat is old
    old = time.time() - deploy_lock.STALE_SECONDS - 5
    lock.set_file_metadata({"holder": "ana@laptop (pid 7)", "since": str(old), "heartbeat": str(old)}, lease=lease)
    result = aitk_nb.deploy(project=project, progress=True)
    out = capsys.readouterr().out
    assert "was held by ana@laptop (pid 7)" in out and "heartbeat stopped" in out and "taken over" in out
    assert result.health["status"] == "ok" and not lock.exists()
