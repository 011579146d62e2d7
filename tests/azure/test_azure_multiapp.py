"""Two projects in one resource group, two apps on one share (issue 16, item 5): each app has its own ARM
deployment record and its own folder on the share; a deploy to one never changes what the other serves;
teardown keeps what the other app still uses and names it; --cancel-previous cancels only its own."""
import json
import shutil
import time

import pytest

import aitk_nb
from azure_double.clients import clients
from azure_helpers import config_of
from helpers import REPO

pytestmark = pytest.mark.timeout(300)
RG = "rg-aitk"


def new_project(tmp_path, name: str, app: str | None, **values) -> object:
    root = tmp_path / name
    shutil.copytree(REPO / "infra" / "provision", root / "infra" / "provision")
    path = root / "infra" / "provision" / "inference.parameters.json"
    data = json.loads(path.read_text())
    for key, value in {"acaAppName": app, **values}.items():
        data["parameters"][key] = {"value": value}
    path.write_text(json.dumps(data, indent=2))
    return root


def provision(project, **kw):
    return aitk_nb.provision("azure", project=project, resource_group=RG, overrides={"location": "eastus"},
                             progress=False, **kw)


@pytest.fixture
def two(azure, tmp_path):
    """Projects a and b, apps app-a and app-b, on default names otherwise: b finds a's storage account,
    share, environment and environment storage and reuses them (two apps on one share)."""
    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=4)
    a, b = new_project(tmp_path, "a", "app-a"), new_project(tmp_path, "b", "app-b")
    provision(a)
    provision(b)
    return a, b


def records(azure):
    _, dep, *_ = clients(azure)
    return {d.name: d.properties.outputs["ACA_APP_NAME"]["value"] for d in dep.deployments.list_by_resource_group(RG)}


def app_body(azure, name):
    return next(b for b in azure.state.of_type("Microsoft.App/containerApps", RG) if b["name"] == name)


def test_each_project_has_its_own_deployment_record_and_they_share_one_share(azure, two):
    a, b = two
    assert records(azure) == {"aitk-inference-app-a": "app-a", "aitk-inference-app-b": "app-b"}
    ca, cb = config_of(a), config_of(b)
    assert (ca["STORAGE_ACCOUNT_NAME"], ca["FILE_SHARE_NAME"]) == (cb["STORAGE_ACCOUNT_NAME"], cb["FILE_SHARE_NAME"])
    for app in ("app-a", "app-b"):  # each container finds its own folder by the name Container Apps gives it
        args = app_body(azure, app)["properties"]["template"]["containers"][0]["args"]
        assert args == ["cd /mount/aitk-nb/$CONTAINER_APP_NAME; bash inference_app/start.sh"]


def test_a_deploy_in_one_project_does_not_change_what_the_other_serves(azure, two, small_assets, tmp_path):
    a, b = two
    model, adapter = small_assets
    aitk_nb.deploy([str(adapter)], str(model), project=b, progress=False)
    cb = config_of(b)
    share = lambda: azure.state.files(cb["STORAGE_ACCOUNT_NAME"], cb["FILE_SHARE_NAME"])  # noqa: E731
    theirs = {p: data for p, data in share().items() if p.startswith("aitk-nb/app-b/")}
    assert json.loads(theirs["aitk-nb/app-b/settings.json"])["adapters"] == {"my-adapter": "models/my-adapter"}
    revision = app_body(azure, "app-b")["properties"]["latestRevisionName"]

    other = tmp_path / "other-adapter"
    shutil.copytree(adapter, other)
    (other / "adapter_model.safetensors").write_bytes(b"other weights")
    result = aitk_nb.deploy([str(other)], str(model), project=a, progress=False)
    assert result.settings.adapters == {"other-adapter": "models/other-adapter"}
    after = share()
    assert json.loads(after["aitk-nb/app-a/settings.json"])["adapters"] == {"other-adapter": "models/other-adapter"}
    assert {p: data for p, data in after.items() if p.startswith("aitk-nb/app-b/")} == theirs  # b's folder as it was
    assert after["models/my-adapter/adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").read_bytes()
    assert app_body(azure, "app-b")["properties"]["latestRevisionName"] == revision  # b was not restarted
    assert not any(p.startswith("inference/") for p in after)  # AI Toolkit's folder: never written

    # an adapter of the same name that b serves, with other weights: refused before anything is sent
    (other / "adapter_model.safetensors").write_bytes(b"not b's weights")
    same_name = tmp_path / "x" / "my-adapter"
    shutil.copytree(other, same_name)
    with pytest.raises(aitk_nb.AitkError) as e:
        aitk_nb.deploy([str(same_name)], str(model), project=a, progress=False)
    assert "is served by app-b (its settings.json on the share)" in str(e.value) and "NAME=PATH" in str(e.value)
    assert share() == after


def test_teardown_of_one_project_keeps_what_the_other_app_uses_and_names_it(azure, two, small_assets):
    a, b = two
    model, adapter = small_assets
    for project in (a, b):
        aitk_nb.deploy([str(adapter)], str(model), project=project, progress=False)
    cb = config_of(b)
    theirs = {p: d for p, d in azure.state.files(cb["STORAGE_ACCOUNT_NAME"], cb["FILE_SHARE_NAME"]).items()
              if not p.startswith("aitk-nb/app-a/")}
    plan = aitk_nb.teardown(project=a, show=None, yes=True)
    kept = {step.what: step.why for step in plan.steps if not step.delete}
    deleted = {step.what for step in plan.steps if step.delete}
    assert deleted == {"Microsoft.App/containerApps/app-a", f"folder aitk-nb/app-a/ on file share {cb['FILE_SHARE_NAME']}"}
    assert azure.state.files(cb["STORAGE_ACCOUNT_NAME"], cb["FILE_SHARE_NAME"]) == theirs  # b's folder, the models: kept
    used = {f"Microsoft.Storage/storageAccounts/{cb['STORAGE_ACCOUNT_NAME']}",
            f"Microsoft.Storage/storageAccounts/{cb['STORAGE_ACCOUNT_NAME']}/fileServices/default/shares/{cb['FILE_SHARE_NAME']}"}
    for what in used:
        assert "container app app-b still uses it" in kept[what], kept
    env = next(w for w in kept if w.startswith("Microsoft.App/managedEnvironments/") and "/storages/" not in w)
    storage = next(w for w in kept if "/storages/" in w)
    assert "container app app-b still uses it" in kept[env] and "container app app-b still uses it" in kept[storage]
    assert records(azure) == {"aitk-inference-app-b": "app-b"}  # a's record gone, b's kept
    assert aitk_nb.status(project=b).replica.startswith("Running")  # b still serves

    # once b is gone, a's teardown again removes what aitk-nb made for a (found by its tag)
    aitk_nb.teardown(project=b, show=None, yes=True)
    again = aitk_nb.teardown(project=a, show=None, yes=True, target="azure", resource_group=RG)
    assert f"Microsoft.Storage/storageAccounts/{cb['STORAGE_ACCOUNT_NAME']}" in {s.what for s in again.steps if s.delete}
    assert not azure.state.of_type("Microsoft.Storage/storageAccounts", RG)


def test_teardown_keeps_the_apps_folder_when_it_holds_a_file_aitk_nb_did_not_write(azure, two, small_assets):
    """Deploy writes settings, marks and the server code into aitk-nb/<app>/; a file someone else put there
    (notes, a script) is not deploy's: teardown keeps the folder, names the file, and deletes the app."""
    from azure_double.clients import share_client

    a, _ = two
    model, adapter = small_assets
    aitk_nb.deploy([str(adapter)], str(model), project=a, progress=False)
    ca = config_of(a)
    share = share_client(azure, ca["STORAGE_ACCOUNT_NAME"], ca["FILE_SHARE_NAME"])
    share.get_file_client("aitk-nb/app-a/notes.md").upload_file(b"my notes")
    plan = aitk_nb.teardown(project=a, show=None, yes=True)
    folder = next(s for s in plan.steps if s.what.startswith("folder aitk-nb/app-a/"))
    assert not folder.delete and "notes.md" in folder.why, folder
    files = azure.state.files(ca["STORAGE_ACCOUNT_NAME"], ca["FILE_SHARE_NAME"])
    assert files["aitk-nb/app-a/notes.md"] == b"my notes" and "aitk-nb/app-a/settings.json" in files
    assert "Microsoft.App/containerApps/app-a" in {s.what for s in plan.steps if s.delete}


def test_cancel_previous_cancels_only_its_own_projects_deployment(azure, tmp_path):
    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=4)
    a = new_project(tmp_path, "a", "app-a", storageAccountName="aitkappa0001", fileShareName="share-a",
                    acaEnvironmentName="env-a", acaEnvironmentStorageName="share-a", acaLogAnalyticsName="logs-a")
    b = new_project(tmp_path, "b", "app-b")
    azure.resource_seconds = 0.5
    other = aitk_nb.begin_provision("azure", project=b, resource_group=RG, overrides={"location": "eastus"}, progress=False)
    deadline = time.monotonic() + 60
    while other.continuation_token() is None:  # b's deployment is running in ARM
        assert time.monotonic() < deadline and not other.done(), other.progress
        time.sleep(0.05)
    provision(a, cancel_previous=True)
    assert other.result(timeout=120).endpoint.startswith("https://")  # b's provision went on to the end
    assert not [r for r in azure.requests if r.method == "POST" and "/cancel" in r.path]
    assert records(azure) == {"aitk-inference-app-a": "app-a", "aitk-inference-app-b": "app-b"}


@pytest.mark.parametrize("whose", ["this app's", "another app's"])
def test_the_deployment_record_an_earlier_aitk_nb_made_is_found_for_its_app_only(azure, project, whose):
    """Before records were per app, one `aitk-inference` per group: teardown of that project still finds
    and removes it, and never another app's."""
    from azure_double import scenario

    outputs = scenario.provision(azure, RG, app_name="aitk-app" if whose == "this app's" else "their-app",
                                 deployment="aitk-inference")
    config = {**outputs, "ACA_APP_NAME": "aitk-app", "TARGET": "azure"}
    if whose == "another app's":  # this project's app, made apart from that record
        scenario.provision(azure, RG, app_name="aitk-app", deployment="made-by-hand",
                           parameters={"acaEnvironmentStorageName": "mine", "fileShareName": "mine"})
    (project / "infra" / "inference.config.json").write_text(json.dumps(config))
    aitk_nb.teardown(project=project, show=None, yes=True)
    assert ("aitk-inference" in records(azure)) == (whose == "another app's")


def test_the_first_provision_writes_the_resolved_app_name_into_the_parameters_file(azure, project):
    path = project / "infra" / "provision" / "inference.parameters.json"
    before = path.read_text()
    result = provision(project)
    app = config_of(project)["ACA_APP_NAME"]
    assert app.startswith("aitk-app-")
    assert path.read_text() == before.replace('"acaAppName": {\n      "value": null', f'"acaAppName": {{\n      "value": "{app}"')
    assert any(f"acaAppName '{app}' written into {path}:" in n for n in result.notes), result.notes
    assert f"acaAppName '{app}' written" in str(result.card())
    again = provision(project)  # named now: nothing more to write
    assert not any("written into" in n for n in again.notes) and config_of(project)["ACA_APP_NAME"] == app


def test_a_project_on_the_packaged_parameters_gets_its_own_file_with_the_app_name(azure, tmp_path):
    """An empty folder provisions with the packaged parameters: the resolved name still has to land in the
    project (else two such projects in one group are one app), in a copy of the packaged file."""
    from aitk_nb import packaged

    project = tmp_path / "empty"
    project.mkdir()
    result = provision(project)
    app = config_of(project)["ACA_APP_NAME"]
    path = project / "infra" / "provision" / "inference.parameters.json"
    packaged_text = packaged.path(packaged.PARAMETERS).read_text()
    assert path.read_text() == packaged_text.replace('"acaAppName": {\n      "value": null',
                                                     f'"acaAppName": {{\n      "value": "{app}"')
    assert any("a copy of the packaged default parameters" in n for n in result.notes), result.notes
    assert "(packaged default)" not in str(provision(project).card()).split("parameters:")[-1].splitlines()[0]


def test_a_parameters_file_outside_the_project_is_never_written(azure, project, tmp_path):
    """--parameters naming a team's shared file: the resolved name is said, not written into it."""
    shared = tmp_path / "team" / "inference.parameters.json"
    shared.parent.mkdir()
    shutil.copy(project / "infra" / "provision" / "inference.parameters.json", shared)
    before = shared.read_bytes()
    result = provision(project, parameters=str(shared))
    app = config_of(project)["ACA_APP_NAME"]
    assert shared.read_bytes() == before
    assert any(f"this app is {app!r}: set acaAppName to it in {shared} (not written" in n for n in result.notes), result.notes


def test_an_app_of_the_single_folder_layout_is_moved_to_its_own_folder_serving_what_it_served(azure, project, small_assets):
    """An app provisioned by an earlier aitk-nb starts in inference/ (and its parameters file says so): deploy
    moves it to aitk-nb/<app>/ (the same adapters served), provision keeps it there, inference/ is left."""
    from azure_double import scenario
    from azure_double.clients import share_client

    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=4)
    old = ["cd /mount/inference", "bash inference_app/start.sh"]
    outputs = scenario.provision(azure, RG, app_name="aitk-app", deployment="aitk-inference",
                                 parameters={"defaultCommands": old})
    (project / "infra" / "inference.config.json").write_text(json.dumps({**outputs, "TARGET": "azure"}))
    path = project / "infra" / "provision" / "inference.parameters.json"
    params = json.loads(path.read_text())
    params["parameters"]["defaultCommands"]["value"] = old
    params["parameters"]["acaAppName"]["value"] = "aitk-app"
    path.write_text(json.dumps(params))
    model, adapter = small_assets
    share = share_client(azure, outputs["STORAGE_ACCOUNT_NAME"], outputs["FILE_SHARE_NAME"])
    legacy = json.dumps({"base_model": "org/base", "adapters": {"facts": "models/facts"}}).encode()
    share.create_directory("inference")
    share.get_file_client("inference/settings.json").upload_file(legacy)

    result = aitk_nb.deploy(project=project, progress=False, timeout=120)
    assert result.settings.adapters == {"facts": "models/facts"} and result.settings.base_model == "org/base"
    args = app_body(azure, "aitk-app")["properties"]["template"]["containers"][0]["args"]
    assert args == ["cd /mount/aitk-nb/$CONTAINER_APP_NAME; bash inference_app/start.sh"]
    files = azure.state.files(outputs["STORAGE_ACCOUNT_NAME"], outputs["FILE_SHARE_NAME"])
    assert json.loads(files["aitk-nb/aitk-app/settings.json"])["adapters"] == {"facts": "models/facts"}
    assert files["inference/settings.json"] == legacy
    assert any(line.startswith("moved from inference/ to aitk-nb/aitk-app/") for line in result.synced)
    provision(project)  # the old default in the parameters file is today's: the app stays in its folder
    assert app_body(azure, "aitk-app")["properties"]["template"]["containers"][0]["args"] == args
    assert not aitk_nb.deploy(project=project, progress=False).restarted  # moved once
