"""Safe on a shared account (issue 10): teardown deletes only what aitk-nb made for this app, found in
Azure itself (from a fresh clone too); provision never rewrites what existed (its tags included),
never overwrites an app it did not make, keeps the API key, asks before changing what exists,
deploys a changed request instead of resuming the old one, and counts the app's own GPUs as free."""
import json
import re
import shutil

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import aitk_nb
from aitk_nb.errors import AitkError
from azure_double.clients import clients, share_client
from azure_helpers import assert_no_secret, config_of

pytestmark = pytest.mark.timeout(300)
RG = "rg-aitk"
ACCOUNT = "aitkkeep01"
THEIR_TAGS = {"team": "ml-platform", "cost-center": "4711", "owner": "someone@example.com"}
DEPLOYMENT_PUT = r"/deployments/aitk-inference-[a-z0-9-]+\?"


def provision(project, **kw):
    kw.setdefault("progress", False)
    overrides = {"location": "eastus", **kw.pop("overrides", {})}
    return aitk_nb.provision("azure", project=project, resource_group=RG, overrides=overrides, **kw)


def puts(double, pattern):
    return [r for r in double.requests if r.method == "PUT" and re.search(pattern, r.path)]


def resource(double, rtype, name):
    return next((b for b in double.state.of_type(rtype, RG) if b["name"] == name), None)


@pytest.fixture
def foreign_account(azure):
    """A storage account someone else made in the group (with their tags), holding their share and file."""
    res, _, _, st, _ = clients(azure)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    st.storage_accounts.begin_create(RG, ACCOUNT, {"location": "eastus", "sku": {"name": "Standard_LRS"},
                                                   "kind": "StorageV2", "tags": THEIR_TAGS}).result()
    st.file_shares.create(RG, ACCOUNT, "theirs", {})
    share_client(azure, ACCOUNT, "theirs").get_file_client("data.csv").upload_file(b"a,b\n1,2\n")
    return json.dumps(resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT), sort_keys=True)


@pytest.fixture
def roomy_quota(azure):
    """GPUs to spare, where the quota is not what a test is about (one app's replica holds one T4)."""
    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=4)


def written(body):
    """What a PUT sets and keeps of a resource: its tags, its template and configuration, when it was written."""
    props = body["properties"]
    return json.dumps([body["tags"], props["template"], props["configuration"], body["systemData"]], sort_keys=True)


def fresh_clone(project, tmp_path):
    """A teammate's clone: the committed files only (no infra/inference.config.json, no .aitk/)."""
    clone = tmp_path / "clone"
    shutil.copytree(project / "infra" / "provision", clone / "infra" / "provision")
    return clone


@pytest.mark.parametrize("where", ["this clone", "a fresh clone"])
def test_teardown_keeps_a_storage_account_that_existed_and_the_share_aitk_did_not_make(azure, project, tmp_path,
                                                                                        foreign_account, where):
    provision(project, overrides={"storageAccountName": ACCOUNT})
    config = config_of(project)
    assert config["STORAGE_ACCOUNT_NAME"] == ACCOUNT
    account = resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT)
    assert json.dumps(account, sort_keys=True) == foreign_account  # not redeclared: tags and properties as they were
    ours = f"{config['ACA_APP_NAME']}"
    share = azure.state.get(f"{account['id']}/fileServices/default/shares/{config['FILE_SHARE_NAME']}")
    assert share["properties"]["metadata"] == {"aitk_nb_owner": ours}  # the toolkit's share in the reused account
    for rtype in ("Microsoft.App/containerApps", "Microsoft.App/managedEnvironments", "Microsoft.OperationalInsights/workspaces"):
        assert [b["tags"] for b in azure.state.of_type(rtype, RG)] == [{"aitk-nb-owner": ours, **(
            {"aitk-nb-environment-storage": "aitk-share"} if rtype.endswith("containerApps") else {})}]

    root = project if where == "this clone" else fresh_clone(project, tmp_path)
    kw = {} if where == "this clone" else {"target": "azure", "resource_group": RG}
    shown = []
    done = aitk_nb.teardown(yes=True, project=root, show=shown.append, **kw)
    plan = str(shown[0])
    assert re.search(rf"keep\s+Microsoft.Storage/storageAccounts/{ACCOUNT} — existed before provision", plan), plan
    assert re.search(rf"delete\s+Microsoft.Storage/storageAccounts/{ACCOUNT}/fileServices/default/shares/aitk-inference", plan)
    assert azure.state.files(ACCOUNT, "theirs") == {"data.csv": b"a,b\n1,2\n"}  # their share and file
    assert json.dumps(resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT), sort_keys=True) == foreign_account
    assert azure.state.get(f"{account['id']}/fileServices/default/shares/aitk-inference") is None  # ours: gone
    for rtype in ("Microsoft.App/containerApps", "Microsoft.App/managedEnvironments", "Microsoft.OperationalInsights/workspaces"):
        assert azure.state.of_type(rtype, RG) == [], rtype
    assert azure.state.of_type("Microsoft.Resources/resourceGroups")  # the group stays
    assert any("deleted" in d for d in done.done)


def test_an_app_only_teardown_leaves_the_rest_findable_by_the_full_one(azure, project, foreign_account):
    """Our share in a reused account carries no tag (a share has metadata): after `--app-only` the full
    teardown still finds it, through the deployment record that the app-only one keeps."""
    provision(project, overrides={"storageAccountName": ACCOUNT})
    account = resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT)
    aitk_nb.teardown(app_only=True, yes=True, project=project, show=None)
    assert azure.state.of_type("Microsoft.App/containerApps", RG) == []
    assert azure.state.get(f"{account['id']}/fileServices/default/shares/aitk-inference")  # kept by --app-only
    aitk_nb.teardown(yes=True, project=project, show=None)
    assert azure.state.get(f"{account['id']}/fileServices/default/shares/aitk-inference") is None  # ours: gone
    assert azure.state.files(ACCOUNT, "theirs") == {"data.csv": b"a,b\n1,2\n"}
    assert json.dumps(resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT), sort_keys=True) == foreign_account


def test_teardown_shows_its_plan_and_acts_only_when_confirmed(azure, project, foreign_account, capsys):
    provision(project, overrides={"storageAccountName": ACCOUNT})
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "aitk_nb")
    with pytest.raises(UsageError, match=r"teardown not confirmed; nothing removed .*pass --yes"):
        shell.run_line_magic("aitk", f"teardown --project {project}")  # no stdin here
    out = capsys.readouterr().out
    assert "Teardown plan on the azure target" in out and f"{ACCOUNT} — existed before provision" in out
    assert azure.state.of_type("Microsoft.App/containerApps", RG)  # nothing removed
    shell.run_line_magic("aitk", f"teardown --project {project} --yes")
    assert not azure.state.of_type("Microsoft.App/containerApps", RG)
    assert resource(azure, "Microsoft.Storage/storageAccounts", ACCOUNT)


def test_what_another_app_made_is_not_claimed(azure, project, tmp_path):
    """Project A made the account; project B reuses it by name. B's teardown keeps it; A's deletes it."""
    provision(project, overrides={"storageAccountName": "aitkshared02", "acaAppName": "app-a"})
    other = fresh_clone(project, tmp_path)
    azure.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=2)  # room for the second app
    provision(other, overrides={"storageAccountName": "aitkshared02", "acaAppName": "app-b",
                                "acaEnvironmentName": "env-b", "acaLogAnalyticsName": "logs-b", "fileShareName": "share-b"})
    account = resource(azure, "Microsoft.Storage/storageAccounts", "aitkshared02")
    assert account["tags"] == {"aitk-nb-owner": "app-a"}  # B did not re-tag it
    shown = []
    aitk_nb.teardown(yes=True, project=other, show=shown.append)
    assert re.search(r"keep\s+Microsoft.Storage/storageAccounts/aitkshared02 — created by aitk-nb for another app \(app-a\)",
                     str(shown[0]))
    assert [b["name"] for b in azure.state.of_type("Microsoft.App/containerApps", RG)] == ["app-a"]
    assert azure.state.files("aitkshared02", config_of(project)["FILE_SHARE_NAME"]) is not None
    shown.clear()
    aitk_nb.teardown(yes=True, project=project, show=shown.append)
    assert resource(azure, "Microsoft.Storage/storageAccounts", "aitkshared02") is None


def test_a_storage_account_of_ours_holding_a_share_aitk_did_not_make_is_kept(azure, project):
    provision(project)
    config = config_of(project)
    st = clients(azure)[3]
    st.file_shares.create(RG, config["STORAGE_ACCOUNT_NAME"], "teammate", {})  # added later, by hand
    done = aitk_nb.teardown(yes=True, project=project, show=None)
    assert any("it holds what aitk-nb did not make for it: file share teammate" in d
               for w, d in done.card().rows if w == "keep")
    assert resource(azure, "Microsoft.Storage/storageAccounts", config["STORAGE_ACCOUNT_NAME"])
    assert azure.state.get(resource(azure, "Microsoft.Storage/storageAccounts", config["STORAGE_ACCOUNT_NAME"])["id"]
                           + f"/fileServices/default/shares/{config['FILE_SHARE_NAME']}") is None  # ours went


def test_a_container_app_aitk_did_not_make_is_never_overwritten(azure, roomy_quota, project):
    from azure_double.scenario import provision as make_resources

    make_resources(azure, resource_group=RG, app_name="their-app")
    res = clients(azure)[0]
    app = resource(azure, "Microsoft.App/containerApps", "their-app")
    res.tags.begin_create_or_update_at_scope(app["id"], {"properties": {"tags": {"team": "web"}}}).result()  # theirs: no mark of ours
    before = written(resource(azure, "Microsoft.App/containerApps", "their-app"))
    azure.clear_requests()
    with pytest.raises(AitkError, match=r"acaAppName 'their-app': a container app of that name exists in rg-aitk and was not "
                                        r"made by aitk-nb .*set acaAppName in infra/provision/inference.parameters.json"):
        provision(project, overrides={"acaAppName": "their-app"})
    assert puts(azure, DEPLOYMENT_PUT) == []
    assert written(resource(azure, "Microsoft.App/containerApps", "their-app")) == before


# -- the API key ---------------------------------------------------------------------------------------
def api_key(project):
    return aitk_nb.endpoint(project=project, fetch=False).api_key()


def test_a_second_clone_keeps_the_api_key(azure, roomy_quota, project, tmp_path):
    provision(project)
    key = api_key(project)
    clone = fresh_clone(project, tmp_path)
    provision(clone)  # no config here: the app is found in Azure
    assert api_key(clone) == key


def test_a_key_that_cannot_be_read_stops_provision_and_changes_nothing(azure, roomy_quota, project):
    provision(project)
    key = api_key(project)
    azure.deny("Microsoft.App/containerApps/listSecrets/action")
    azure.clear_requests()
    with pytest.raises(AitkError) as e:
        provision(project, overrides={"defaultCommands": ["cd /mount/aitk-nb/$CONTAINER_APP_NAME", "bash inference_app/start.sh --changed"]})
    message = str(e.value)
    assert "\n" not in message
    assert "Microsoft.App/containerApps/listSecrets/action" in message and "--rotate-key" in message
    assert puts(azure, DEPLOYMENT_PUT) == []
    azure.allow()
    assert api_key(project) == key


def test_rotate_key_gives_a_new_key_and_says_what_clients_must_update(azure, roomy_quota, project):
    provision(project)
    old = api_key(project)
    done = provision(project, rotate_key=True)
    new = api_key(project)
    assert new and new != old
    assert any("rotated" in n and "old key now get 401" in n for n in done.notes)
    assert "rotated" in str(done)
    assert_no_secret(azure, str(done), *done.notes)  # the card says a key changed, never the key
    aitk_nb.endpoint(project=project).wait(60, progress=False)  # the replica restarted to take the new secret
    url = config_of(project)["ACA_APP_ENDPOINT"] + "/v1/models"
    verify = azure.client_ssl_context()
    assert httpx.get(url, headers={"Authorization": f"Bearer {old}"}, verify=verify).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Bearer {new}"}, verify=verify).status_code == 200


# -- asking before changing what exists --------------------------------------------------------------------
CHANGED = ["echo changed", "cd /mount/aitk-nb/$CONTAINER_APP_NAME", "bash inference_app/start.sh"]


def app_args(double):
    return double.state.of_type("Microsoft.App/containerApps", RG)[0]["properties"]["template"]["containers"][0]["args"]


def test_a_plan_that_modifies_what_exists_is_asked_about(azure, roomy_quota, project):
    provision(project)
    azure.clear_requests()
    with pytest.raises(AitkError, match=r"provision would change resources that exist already \(Modify "
                                        r"Microsoft.App/containerApps/.*\); nothing was changed: pass --yes"):
        provision(project, overrides={"defaultCommands": CHANGED})  # stdin is not a terminal here: refused
    assert puts(azure, DEPLOYMENT_PUT) == []

    asked = []
    op = aitk_nb.begin_provision("azure", project=project, resource_group=RG, progress=False,
                                 overrides={"location": "eastus", "defaultCommands": CHANGED},
                                 confirm=lambda q: asked.append(q) or True)
    op.result(timeout=120)
    assert "Modify Microsoft.App/containerApps/" in asked[0] and "echo changed" in asked[0]
    assert_no_secret(azure, asked[0])  # the question shows the app's changes, not its secrets
    assert app_args(azure) == ["; ".join(CHANGED)]

    background = aitk_nb.begin_provision("azure", project=project, resource_group=RG, progress=False,
                                         overrides={"location": "eastus"})  # no one to ask: refused
    background.wait(120)
    with pytest.raises(AitkError, match="pass --yes"):
        background.result()
    provision(project, yes=True)  # --yes: applied without a question
    assert app_args(azure) == ["cd /mount/aitk-nb/$CONTAINER_APP_NAME; bash inference_app/start.sh"]


# -- an interrupted provision -------------------------------------------------------------------------------
def interrupt_during_deployment(monkeypatch, project):
    from aitk_nb.azure import deployment

    real = deployment._report_operations

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # the user stops the cell while the deployment runs

    monkeypatch.setattr(deployment, "_report_operations", interrupted)
    with pytest.raises(KeyboardInterrupt):
        provision(project)
    monkeypatch.setattr(deployment, "_report_operations", real)


def test_an_interrupted_provision_with_changed_parameters_deploys_the_change(azure, roomy_quota, project, monkeypatch):
    azure.resource_seconds = 0.3
    interrupt_during_deployment(monkeypatch, project)
    saved = json.loads((project / ".aitk/azure/deployment.json").read_text())
    assert len(saved["request"]) == 64  # the request's SHA-256 beside the token
    running = next(iter(azure.mgmt.deployments.items.values()))
    key = running.props["parameters"]["apiKey"]["value"]  # the key generated for that request
    assert all(key.encode() not in f.read_bytes() for f in project.rglob("*") if f.is_file())  # not kept in clear
    provision(project, overrides={"defaultCommands": CHANGED}, yes=True)
    assert app_args(azure) == ["; ".join(CHANGED)]  # the new request, not the resumed old one
    assert len(puts(azure, DEPLOYMENT_PUT)) == 2  # the earlier deployment ran to its end, then the new one


def test_cancel_previous_cancels_the_earlier_deployment_then_deploys(azure, roomy_quota, project, monkeypatch):
    azure.resource_seconds = 0.5
    interrupt_during_deployment(monkeypatch, project)
    provision(project, overrides={"defaultCommands": CHANGED}, cancel_previous=True, yes=True)
    assert [r.status for r in azure.requests if r.method == "POST" and "/cancel?" in r.path] == [204]
    assert app_args(azure) == ["; ".join(CHANGED)]


# -- the GPU quota -----------------------------------------------------------------------------------------
def test_an_app_running_at_the_gpu_quota_re_provisions(azure, project, tmp_path):
    provision(project)  # eastus has one serverless T4: the app's running replica holds it
    provision(project, overrides={"defaultCommands": CHANGED}, yes=True)
    assert app_args(azure) == ["; ".join(CHANGED)]  # re-provisioned: the app's own GPU did not count as used
    other = fresh_clone(project, tmp_path)
    with pytest.raises(AitkError, match=r"GPU quota short in eastus: .* has 0 of 1 free"):
        provision(other, overrides={"acaAppName": "second-app"})  # another app: the GPU is not its own


def test_teardown_from_a_fresh_clone_of_a_group_that_does_not_exist_deletes_nothing(azure, project):
    done = aitk_nb.teardown(yes=True, project=project, target="azure", resource_group="rg-never-made", show=None)
    assert done.card().rows == [("keep", "resource group rg-never-made — does not exist (nothing to delete)")]
