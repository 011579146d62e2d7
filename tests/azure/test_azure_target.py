"""The azure target end to end against the Azure test double, through the magics, the CLI and the
Python API: provision (what-if, per-resource progress, outputs), deploy (only changed files, chunked
uploads, restart, readiness through the ingress), status, logs, endpoint, teardown; and no secret in
anything the toolkit writes or shows."""
import json
import os
import subprocess
import sys
import time

import pytest
from IPython.core.error import UsageError

import aitk_nb
from azure_helpers import SUBSCRIPTION_OPTIONS, assert_no_secret, config_of, share_matches
from helpers import REPO, app_folder

pytestmark = pytest.mark.timeout(300)


def magic(shell, line):
    return shell.run_line_magic("aitk", line)


def test_magics_provision_deploy_status_logs_endpoint_teardown(azure, shell, project, small_assets, capsys):
    model, adapter = small_assets
    opts = f"{SUBSCRIPTION_OPTIONS} --project {project}"

    preview = magic(shell, f"provision {opts} --what-if")
    assert preview.what_if and ("resource group rg-aitk", "Create") in preview.changes
    assert not (project / "infra/inference.config.json").exists()

    done = magic(shell, f"provision {opts}")
    config = config_of(project)
    assert set(config) == {"SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "STORAGE_ACCOUNT_NAME", "FILE_SHARE_NAME",
                           "ACA_APP_NAME", "ACA_APP_ENDPOINT", "TARGET"}
    assert config["TARGET"] == "azure" and config["SUBSCRIPTION_ID"] == azure.subscription_id  # the only one seen
    assert config["ACA_APP_ENDPOINT"].startswith("https://") and done.endpoint == config["ACA_APP_ENDPOINT"]
    assert (f"Microsoft.App/containerApps/{config['ACA_APP_NAME']}", "Create") in done.changes
    out = capsys.readouterr().out
    for resource in ("Microsoft.Storage/storageAccounts", "Microsoft.App/managedEnvironments", "Microsoft.App/containerApps"):
        assert f"Succeeded  {resource} " in out  # per-resource progress from the deployment's operations

    again = magic(shell, f"provision --target azure --project {project} --what-if")  # same group as provisioned
    assert again.changes and {action for _, action in again.changes} == {"NoChange"}

    deployed = magic(shell, f'deploy --project {project} --model "{model}" --adapter "{adapter}"')
    assert deployed.health["status"] == "ok"
    assert deployed.variants == ["base", "my-adapter"]
    share_matches(azure, config, "models/my-adapter", adapter)
    share_matches(azure, config, "model-cache/tiny-base", model)
    share_matches(azure, config, f"{app_folder(project)}/inference_app", REPO / "inference_app")
    settings = json.loads(azure.state.files(config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])[f"{app_folder(project)}/settings.json"])
    versions = settings.pop("adapter_versions")  # a digest of the adapter's files (issue 17: weights changed in place)
    assert settings == {"base_model": "model-cache/tiny-base", "adapters": {"my-adapter": "models/my-adapter"}}
    assert list(versions) == ["my-adapter"] and len(versions["my-adapter"]) == 16

    azure.clear_requests()
    unchanged = magic(shell, f"deploy --project {project}")  # nothing changed: nothing sent, the replica kept
    # the deploy lock's lease (issue 17) is the only file written, and it is gone again
    assert azure.uploaded_bytes() == 0 and not [r for r in azure.requests if r.method == "PUT" and r.kind == "files"
                                                and ".aitk-deploy.lock" not in r.path]
    assert not azure.state.files(config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"]).get("inference/.aitk-deploy.lock")
    assert not any("/restart" in r.path for r in azure.requests) and not unchanged.restarted
    assert unchanged.health["status"] == "ok" and "nothing changed since the last deploy" in unchanged.state

    status = magic(shell, f"status --project {project}")
    assert status.replica == "Running (Healthy), 1 replica"
    assert status.settings.adapters == {"my-adapter": "models/my-adapter"} and status.endpoint == config["ACA_APP_ENDPOINT"]

    for line in ("loading the base model", "ready"):
        azure.state.add_log(config["ACA_APP_NAME"], line)
    logs = str(magic(shell, f"logs --project {project} --tail 3"))
    assert logs.splitlines()[1:] == ["loading the base model", "ready"] and "Uvicorn running on" in logs

    endpoint = magic(shell, f"endpoint --project {project}")
    assert endpoint.url == config["ACA_APP_ENDPOINT"] and endpoint.openai_base_url.endswith("/v1")
    key = endpoint.api_key()
    assert key and key in azure.state.secret_strings()  # read from the app's secrets, shown nowhere

    outputs = [str(x) for x in (preview, done, again, deployed, status, logs, endpoint)]
    outputs += [x._repr_html_() for x in (done, deployed, status, endpoint)]
    captured = capsys.readouterr()
    assert_no_secret(azure, captured.out, captured.err, *outputs, folders=(project,))

    with pytest.raises(UsageError, match="teardown not confirmed; nothing removed"):
        magic(shell, f"teardown --project {project}")  # no stdin here: not confirmed
    assert azure.state.of_type("Microsoft.App/containerApps")

    gone = magic(shell, f"teardown --project {project} --yes")
    assert not azure.state.of_type("Microsoft.App/containerApps")
    assert not azure.state.of_type("Microsoft.Storage/storageAccounts")
    assert not azure.state.of_type("Microsoft.App/managedEnvironments")
    assert not azure.state.of_type("Microsoft.OperationalInsights/workspaces")
    assert azure.state.of_type("Microsoft.Resources/resourceGroups")  # the group is the user's: kept
    assert not (project / "infra/inference.config.json").exists()
    assert any("deleted" in d for _, d in gone.card().rows)


def test_cli_runs_the_same_verbs_in_a_terminal(azure, project, small_assets):
    model, adapter = small_assets
    env = {**os.environ, **azure.environment(), "PYTHONUNBUFFERED": "1"}
    aitk = [sys.executable, "-m", "aitk_nb.cli"]

    def run(*args, ok=True):
        p = subprocess.run([*aitk, *args, "--project", str(project)], env=env, capture_output=True, text=True, timeout=240)
        assert (p.returncode == 0) == ok, p.stdout + p.stderr
        return p.stdout + p.stderr

    texts = [run("provision", *SUBSCRIPTION_OPTIONS.split())]
    assert "Provisioned the azure target" in texts[-1]
    texts.append(run("deploy", "--model", str(model), "--adapter", str(adapter)))
    assert "models/my-adapter: 2 changed" in texts[-1] and "ready" in texts[-1]
    texts.append(run("status"))
    assert "Running (Healthy), 1 replica" in texts[-1]
    texts.append(run("logs", "--tail", "3"))
    assert "Uvicorn running on" in texts[-1]
    texts.append(run("endpoint"))
    assert config_of(project)["ACA_APP_ENDPOINT"] in texts[-1]
    texts.append(run("teardown", "--app-only", "--yes"))
    assert not azure.state.of_type("Microsoft.App/containerApps")
    assert azure.state.of_type("Microsoft.Storage/storageAccounts")  # app only: the share and its files stay
    texts.append(run("status", ok=False))
    assert "ContainerAppNotFound" in texts[-1] or "not found" in texts[-1].lower()
    assert_no_secret(azure, *texts, folders=(project,))


def test_deploy_works_from_a_hand_filled_config_alone(azure, project, small_assets):
    """Manual mode (as in the AI Toolkit template): resources made elsewhere, the six keys typed in,
    no TARGET key; the toolkit never provisioned anything here."""
    sys.path.insert(0, str(REPO / "tests"))
    from azure_double.scenario import provision as make_resources

    outputs = make_resources(azure, resource_group="rg-manual", app_name="manual-app")
    (project / "infra/inference.config.json").write_text(json.dumps({k: outputs[k] for k in (
        "SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "STORAGE_ACCOUNT_NAME", "FILE_SHARE_NAME", "ACA_APP_NAME", "ACA_APP_ENDPOINT")}))
    model, adapter = small_assets
    result = aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    assert result.target == "azure" and result.health["status"] == "ok"
    share_matches(azure, outputs, "models/my-adapter", adapter)


def test_choices_for_the_form_come_from_the_account(azure):
    from aitk_nb.azure.choices import AccountChoices

    choices = AccountChoices()
    subs = choices.subscriptions()
    assert subs == [(f"Azure test double ({azure.subscription_id})", azure.subscription_id)]
    assert ("eastus", "eastus") in choices.locations(azure.subscription_id)
    gpus = choices.gpu_profiles(azure.subscription_id, "eastus")
    assert gpus and all("GPU" in label for label, _ in gpus)
    assert "Consumption" not in [v for _, v in gpus]  # the CPU profile is not offered
    from azure_double.scenario import provision as make_resources

    make_resources(azure, resource_group="rg-picked")
    assert ("rg-picked (eastus)", "rg-picked") in choices.resource_groups(azure.subscription_id)


def test_provision_form_on_the_azure_target_lists_the_account_and_provisions(azure, project):
    pytest.importorskip("ipywidgets")
    from aitk_nb.widgets.provision import ProvisionForm

    form = ProvisionForm(project=project, target="azure")
    assert form.subscription.value == azure.subscription_id
    form.resource_group.value = "rg-form"
    assert "new: it will be created" in form.messages["resource_group"].value
    form.fields["location"].value = "eastus"
    assert form.gpu_profile.options and form.gpu_profile.value.startswith("Consumption-GPU")
    form.provision_button.click()  # in the background: the form shows the outcome when it ends
    form.runner.wait(240)
    assert form.runner.last_error is None, form.message.value
    assert config_of(project)["RESOURCE_GROUP_NAME"] == "rg-form"
    assert azure.state.of_type("Microsoft.App/containerApps", "rg-form")


def test_several_subscriptions_need_one_named(azure, project):
    azure.subscriptions.append({"subscriptionId": "0000-second", "displayName": "Second", "tenantId": azure.tenant_id,
                                "state": "Enabled"})
    with pytest.raises(aitk_nb.AitkError, match=r"--subscription: the account sees 2 subscriptions .*Second \(0000-second\)"):
        aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    assert not (project / "infra/inference.config.json").exists()


def test_a_missing_resource_group_says_which_option(azure, project):
    with pytest.raises(aitk_nb.AitkError, match="--resource-group"):
        aitk_nb.provision("azure", project=project, progress=False)


def test_scale_bounds_then_stop_and_start_again(azure, project, small_assets, capsys):
    import httpx

    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    model, adapter = small_assets
    aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    config = config_of(project)
    before = azure.state.of_type("Microsoft.App/containerApps")[0]["properties"]["latestRevisionName"]

    card = aitk_nb.scale(min_replicas=0, max_replicas=3, project=project)
    rows = dict(card.rows)
    assert rows["min replicas"] == 0 and rows["max replicas"] == 3 and rows["revision"] != before  # a new revision
    app = azure.state.of_type("Microsoft.App/containerApps")[0]
    assert app["properties"]["template"]["scale"]["minReplicas"] == 0
    assert app["properties"]["template"]["scale"]["maxReplicas"] == 3
    assert app["properties"]["template"]["scale"]["rules"]  # the http rule is kept
    assert aitk_nb.endpoint(project=project).api_key()  # the secrets survived the update

    verify = azure.client_ssl_context()
    assert dict(aitk_nb.scale(stop=True, project=project).rows)["running"] == "Stopped"
    assert httpx.get(config["ACA_APP_ENDPOINT"] + "/health", verify=verify).status_code == 404
    assert dict(aitk_nb.scale(start=True, project=project).rows)["running"] == "Running"
    deadline = time.monotonic() + 30
    while httpx.get(config["ACA_APP_ENDPOINT"] + "/health", verify=verify).status_code != 200:
        assert time.monotonic() < deadline, "the app did not come back"
        time.sleep(0.2)

    with pytest.raises(aitk_nb.AitkError, match="--min 4 is above --max 3"):
        aitk_nb.scale(min_replicas=4, project=project)
    with pytest.raises(aitk_nb.AitkError, match="--max 0: .* use --stop"):
        aitk_nb.scale(max_replicas=0, project=project)


def test_scale_on_the_local_target_says_what_to_do_instead(project):
    from helpers import free_port

    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    with pytest.raises(aitk_nb.AitkError, match="--min and --max are for the azure target; the local target runs one "
                                                "replica: stop it with `%aitk scale --stop`"):
        aitk_nb.scale(min_replicas=0, project=project)
