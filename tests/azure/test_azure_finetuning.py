"""Picking up where AI Toolkit fine-tuning left off (issue 11, the provision side): against the double's
fine-tuning scenario (a group holding the fine-tuning's environment with a dedicated A100 profile,
storage account, share with a base model and an adapter, workspace and job), provision defaults
from the fine-tuning's files, creates only the app (and what is really missing), leaves the others'
properties and tags as they were, and teardown keeps them. Bad fine-tuning files are one line naming
the file and the field."""
import json

import pytest

import aitk_nb
from aitk_nb.errors import AitkError
from azure_double.scenario import finetuning_leftovers
from azure_helpers import config_of

pytestmark = pytest.mark.timeout(300)
FT_TYPES = ("Microsoft.Storage/storageAccounts", "Microsoft.OperationalInsights/workspaces",
            "Microsoft.App/managedEnvironments", "Microsoft.App/managedEnvironments/storages", "Microsoft.App/jobs")


def snapshot(double, rg):
    """What a PUT would change of the fine-tuning's resources: tags, properties as written, sku, the share."""
    out = {}
    for rtype in FT_TYPES + ("Microsoft.Storage/storageAccounts/fileServices/shares",):
        for body in double.state.of_type(rtype, rg):
            out[body["id"]] = json.dumps({k: body.get(k) for k in ("tags", "sku", "kind", "location")}
                                         | {"spec": double.state.specs.get(body["id"].lower()),
                                            "modified": (body.get("systemData") or {}).get("lastModifiedAt"),
                                            "metadata": body.get("properties", {}).get("metadata")}, sort_keys=True)
    return out


@pytest.fixture
def finetuned(azure, project):
    ft = finetuning_leftovers(azure)
    ft.write_project_files(project)
    return ft


def test_provision_from_the_finetuning_creates_only_the_app_and_teardown_keeps_the_rest(azure, project, finetuned):
    ft = finetuned
    before = snapshot(azure, ft.resource_group)
    files = azure.state.files(ft.storage_account, ft.share)

    preview = aitk_nb.provision("azure", project=project, what_if=True, progress=False)  # no group or subscription given
    assert preview.sources["storageAccountName"] == "fine-tuning (infra/finetuning.config.json STORAGE_ACCOUNT_NAME)"
    assert preview.sources["fileShareName"] == "fine-tuning (infra/finetuning.config.json FILE_SHARE_NAME)"
    assert preview.sources["acaEnvironmentName"] == "fine-tuning (infra/provision/finetuning.parameters.json acaEnvironmentName)"
    assert preview.sources["acaAppName"] == "template default"
    assert preview.sources["gpuWorkloadProfileName"].startswith("found in Azure")
    actions = dict(preview.changes)
    assert {a for r, a in actions.items() if not r.startswith("Microsoft.App/containerApps/")} == {
        "Reuse (existed before provision: referenced, not changed)"}
    assert [a for r, a in actions.items() if r.startswith("Microsoft.App/containerApps/")] == ["Create"]
    assert not [r for r in actions if "OperationalInsights" in r]  # the reused environment's workspace is not ours to use

    done = aitk_nb.provision("azure", project=project, progress=False)
    config = config_of(project)
    assert (config["SUBSCRIPTION_ID"], config["RESOURCE_GROUP_NAME"]) == (ft.subscription_id, ft.resource_group)
    assert (config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"]) == (ft.storage_account, ft.share)
    app = azure.state.of_type("Microsoft.App/containerApps", ft.resource_group)
    assert [a["name"] for a in app] == [config["ACA_APP_NAME"]]
    props = app[0]["properties"]
    assert props["environmentId"] == ft.environment_id and props["workloadProfileName"] == ft.gpu_profile
    assert props["template"]["volumes"][0]["storageName"] == ft.environment_storage  # the share the job mounts
    assert app[0]["tags"] == {"aitk-nb-owner": config["ACA_APP_NAME"]}  # it made no environment storage
    assert snapshot(azure, ft.resource_group) == before  # nothing else was written
    assert len(azure.state.of_type("Microsoft.OperationalInsights/workspaces", ft.resource_group)) == 1
    card = str(done)
    assert f"storageAccountName" in card and "fine-tuning (infra/finetuning.config.json STORAGE_ACCOUNT_NAME)" in card

    shown = []
    aitk_nb.teardown(yes=True, project=project, show=shown.append)
    assert azure.state.of_type("Microsoft.App/containerApps", ft.resource_group) == []
    assert snapshot(azure, ft.resource_group) == before
    assert azure.state.files(ft.storage_account, ft.share) == files  # the base model and the adapter stay
    plan = str(shown[0])
    assert f"Microsoft.App/managedEnvironments/{ft.environment} — existed before provision" in plan


def test_the_inference_parameters_win_and_what_is_missing_is_made_and_torn_down(azure, project, finetuned):
    """A new environment storage named in the inference parameters is made in the reused environment,
    recorded on the app (it has no tags of its own), and deleted by teardown; the environment stays."""
    ft = finetuned
    params = json.loads((project / "infra/provision/inference.parameters.json").read_text())
    params["parameters"]["acaEnvironmentStorageName"]["value"] = "aitk-share"
    (project / "infra/provision/inference.parameters.json").write_text(json.dumps(params))
    done = aitk_nb.provision("azure", project=project, progress=False)
    assert done.sources["acaEnvironmentStorageName"] == "inference parameters"
    env_storage = f"{ft.environment_id}/storages/aitk-share"
    assert azure.state.get(env_storage) is not None
    app = azure.state.of_type("Microsoft.App/containerApps", ft.resource_group)[0]
    assert app["tags"]["aitk-nb-environment-storage"] == "aitk-share"

    aitk_nb.teardown(yes=True, project=project, show=None)
    assert azure.state.get(env_storage) is None  # ours: gone
    assert azure.state.get(f"{ft.environment_id}/storages/{ft.environment_storage}") is not None  # theirs: kept
    assert azure.state.get(ft.environment_id) is not None


def write_config(project, **changes):
    path = project / "infra/finetuning.config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def write_ft_parameters(project, **changes):
    path = project / "infra/provision/finetuning.parameters.json"
    data = json.loads(path.read_text())
    data["parameters"].update({k: {"value": v} for k, v in changes.items()})
    path.write_text(json.dumps(data))


def test_a_finetuning_file_naming_a_storage_account_that_does_not_exist(azure, project, finetuned):
    write_config(project, STORAGE_ACCOUNT_NAME="nosuchaccount1")
    azure.clear_requests()
    with pytest.raises(AitkError) as e:
        aitk_nb.provision("azure", project=project, progress=False)
    assert str(e.value).startswith("infra/finetuning.config.json STORAGE_ACCOUNT_NAME 'nosuchaccount1': no such storage "
                                   f"account in resource group {finetuned.resource_group}")
    assert "\n" not in str(e.value)
    assert not [r for r in azure.requests if r.method == "PUT"]


def test_a_job_whose_environment_is_gone(azure, project, finetuned):
    write_ft_parameters(project, acaEnvironmentName=None)  # the environment comes from the job then
    azure.mgmt.resources.remove(finetuned.environment_id)  # gone (the double's state, past Azure's refusal)
    with pytest.raises(AitkError, match=r"^infra/finetuning.config.json ACA_JOB_NAME 'ft-job': its environment ft-env "
                                        r"\(properties.environmentId\) no longer exists; name an environment in acaEnvironmentName"):
        aitk_nb.provision("azure", project=project, progress=False)


def test_the_environment_is_found_from_the_job(azure, project, finetuned):
    write_ft_parameters(project, acaEnvironmentName=None, acaEnvironmentStorageName=None)
    preview = aitk_nb.provision("azure", project=project, what_if=True, progress=False)
    assert preview.sources["acaEnvironmentName"] == "found in Azure (the fine-tuning job's environment)"
    assert preview.sources["acaEnvironmentStorageName"] == "found in Azure (links the share in the environment)"
    values = {name: value for name, value, _ in preview.values}
    assert (values["acaEnvironmentName"], values["acaEnvironmentStorageName"]) == (finetuned.environment,
                                                                                    finetuned.environment_storage)


def test_a_reused_environment_without_a_gpu_profile_says_which_is_missing(azure, project):
    ft = finetuning_leftovers(azure, gpu_profile="general", gpu_profile_type="D4")
    ft.write_project_files(project)
    with pytest.raises(AitkError, match=r"environment ft-env \(reused: aitk-nb did not create it, so provision does not change "
                                        r"it\) has no GPU workload profile \(it has: Consumption \(Consumption\), general \(D4\)\); "
                                        r"add one \(`az containerapp env workload-profile add -g rg-finetune -n ft-env "
                                        r"--workload-profile-name gpu --workload-profile-type Consumption-GPU-NC8as-T4`\)"):
        aitk_nb.provision("azure", project=project, what_if=True, progress=False)
    with pytest.raises(AitkError, match=r"has no GPU workload profile .*; a dedicated GPU profile \(NC48-A100\) can only be "
                                        r"added when an environment is created: set acaEnvironmentName to a new name"):
        aitk_nb.provision("azure", project=project, what_if=True, progress=False,
                          overrides={"gpuWorkloadProfileType": "NC48-A100"})
    # A teardown from this clone (no config) is not blocked by provision's checks, and deletes nothing of theirs.
    before = snapshot(azure, ft.resource_group)
    done = aitk_nb.teardown(yes=True, project=project, target="azure", resource_group=ft.resource_group, show=None)
    assert not [row for row in done.card().rows if row[0] in ("delete", "deleted")]
    assert snapshot(azure, ft.resource_group) == before


def test_the_provision_form_shows_the_finetunings_values_and_a_second_press_applies_changes(azure, project, finetuned):
    pytest.importorskip("ipywidgets")
    from aitk_nb.errors import ConfirmationError
    from aitk_nb.widgets.provision import ProvisionForm

    ft = finetuned
    form = ProvisionForm(project=project, target="azure")
    assert (form.subscription.value, form.resource_group.value) == (ft.subscription_id, ft.resource_group)
    assert form.fields["storageAccountName"].placeholder == f"fine-tuning: {ft.storage_account}"
    assert (f"fine-tuning: {ft.storage_account} (infra/finetuning.config.json STORAGE_ACCOUNT_NAME)"
            in form.messages["storageAccountName"].value)
    assert "template default" in form.messages["acaAppName"].value
    form.provision_button.click()
    form.runner.wait(240)
    assert form.runner.last_error is None, form.message.value
    assert form.result.sources["acaEnvironmentName"].startswith("fine-tuning")
    app = azure.state.of_type("Microsoft.App/containerApps", ft.resource_group)[0]

    form.fields["defaultCommands"].value = "cd /mount/aitk-nb/$CONTAINER_APP_NAME\nbash inference_app/start.sh\necho changed"
    form.provision_button.click()  # a change to the app that exists: shown, not applied
    form.runner.wait(240)
    assert isinstance(form.runner.last_error, ConfirmationError)
    assert "press Provision again to apply these changes" in form.message.value
    assert azure.state.get(app["id"])["properties"]["template"]["containers"][0]["args"] == app["properties"]["template"][
        "containers"][0]["args"]
    form.provision_button.click()  # the answer
    form.runner.wait(240)
    assert form.runner.last_error is None, form.message.value
    assert azure.state.get(app["id"])["properties"]["template"]["containers"][0]["args"][0].endswith("echo changed")


def test_a_reused_environment_storage_must_link_the_share_deploy_fills(azure, project, finetuned):
    params = json.loads((project / "infra/provision/inference.parameters.json").read_text())
    params["parameters"]["fileShareName"]["value"] = "inference"  # another share than the one ft-share links
    (project / "infra/provision/inference.parameters.json").write_text(json.dumps(params))
    with pytest.raises(AitkError, match=r"acaEnvironmentStorageName 'ft-share': it links the share ftstorage0001/finetune, "
                                        r"not ftstorage0001/inference; name another environment storage"):
        aitk_nb.provision("azure", project=project, progress=False)
