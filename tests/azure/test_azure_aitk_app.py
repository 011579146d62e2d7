"""An inference app AI Toolkit provisioned (issue 16, item 4), made in the double the way AI Toolkit's own
template makes it: status, endpoint and logs work from its six-key config (a bare-host ACA_APP_ENDPOINT);
deploy sees that the app runs another server before anything is sent, and switches it in place only when
told (--yes), else stops with one line naming the command; teardown keeps what AI Toolkit made unless the
app was adopted, and then removes only the app and its folder on the share."""
import json
import re
import subprocess
import sys

import pytest
from IPython.core.error import UsageError

import aitk_nb
from aitk_nb.errors import ConfirmationError
from azure_double import scenario
from azure_double.clients import clients

pytestmark = pytest.mark.timeout(300)
RG = "rg-phi3-finetune"


@pytest.fixture
def aitk(azure, project):
    """The app AI Toolkit made, and the project's files as AI Toolkit left them (no aitk-nb config)."""
    made = scenario.aitk_inference(azure, RG)
    made.write_project_files(project)
    return made


def app_body(azure, name):
    return next(b for b in azure.state.of_type("Microsoft.App/containerApps", RG) if b["name"] == name)


def written(body):
    """What a PUT or PATCH sets of an app: its tags, template, configuration and when it was written."""
    props = body["properties"]
    return json.dumps([body.get("tags"), props["template"], props["configuration"], body["systemData"]], sort_keys=True)


def share_files(azure, made):
    return azure.state.files(made.config["STORAGE_ACCOUNT_NAME"], made.config["FILE_SHARE_NAME"])


def test_status_endpoint_and_logs_work_from_ai_toolkit_s_six_key_config(azure, project, aitk):
    host = aitk.config["ACA_APP_ENDPOINT"]
    assert not host.startswith("https://")  # the bare host name AI Toolkit writes
    app = aitk.config["ACA_APP_NAME"]
    status = aitk_nb.status(project=project)
    assert status.app == app and status.endpoint == f"https://{host}" and status.replica.startswith("Running")
    endpoint = aitk_nb.endpoint(project=project)
    assert endpoint.url == f"https://{host}" and endpoint.min_replicas == 1
    azure.state.add_log(app, "Running on local URL:  http://0.0.0.0:7860")
    assert "Running on local URL" in str(aitk_nb.logs(project=project, tail=5))


def test_deploy_without_yes_stops_at_once_naming_the_switch_and_sends_nothing(azure, project, aitk, shell, monkeypatch):
    before = written(app_body(azure, aitk.config["ACA_APP_NAME"]))
    files = share_files(azure, aitk)
    azure.clear_requests()
    adapter = f"share:{aitk.adapter_path}"
    with pytest.raises(ConfirmationError) as e:
        aitk_nb.deploy([adapter], project=project, progress=False)
    message = str(e.value)
    assert "\n" not in message and "python3 ./gradio_chat.py" in message and "--yes" in message
    assert "nothing was sent or changed" in message
    asked = []
    with pytest.raises(ConfirmationError):  # asked first where someone can answer; "no" changes nothing
        aitk_nb.begin_deploy([adapter], project=project, progress=False, confirm=lambda q: asked.append(q) or False)
    assert "python3 ./gradio_chat.py" in asked[0] and "Switch it to aitk-nb's server in place" in asked[0]
    monkeypatch.chdir(project)
    with pytest.raises(UsageError) as magic:
        shell.run_line_magic("aitk", f"deploy --adapter {adapter}")
    assert f"%aitk deploy --yes" in str(magic.value)
    cli = subprocess.run([sys.executable, "-m", "aitk_nb.cli", "deploy", "--adapter", adapter], cwd=project,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert cli.returncode != 0 and "aitk deploy --yes" in cli.stderr, cli.stderr
    assert share_files(azure, aitk) == files  # nothing uploaded
    assert written(app_body(azure, aitk.config["ACA_APP_NAME"])) == before  # nor switched
    assert not [r for r in azure.requests if r.method in ("PUT", "PATCH", "DELETE") or "/restart" in r.path]


def test_deploy_yes_switches_the_app_in_place_and_serves_aitk_nb_s_server(azure, project, aitk):
    app = aitk.config["ACA_APP_NAME"]
    before = app_body(azure, app)
    result = aitk_nb.deploy([f"share:{aitk.adapter_path}"], project=project, progress=False, yes=True, timeout=120)
    assert result.health["status"] == "ok"  # aitk-nb's server answers /health (AI Toolkit's has none)
    assert result.endpoint == f"https://{aitk.config['ACA_APP_ENDPOINT']}"
    after = app_body(azure, app)
    assert after["id"] == before["id"]  # same app
    assert after["properties"]["configuration"]["ingress"]["fqdn"] == before["properties"]["configuration"]["ingress"]["fqdn"]
    container = after["properties"]["template"]["containers"][0]
    assert container["command"] == ["/bin/bash", "-c"]
    assert container["args"] == ["cd /mount/aitk-nb/$CONTAINER_APP_NAME; bash inference_app/start.sh"]
    assert {p["type"]: p["httpGet"]["path"] for p in container["probes"]} == {
        "Startup": "/live", "Readiness": "/health", "Liveness": "/live"}
    assert {e["name"]: e.get("secretRef") for e in container["env"]}["AITK_API_KEY"] == "aitk-api-key"
    assert after["properties"]["template"]["volumes"] == before["properties"]["template"]["volumes"]  # the share kept
    assert after["tags"]["aitk-nb-owner"] == app and after["tags"]["aitk-nb-adopted"]
    files = share_files(azure, aitk)
    assert files["inference/gradio_chat.py"] == b"import gradio  # AI Toolkit's server\n"
    assert not [p for p in files if p.startswith("inference/") and p.rsplit("/", 1)[-1] not in
                ("gradio_chat.py", "utils.py", "requirements.txt")]  # nothing written into AI Toolkit's folder
    adopted = json.loads(files[f"aitk-nb/{app}/adopted.json"])
    assert adopted["container"]["command"] == before["properties"]["template"]["containers"][0]["command"]
    assert json.loads(files[f"aitk-nb/{app}/settings.json"])["adapters"] == {"adapter": aitk.adapter_path}
    key = aitk_nb.endpoint(project=project).api_key()
    assert key and key not in json.dumps(after)


def test_teardown_keeps_what_ai_toolkit_made_unless_adopted(azure, project, aitk):
    app = aitk.config["ACA_APP_NAME"]
    plan = aitk_nb.teardown(project=project, show=None, yes=True)
    assert not [s for s in plan.steps if s.delete]
    assert app_body(azure, app)

    aitk_nb.deploy([f"share:{aitk.adapter_path}"], project=project, progress=False, yes=True, timeout=120)
    plan = aitk_nb.teardown(project=project, show=None, yes=True)
    deleted = {s.what for s in plan.steps if s.delete}
    assert deleted == {f"Microsoft.App/containerApps/{app}", f"folder aitk-nb/{app}/ on file share {aitk.config['FILE_SHARE_NAME']}"}
    assert "adopted" in next(s.why for s in plan.steps if s.delete)
    assert not azure.state.of_type("Microsoft.App/containerApps", RG)
    files = share_files(azure, aitk)
    assert not [p for p in files if p.startswith(f"aitk-nb/{app}/")]  # the folder deploy wrote: gone with the app
    assert {"inference/gradio_chat.py", f"{aitk.adapter_path}/adapter_config.json"} <= set(files)  # theirs: kept
    res, *_ = clients(azure)
    kinds = {r.type for r in res.resources.list_by_resource_group(RG)}
    assert {"Microsoft.Storage/storageAccounts", "Microsoft.App/managedEnvironments",
            "Microsoft.OperationalInsights/workspaces"} <= kinds
