"""The forms without a browser: set values, click buttons (`button.click()`), assert on the outcome.
ipywidgets runs headless here (no kernel: its comms are inert), as in ipywidgets' own tests. Long
actions run in the background: `click` waits for the form to show their outcome."""
import json

import pytest

import aitk_nb.verbs
from aitk_nb.errors import AitkError
from aitk_nb.widgets import in_notebook, set_azure_choices
from aitk_nb.widgets.deploy import DeployForm, find_adapters
from aitk_nb.widgets.model import parameter_fields
from aitk_nb.widgets.provision import AZURE_UNAVAILABLE, ProvisionForm
from aitk_nb.config import Parameters
from aitk_nb.operations import Operation
from aitk_nb.project import Project
from helpers import free_port


def click(form, button):
    """Press a button and wait until the form shows the outcome of what it started."""
    button.click()
    form.runner.wait(60)


def in_background(fn):
    """A stand-in for a `begin_*` verb: runs `fn` as an operation, as the real one does."""
    return lambda *a, **k: Operation.start("stand-in", lambda op: fn(*a, **k))


@pytest.fixture
def form(project):
    return ProvisionForm(project=project, port=free_port())


def params_file(project):
    return project / "infra/provision/inference.parameters.json"


def test_the_form_has_a_field_for_every_parameter(form):
    from dataclasses import fields

    assert list(form.fields) == [f.name for f in fields(Parameters) if f.name != "extra"]
    assert form.fields["defaultCommands"].value == "cd /mount/aitk-nb/$CONTAINER_APP_NAME\nbash inference_app/start.sh"
    assert form.fields["maximumInstanceCount"].value == 1
    assert form.fields["storageAccountName"].value == ""  # null: the template's default
    assert "lowercase letters and digits" in form.fields["storageAccountName"].tooltip  # the template's description
    assert form.errors() == {} and not form.provision_button.disabled


def test_a_bad_name_shows_its_rule_beside_the_field_and_blocks_the_buttons(form):
    form.fields["storageAccountName"].value = "My_Storage"
    assert form.messages["storageAccountName"].value.endswith("not a valid name: 3-24 lowercase letters and digits</span>")
    assert form.preview_button.disabled and form.provision_button.disabled and form.save_button.disabled
    form.fields["storageAccountName"].value = "mystorage01"
    assert "not a valid" not in form.messages["storageAccountName"].value
    assert form.messages["storageAccountName"].value.endswith(">set in the form</span>")  # where the value comes from
    form.fields["storageAccountName"].value = ""
    assert form.messages["storageAccountName"].value.endswith(">template default</span>")
    assert not form.provision_button.disabled
    form.fields["acaAppName"].value = "app--x"  # double hyphen
    assert "single hyphens" in form.messages["acaAppName"].value
    form.fields["acaAppName"].value = ""  # blank is the default again
    form.fields["defaultCommands"].value = "  \n "
    assert "at least one command" in form.messages["defaultCommands"].value and form.save_button.disabled


def test_save_writes_the_file_back_keeping_what_it_does_not_know(project):
    path = params_file(project)
    data = json.loads(path.read_text())
    data["parameters"]["futureKnob"] = {"value": {"a": 1}}
    data["parameters"]["acaAppName"]["metadata"] = {"note": "kept"}
    path.write_text(json.dumps(data))
    form = ProvisionForm(project=project)
    form.fields["maximumInstanceCount"].value = 3
    form.fields["defaultCommands"].value = "cd /mount/inference\n\nbash inference_app/start.sh --verbose\n"
    form.fields["acaAppName"].value = "my-app"
    form.save_button.click()
    saved = json.loads(path.read_text())
    assert saved["$schema"] == data["$schema"] and saved["contentVersion"] == "1.0.0.0"
    p = saved["parameters"]
    assert p["maximumInstanceCount"] == {"value": 3}
    assert p["defaultCommands"] == {"value": ["cd /mount/inference", "bash inference_app/start.sh --verbose"]}
    assert p["acaAppName"] == {"value": "my-app", "metadata": {"note": "kept"}}
    assert p["futureKnob"] == {"value": {"a": 1}} and p["storageAccountName"] == {"value": None}
    assert sorted(f.name for f in path.parent.iterdir()) == ["inference.bicep", "inference.json", "inference.parameters.json"]
    assert "saved" in form.message.value and form.result == path


def test_preview_shows_changes_and_changes_nothing(form, project):
    click(form, form.preview_button)
    assert form.runner.last_error is None, form.runner.last_error
    assert ("container app (record)", "create") in form.result.changes
    assert "nothing was changed" in form.message.value
    assert "aitk-changes" in form.output.outputs[0]["data"]["text/html"]  # the what-if table, in the form
    click(form, form.preview_button)
    assert len(form.output.outputs) == 1  # each action replaces what the last one showed
    assert not (project / "infra/inference.config.json").exists() and not (project / ".aitk").exists()


def test_provision_writes_the_config_and_the_button_is_disabled_while_it_runs(form, project, monkeypatch):
    seen = []
    real = aitk_nb.verbs.begin_provision

    def spy(*args, **kwargs):
        seen.append((form.provision_button.disabled, form.preview_button.disabled, form.save_button.disabled))
        return real(*args, **kwargs)

    monkeypatch.setattr(aitk_nb.verbs, "begin_provision", spy)
    port = free_port()
    form.port.value = port
    form.fields["maximumInstanceCount"].value = 2
    click(form, form.provision_button)
    assert seen == [(True, True, True)]
    assert not form.provision_button.disabled and not form.preview_button.disabled  # re-enabled in finally
    config = json.loads((project / "infra/inference.config.json").read_text())
    assert config["ACA_APP_ENDPOINT"] == f"http://127.0.0.1:{port}" == form.result.endpoint
    assert "provisioned the local target" in form.message.value
    assert json.loads(params_file(project).read_text())["parameters"]["maximumInstanceCount"] == {"value": 1}  # not saved


def test_a_user_error_is_one_line_and_a_bug_keeps_its_traceback(form, monkeypatch):
    def user_error(*a, **k):
        raise AitkError("port 7860 on 127.0.0.1 is in use by another process; stop it")

    monkeypatch.setattr(aitk_nb.verbs, "begin_provision", in_background(user_error))
    click(form, form.provision_button)
    assert "AitkError: port 7860 on 127.0.0.1 is in use" in form.message.value
    assert form.output.outputs == ()
    assert not form.provision_button.disabled

    def bug(*a, **k):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(aitk_nb.verbs, "begin_provision", in_background(bug))
    click(form, form.provision_button)
    assert "unexpected error: ZeroDivisionError: oops; traceback below" in form.message.value
    assert "Traceback (most recent call last)" in form.output.outputs[0]["text"]
    assert not form.provision_button.disabled and isinstance(form.runner.last_error, ZeroDivisionError)


def test_azure_without_an_account_provider_says_so_and_offers_nothing(form, monkeypatch):
    monkeypatch.setattr(aitk_nb.widgets.providers, "_factory", None)
    called = []
    monkeypatch.setattr(aitk_nb.verbs, "begin_provision", lambda *a, **k: called.append(1))
    form.target.value = "azure"
    assert AZURE_UNAVAILABLE in form.messages["target"].value
    assert form.preview_button.disabled and form.provision_button.disabled
    assert not form.save_button.disabled  # the parameters file can still be edited and saved
    assert form.subscription.layout.display == "none" and form.port.layout.display == "none"
    form.provision_button.click()  # disabled buttons do nothing
    assert called == []
    form.target.value = "local"
    assert form.messages["target"].value == "" and not form.provision_button.disabled


class FakeChoices:
    """A test double of the account: what the pickers show comes from here."""

    def subscriptions(self):
        return [("Dev (0000-1111)", "0000-1111"), ("Prod (2222-3333)", "2222-3333")]

    def resource_groups(self, subscription):
        return [("rg-a (swedencentral)", "rg-a")] if subscription == "0000-1111" else []

    def locations(self, subscription):
        return [("Sweden Central", "swedencentral"), ("West US 3", "westus3")]

    def gpu_profiles(self, subscription, location):
        return [("NVIDIA T4, serverless", "Consumption-GPU-NC8as-T4")] + (
            [("NVIDIA A100, serverless", "Consumption-GPU-NC24-A100")] if location == "westus3" else [])


def test_azure_pickers_come_from_the_provider_and_a_new_group_is_allowed(project, monkeypatch):
    calls = []
    monkeypatch.setattr(aitk_nb.verbs, "begin_provision", in_background(lambda *a, **k: calls.append((a, k))))
    set_azure_choices(lambda credential: FakeChoices())
    try:
        form = ProvisionForm(project=project, target="azure")
    finally:
        set_azure_choices(aitk_nb.widgets.providers._account_choices)
    assert [v for _, v in form.subscription.options] == ["0000-1111", "2222-3333"]
    assert form.subscription.value == "0000-1111" and form.resource_group.options == ("rg-a",)
    assert "pick or type a resource group" in form.messages["resource_group"].value and form.provision_button.disabled
    form.resource_group.value = "rg-new"
    assert "new: it will be created" in form.messages["resource_group"].value and not form.provision_button.disabled
    form.fields["location"].value = "westus3"
    assert [v for _, v in form.gpu_profile.options] == ["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"]
    form.gpu_profile.value = "Consumption-GPU-NC24-A100"
    click(form, form.preview_button)
    (args, kwargs), = calls
    assert args == ("azure",) and kwargs["what_if"] is True
    assert (kwargs["subscription"], kwargs["resource_group"]) == ("0000-1111", "rg-new")
    assert kwargs["overrides"]["gpuWorkloadProfileType"] == "Consumption-GPU-NC24-A100"
    assert kwargs["overrides"]["location"] == "westus3"


def test_fields_are_generated_from_the_dataclass():
    specs = {s.name: s.kind for s in parameter_fields()}
    assert specs == {"defaultCommands": "commands", "maximumInstanceCount": "count", "location": "location",
                     "storageAccountName": "name", "fileShareName": "name", "acaEnvironmentName": "name",
                     "acaEnvironmentStorageName": "name", "acaAppName": "name", "acaLogAnalyticsName": "name"}


def test_in_notebook_only_with_a_kernel_front_end():
    class ZMQInteractiveShell:
        pass

    class TerminalInteractiveShell:
        pass

    assert in_notebook(ZMQInteractiveShell()) and not in_notebook(TerminalInteractiveShell())
    assert not in_notebook()  # pytest: no IPython at all


def test_the_magic_shows_a_form_only_without_options_in_a_notebook(project, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    import aitk_nb.magics

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aitk_nb")
    monkeypatch.chdir(project)
    monkeypatch.setattr(aitk_nb.magics, "_in_notebook", lambda shell: True)
    assert isinstance(ip.run_line_magic("aitk", "provision"), ProvisionForm)
    assert isinstance(ip.run_line_magic("aitk", "deploy"), DeployForm)
    result = ip.run_line_magic("aitk", f"provision --target local --port {free_port()} --what-if")  # options: the verb
    assert result.what_if


def make_adapter(folder, base="org/base"):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def test_deploy_form_offers_the_adapters_it_finds(project, tmp_path, monkeypatch):
    monkeypatch.setenv("AITK_CACHE", str(tmp_path / "cache"))
    nested = make_adapter(project / "models/run-1/checkpoint-10")
    cached = make_adapter(tmp_path / "cache/models/demo-facts")
    given = make_adapter(tmp_path / "elsewhere/my-lora")
    (project / "models/not-an-adapter").mkdir()
    assert find_adapters(Project(project), [given]) == [given, nested, cached]
    form = DeployForm(project=project, adapters=[given])
    assert [c.description for c in form.checks] == ["my-lora", "checkpoint-10", "demo-facts"]
    assert form.selected() == [str(given)]  # what was given is ticked
    assert DeployForm(project=project).selected() == [str(nested)]  # else the first found


def test_deploy_form_lists_the_adapters_on_the_share_beside_the_local_ones(project, tmp_path, monkeypatch):
    monkeypatch.setenv("AITK_CACHE", str(tmp_path / "cache"))
    local = make_adapter(project / "models/mine")
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    share = project / ".aitk/local/shares" / json.loads((project / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    make_adapter(share / "models/finetune-run-1/checkpoint-20/adapter")  # as the fine-tuning left them
    make_adapter(share / "models/finetune-run-2/adapter")
    (share / "models/finetune-run-2/logs").mkdir()
    make_adapter(share / "models/mine")  # the copy an earlier deploy sent (its mark says so): not offered twice
    (share / "models/mine/.aitk-deployed").write_text("")
    form = DeployForm(project=project)
    assert form.adapters == [str(local), "share:models/finetune-run-1/checkpoint-20/adapter",
                             "share:models/finetune-run-2/adapter"]
    assert [c.description for c in form.checks] == ["mine", "adapter", "adapter"]
    assert "share:models/finetune-run-2/adapter" in form.grid[2, 1].value and not form.share_note
    calls = []
    monkeypatch.setattr(aitk_nb.verbs, "begin_deploy", in_background(lambda adapters, model, **kw: calls.append(adapters)))
    form.checks[0].value, form.checks[2].value = False, True
    click(form, form.deploy_button)
    assert calls == [["share:models/finetune-run-2/adapter"]]


def test_deploy_button_deploys_the_ticked_adapters(project, tmp_path, monkeypatch):
    monkeypatch.setenv("AITK_CACHE", str(tmp_path / "cache"))
    _, b = make_adapter(project / "models/a"), make_adapter(project / "models/b")
    calls = []

    class Result:
        endpoint, variants = "http://127.0.0.1:1", ["base", "b"]

    def fake_deploy(adapters, model, **kwargs):
        calls.append((adapters, model, kwargs, form.deploy_button.disabled))
        return Result()

    monkeypatch.setattr(aitk_nb.verbs, "begin_deploy", in_background(fake_deploy))
    form = DeployForm(project=project)
    form.checks[0].value, form.checks[1].value = False, True
    form.model.value = " org/other "
    form.wait.value = False
    click(form, form.deploy_button)
    (adapters, model, kwargs, disabled), = calls
    assert adapters == [str(b)] and model == "org/other" and disabled
    assert kwargs["restart"] is None and kwargs["wait"] is False  # None: when something changed
    assert "deployed: http://127.0.0.1:1 serves base, b" in form.message.value and not form.deploy_button.disabled
    form.restart.value = False
    assert form.wait.disabled


def test_deploy_errors_show_in_the_form(project, tmp_path, monkeypatch):
    monkeypatch.setenv("AITK_CACHE", str(tmp_path / "cache"))
    make_adapter(project / "models/a")
    form = DeployForm(project=project)
    click(form, form.deploy_button)  # not provisioned: the verb's own message, one line
    assert "NotProvisionedError: no inference.config.json yet; run `%aitk provision` first" in form.message.value


def test_status_card_links_the_endpoint_and_badges_the_replica():
    from aitk_nb.results import Status
    from inference_app.contract import DeployedSettings

    html = Status("local", "http://127.0.0.1:7860", "aitk-app", "running", {"status": "ok"},
                  DeployedSettings("model-cache/m", {"demo-facts": "models/demo-facts"}), "2026-01-01T00:00:00+00:00")._repr_html_()
    assert "<a href='http://127.0.0.1:7860' target='_blank'>http://127.0.0.1:7860</a>" in html
    assert "#e6f4ea" in html and ">running</span>" in html and "demo-facts" in html and "last deploy" in html


def test_each_widget_has_its_own_layout_so_hiding_a_row_hides_only_that_row(form):
    # a Layout shared between widgets shares `display`: hiding the azure rows hid every field in JupyterLab
    layouts = [id(c.layout) for grid in form.grids for c in grid.children]
    assert len(set(layouts)) == len(layouts)
    shown = {k for k, m in form.messages.items() if form._labels[k].layout.display != "none"}
    assert shown == {"target", "port", *form.fields}
    assert all(f.layout.display != "none" for f in [form.port, *form.fields.values()])
    assert form.subscription.layout.display == "none" and form.gpu_profile.layout.display == "none"


def test_deploy_runs_in_the_background_with_progress_and_a_cancel_button(project, tmp_path, monkeypatch):
    """The click returns while the deploy runs (the kernel stays free); the bar follows the bytes sent;
    Cancel stops it between files and says what that left; the buttons come back in `finally`."""
    import os
    import time

    monkeypatch.setenv("AITK_CACHE", str(tmp_path / "cache"))
    aitk_nb.verbs.provision("local", project=project, port=free_port(), progress=False)
    model = tmp_path / "big-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    for i in range(40):
        (model / f"shard-{i:02d}.bin").write_bytes(os.urandom(2 * 2**20))
    make_adapter(project / "models/a", base=str(model))
    form = DeployForm(project=project)
    assert form.runner.cancel_button.disabled  # nothing to cancel yet
    form.restart.value = False
    form.deploy_button.click()  # returns at once: the operation runs in its own thread
    op = form.runner.operation
    assert op is not None and not op.done() and form.deploy_button.disabled and not form.runner.cancel_button.disabled
    deadline = time.monotonic() + 60
    while form.runner.bar.value <= 0.2:  # live progress, read from this (the kernel's) thread meanwhile
        assert time.monotonic() < deadline and not op.done(), form.message.value
        time.sleep(0.01)
    assert "deploying: uploading" in form.message.value
    form.runner.cancel_button.click()
    form.runner.wait(60)
    assert op.status() == "Canceled" and form.runner.bar.bar_style == "danger"
    assert "OperationCancelledError: deploy cancelled: stopped between files" in form.message.value
    assert not form.deploy_button.disabled and form.runner.cancel_button.disabled

    click(form, form.deploy_button)  # again: it finishes what was left
    assert form.runner.last_error is None, form.message.value
    assert "deployed: http://127.0.0.1:" in form.message.value and form.runner.bar.bar_style == "success"
    assert form.result.synced and "Deployed to the local target" in form.output.outputs[-1]["data"]["text/plain"]
