"""Faults from the Azure test double: each is retried (azure-core's policies) or reported clearly,
and nothing is lost or half-written."""
import json
import threading
import time

import pytest

import aitk_nb
from aitk_nb.errors import AitkError
from azure_helpers import config_of, share_matches
from helpers import REPO, app_folder

pytestmark = pytest.mark.timeout(300)
DEPLOYMENT_PUT = r"/deployments/aitk-inference-[a-z0-9-]+\?"
RG_AITK = r"(?i)/resourcegroups/rg-aitk(/|\?)"


def provision(project, **kw):
    return aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"},
                             progress=False, **kw)


def statuses(double, method, pattern):
    import re

    return [r.status for r in double.requests if r.method == method and re.search(pattern, r.path)]


def test_throttling_and_server_errors_are_retried(azure, project, small_assets):
    azure.faults.throttle("PUT", DEPLOYMENT_PUT, count=2, retry_after=1)
    azure.faults.error("GET", r"/containerApps/[^/?]+\?", status=503, count=1, retry_after=1)
    provision(project)
    assert statuses(azure, "PUT", DEPLOYMENT_PUT)[:3] == [429, 429, 201]
    config = config_of(project)

    model, adapter = small_assets
    azure.faults.error("PUT", r"model\.safetensors\?comp=range", status=503, count=2)  # ServerBusy
    azure.faults.error("POST", r"/restart\?", status=500, count=1)
    result = aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    assert result.health["status"] == "ok"
    assert statuses(azure, "PUT", r"model\.safetensors\?comp=range").count(503) == 2
    assert statuses(azure, "POST", r"/restart\?")[:2] == [500, 200]
    share_matches(azure, config, "model-cache/tiny-base", model)


def test_an_interrupted_deploy_rerun_ends_with_every_file_equal(azure, project, small_assets):
    """Connections dropped mid-upload until the SDK's retries give up: the deploy fails naming the
    file, the settings still point at what was there before, and a re-run sends what is missing."""
    provision(project)
    config = config_of(project)
    model, adapter = small_assets
    azure.faults.reset_connection("PUT", r"tiny-base/model\.safetensors\?comp=range", count=50, after_bytes=64 * 1024)
    with pytest.raises(AitkError, match=r"uploading model-cache/tiny-base/model\.safetensors"):
        aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    stored = azure.state.files(config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])
    assert f"{app_folder(project)}/settings.json" not in stored  # written last: never points at half-synced files
    half = stored.get("model-cache/tiny-base/model.safetensors")
    assert half is not None and half != (model / "model.safetensors").read_bytes()  # the trap: right size, wrong bytes

    azure.faults.clear()
    azure.clear_requests()
    result = aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    assert result.health["status"] == "ok"
    for dest, local in (("model-cache/tiny-base", model), ("models/my-adapter", adapter),
                        (f"{app_folder(project)}/inference_app", REPO / "inference_app")):
        share_matches(azure, config, dest, local)
    sent = azure.uploaded_bytes()
    size = (model / "model.safetensors").stat().st_size
    assert size <= sent < size + 200_000  # the broken file again (and settings.json), not what was already there


def test_a_failed_deployment_names_the_code_message_and_resource(azure, project):
    azure.faults.fail_deployment(code="InvalidParameterValue", message="The GPU profile is not offered here.",
                                 resource="Microsoft.App/managedEnvironments")
    with pytest.raises(AitkError) as e:
        provision(project)
    text = str(e.value)
    assert "InvalidParameterValue" in text and "The GPU profile is not offered here." in text
    assert "Microsoft.App/managedEnvironments" in text
    assert not (project / "infra/inference.config.json").exists()


def test_short_gpu_quota_stops_before_anything_is_created(azure, project):
    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=0)
    with pytest.raises(AitkError, match=r"GPU quota short in eastus: .*maximumInstanceCount is 1; request more quota"):
        provision(project)
    assert statuses(azure, "PUT", DEPLOYMENT_PUT) == []


def test_a_revision_that_never_becomes_healthy_is_reported_with_its_logs(azure, project, small_assets):
    provision(project)
    model, adapter = small_assets
    azure.faults.revision_never_healthy()
    t0 = time.monotonic()
    with pytest.raises(AitkError) as e:
        aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False, timeout=60)
    assert time.monotonic() - t0 < 45  # reported when the revision is Degraded, not at the time limit
    text = str(e.value)
    assert "Degraded" in text and "model failed to load (injected)" in text and "%aitk logs" in text


def test_readiness_wait_has_a_limit(azure, project, small_assets):
    provision(project)
    model, adapter = small_assets
    azure.activation_seconds = 30  # still starting when the limit comes
    with pytest.raises(AitkError, match=r"/health did not answer 200 within 3 s"):
        aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False, timeout=3)


def test_a_provision_interrupted_by_a_kernel_restart_resumes_the_same_deployment(azure, project, monkeypatch):
    """The poller's continuation token is kept on disk; provisioning again picks it up instead of
    starting another deployment."""
    from aitk_nb.azure import deployment

    azure.resource_seconds = 0.4
    real_report = deployment._report_operations

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the user stops the cell (or the kernel dies) while it polls

    monkeypatch.setattr(deployment, "_report_operations", interrupted)
    with pytest.raises(KeyboardInterrupt):
        provision(project)
    saved = json.loads((project / ".aitk/azure/deployment.json").read_text())
    assert saved["continuation_token"] and not (project / "infra/inference.config.json").exists()
    monkeypatch.setattr(deployment, "_report_operations", real_report)
    provision(project)
    assert len(statuses(azure, "PUT", DEPLOYMENT_PUT)) == 1  # one deployment, resumed
    assert config_of(project)["ACA_APP_ENDPOINT"].startswith("https://")
    assert not (project / ".aitk/azure/deployment.json").exists()


def test_the_log_stream_reconnects_when_it_drops(azure, project):
    provision(project)
    app = config_of(project)["ACA_APP_NAME"]
    from aitk_nb.targets import get_target
    from aitk_nb.config import InferenceConfig
    from aitk_nb.project import find_project

    proj = find_project(project)
    target = get_target(InferenceConfig.load(proj.config_path), proj)
    azure.log_follow_seconds = 1.0
    azure.faults.drop_stream(count=1, after_lines=1)
    seen: list[str] = []

    def follow():
        for line in target.follow(0):
            seen.append(line)
            if "after the drop" in line:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    time.sleep(0.5)
    azure.state.add_log(app, "before the drop")
    time.sleep(3.5)  # the stream is cut after one line; the follower reconnects
    azure.state.add_log(app, "after the drop")
    reader.join(timeout=30)
    assert not reader.is_alive(), seen
    assert any("after the drop" in line for line in seen)


def test_azure_unreachable_is_one_clear_line(azure, project, monkeypatch):
    monkeypatch.setenv("AITK_ARM_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there
    with pytest.raises(AitkError, match="cannot reach Azure"):
        provision(project)


def test_a_storage_account_name_taken_elsewhere_is_refused_before_anything_is_made(azure, project):
    from azure_double.scenario import provision as make_resources

    make_resources(azure, resource_group="rg-someone-else", parameters={"storageAccountName": "aitkshared01"})
    with pytest.raises(AitkError, match=r"storageAccountName 'aitkshared01': The storage account named aitkshared01 is "
                                        r"already taken\.; storage account names are global"):
        aitk_nb.provision("azure", project=project, resource_group="rg-aitk",
                          overrides={"location": "eastus", "storageAccountName": "aitkshared01"}, progress=False)
    assert statuses(azure, "PUT", RG_AITK) == []  # no group, no deployment


def test_resources_named_in_the_parameters_are_reused_with_their_files(azure, project):
    """A storage account and a share that someone made before (not a whole earlier provision: its app
    would hold the location's one T4), named in the parameters: referenced, not redeclared; the files
    stay, the share gets no mark of ours, and teardown keeps both."""
    from azure_double.clients import clients, share_client

    res, _, _, st, _ = clients(azure)
    res.resource_groups.create_or_update("rg-aitk", {"location": "eastus"})
    st.storage_accounts.begin_create("rg-aitk", "aitkkeep01", {"location": "eastus", "sku": {"name": "Standard_LRS"},
                                                               "kind": "StorageV2"}).result()
    st.file_shares.create("rg-aitk", "aitkkeep01", "models", {"properties": {"metadata": {"purpose": "weights"}}})
    share_client(azure, "aitkkeep01", "models").get_file_client("kept.txt").upload_file(b"already here")
    names = {"storageAccountName": "aitkkeep01", "fileShareName": "models"}
    preview = aitk_nb.provision("azure", project=project, resource_group="rg-aitk", what_if=True,
                                overrides={"location": "eastus", **names}, progress=False)
    actions = dict(preview.changes)
    assert actions["Microsoft.Storage/storageAccounts/aitkkeep01"].startswith("Reuse")
    assert actions["Microsoft.Storage/storageAccounts/aitkkeep01/fileServices/default/shares/models"].startswith("Reuse")
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus", **names},
                      progress=False)
    assert config_of(project)["STORAGE_ACCOUNT_NAME"] == "aitkkeep01" and config_of(project)["FILE_SHARE_NAME"] == "models"
    assert azure.state.files("aitkkeep01", "models")["kept.txt"] == b"already here"
    assert st.file_shares.get("rg-aitk", "aitkkeep01", "models").metadata == {"purpose": "weights"}
    assert statuses(azure, "PUT", RG_AITK)  # the pattern the test above relies on does match
    aitk_nb.teardown(yes=True, project=project, show=None)
    assert azure.state.files("aitkkeep01", "models")["kept.txt"] == b"already here"


def test_cancelling_a_provision_cancels_its_arm_deployment(azure, project):
    """`begin_provision` returns at once; `cancel()` during the ARM deployment goes through ARM (the
    deployment ends Canceled, what it made stays), and no config is written."""
    azure.resource_seconds = 0.5
    op = aitk_nb.begin_provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"},
                                 progress=False)
    deadline = time.monotonic() + 60
    while op.continuation_token() is None:  # the deployment has started
        assert time.monotonic() < deadline and not op.done(), op.progress
        time.sleep(0.05)
    assert op.status() == "InProgress" and op.cancel()
    with pytest.raises(AitkError, match=r"provision cancelled through ARM \(the deployment ended Canceled\); what it made "
                                        r"before it stopped stays"):
        op.result(timeout=120)
    assert op.status() == "Canceled"
    assert statuses(azure, "POST", r"/deployments/aitk-inference-[a-z0-9-]+/cancel\?") == [204]
    assert not (project / "infra/inference.config.json").exists()
    assert not (project / ".aitk/azure/deployment.json").exists()  # ended: nothing to resume
    assert not azure.state.of_type("Microsoft.App/containerApps")  # the app comes last: never made


def test_an_operation_s_continuation_token_resumes_its_deployment(azure, project, monkeypatch):
    from aitk_nb.azure import deployment

    azure.resource_seconds = 0.4
    real_report = deployment._report_operations

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the kernel stops while it polls

    monkeypatch.setattr(deployment, "_report_operations", interrupted)
    op = aitk_nb.begin_provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"},
                                 progress=False)
    with pytest.raises(KeyboardInterrupt):
        op.result(timeout=120)
    token = op.continuation_token()
    assert token and op.status() == "Canceled"
    (project / ".aitk/azure/deployment.json").unlink()  # a new clone, say: only the token is left
    monkeypatch.setattr(deployment, "_report_operations", real_report)
    aitk_nb.begin_provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"},
                            progress=False, continuation_token=token).result(timeout=120)
    assert len(statuses(azure, "PUT", DEPLOYMENT_PUT)) == 1  # one deployment, resumed
    assert config_of(project)["ACA_APP_ENDPOINT"].startswith("https://")
