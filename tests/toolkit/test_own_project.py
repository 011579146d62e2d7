"""aitk-nb in a project of the user's own (issue 16, items 1-3): an empty folder, a folder with only what
AI Toolkit's fine-tuning left, `init`, and AI Toolkit's own inference files. The local target's
provision makes no process, so these run fast; the wheel itself is tests/package/test_wheel.py."""
import json
import shutil
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from aitk_nb import packaged
from aitk_nb.cli import main
from aitk_nb.errors import ConfigError, ConfirmationError
from aitk_nb.scaffold import init
from aitk_nb.verbs import provision
from inference_app.contract import start_commands

# copies of ../shared's examples of what AI Toolkit leaves in a project (the repository carries what its
# tests read: a clone's CI need not have shared/ at any one path)
EXAMPLES = Path(__file__).parent / "data" / "aitk-projects"
FINETUNING_EXAMPLE = EXAMPLES / "aitk-finetuning-example"
INFERENCE_EXAMPLE = EXAMPLES / "aitk-inference-example"
TEMPLATE, BICEP, PARAMETERS = ("infra/provision/inference.json", "infra/provision/inference.bicep",
                               "infra/provision/inference.parameters.json")
# AI Toolkit's Bicep is not reproduced in shared/ (its README says so): a stand-in with its
# shape (its own server's image, probes on `/`, no owner tag) and none of aitk-nb's markers
TOOLKIT_BICEP = """param location string = resourceGroup().location
param defaultCommands array
resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: acaAppName
  location: location
  properties: {
    template: { containers: [ { image: 'pytorch/pytorch', command: [ 'bash', '-c', join(defaultCommands, '; ') ] } ] }
  }
}
output ACA_APP_ENDPOINT string = app.properties.configuration.ingress.fqdn
"""


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def copy_example(example: Path, root: Path) -> Path:
    shutil.copytree(example / "infra", root / "infra")
    return root


@pytest.fixture
def empty(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "mine"
    root.mkdir()
    monkeypatch.chdir(root)
    return root


def test_the_packaged_files_are_the_repositorys_one_copy():
    # one copy each: in a checkout the packaged defaults are the repository's own files
    from helpers import REPO

    for relative in packaged.SHIPPED:
        assert packaged.path(relative) == REPO / relative and packaged.path(relative).exists()
    # an sdist carries them too: MANIFEST.in names each (a file added to SHIPPED alone would be left out)
    manifest = (REPO / "MANIFEST.in").read_text().split()
    assert all(relative in manifest for relative in packaged.SHIPPED), manifest


def test_provision_in_an_empty_folder_uses_the_packaged_files_and_says_so(empty):
    result = provision("local", progress=False)
    config = json.loads((empty / "infra/inference.config.json").read_text())
    assert config["TARGET"] == "local" and config["ACA_APP_ENDPOINT"].startswith("http://127.0.0.1:")
    notes = "\n".join(result.notes)
    assert f"no infra/ folder in {empty} or above: the project is this folder" in notes
    assert f"template: {packaged.path(TEMPLATE)} (packaged default)" in notes
    assert f"parameters: {packaged.path(PARAMETERS)} (packaged default)" in notes
    assert "`%aitk init` writes the template and parameters into the project" in notes
    # nothing but the config and the toolkit's state: the packaged files stay packaged
    assert sorted(p.name for p in empty.iterdir()) == [".aitk", "infra"]
    assert [p.name for p in (empty / "infra").iterdir()] == ["inference.config.json"]


def test_the_cli_provisions_an_empty_folder(empty, capsys):
    assert main(["provision", "--target", "local"]) == 0
    out = capsys.readouterr().out
    assert "Provisioned the local target" in out and "(packaged default)" in out
    assert main(["status"]) == 0  # the folder is now a project: later verbs find it


def test_provision_where_only_the_finetuning_files_are(tmp_path, monkeypatch):
    root = copy_example(FINETUNING_EXAMPLE, tmp_path / "ft")
    before = snapshot(root)
    monkeypatch.chdir(root)
    result = provision("local", progress=False)
    assert (root / "infra/inference.config.json").exists()
    notes = "\n".join(result.notes)
    assert "(packaged default)" in notes and "the project is this folder" not in notes
    after = snapshot(root)
    assert {k: after[k] for k in before} == before  # the fine-tuning's files are untouched


def test_provision_with_only_the_finetuning_files_as_a_magic(shell, tmp_path, monkeypatch):
    root = copy_example(FINETUNING_EXAMPLE, tmp_path / "ft")
    monkeypatch.chdir(root / "infra")  # below the root: found upward
    result = shell.run_line_magic("aitk", "provision --target local")
    assert result.config_path == root / "infra/inference.config.json"


def test_init_writes_what_a_user_edits_and_shows_it(empty):
    result = init()
    assert result.written == [TEMPLATE, BICEP, PARAMETERS, "notebooks/remote_inference.ipynb"]
    for relative in result.written:
        assert (empty / relative).read_bytes() == packaged.path(relative).read_bytes()
    assert (empty / ".gitignore").read_text() == ".aitk/\ninfra/inference.config.json\n"
    text = str(result)
    assert "infra/provision/inference.bicep" in text and "written" in text and ".aitk/" in text
    # the project's own files now win
    assert "template: infra/provision/inference.json (project)" in provision("local", progress=False).notes


def test_init_never_overwrites(empty):
    (empty / "infra/provision").mkdir(parents=True)
    (empty / TEMPLATE).write_text('{"edited": true}')
    (empty / ".gitignore").write_text("build/\n/.aitk")  # one of the two lines, spelled its own way, no newline
    result = init()
    assert (empty / TEMPLATE).read_text() == '{"edited": true}'
    assert dict(result.steps)[TEMPLATE] == "kept (exists)"
    assert (empty / ".gitignore").read_text() == "build/\n/.aitk\ninfra/inference.config.json\n"
    before = snapshot(empty)
    again = init()
    assert snapshot(empty) == before and again.written == []
    assert dict(again.steps)[".gitignore"].startswith("kept")


def test_init_as_a_magic_and_from_the_cli(shell, empty, capsys):
    result = shell.run_line_magic("aitk", f"init --project {empty}")
    assert len(result.written) == 4
    assert main(["init"]) == 0
    assert "kept (exists)" in capsys.readouterr().out


def test_toolkit_parameters_are_refused_before_anything_is_made(tmp_path, monkeypatch, shell):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    before = snapshot(root)
    monkeypatch.chdir(root)
    with pytest.raises(ConfigError) as e:
        provision("local", progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{root / PARAMETERS}: defaultCommands starts AI Toolkit's own server "
                          "('python3 ./gradio_chat.py'), not aitk-nb's; nothing was made")
    assert "`%aitk init --migrate`" in msg
    # the Azure target too, before any request (no credential or endpoint is needed to be refused)
    with pytest.raises(ConfigError, match="defaultCommands starts AI Toolkit's own server"):
        provision("azure", resource_group="rg-phi3-finetune", progress=False)
    with pytest.raises(UsageError, match=r"^.*inference.parameters.json: defaultCommands starts AI Toolkit"):
        shell.run_line_magic("aitk", "provision --target local")
    assert snapshot(root) == before and not (root / ".aitk").exists()
    # commands given for this run instead of the file's are what is checked
    assert provision("local", progress=False, overrides={"defaultCommands": start_commands()})


def test_cli_names_the_migration_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project"))
    assert main(["provision", "--target", "local"]) == 1
    err = capsys.readouterr().err
    assert "defaultCommands starts AI Toolkit's own server" in err and "`aitk init --migrate`" in err


def test_init_keeps_toolkit_parameters_and_offers_migration(tmp_path):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    original = (root / PARAMETERS).read_bytes()
    result = init(project=root)
    assert (root / PARAMETERS).read_bytes() == original
    kept = dict(result.steps)[PARAMETERS]
    assert "AI Toolkit's server ('python3 ./gradio_chat.py'); `%aitk init --migrate` switches it" in kept
    assert TEMPLATE in result.written  # what it lacked is written


def test_migration_asks_keeps_a_backup_and_carries_the_names_over(tmp_path):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    original = (root / PARAMETERS).read_bytes()
    before = snapshot(root)
    asked = []
    with pytest.raises(ConfirmationError, match="not confirmed; nothing changed .pass --yes"):
        init(project=root, migrate=True, confirm=lambda q: asked.append(q) or False)
    assert snapshot(root) == before  # refused: not even the template was written
    assert "gradio_chat.py" in asked[0] and "inference.parameters.json.bak" in asked[0]

    result = init(project=root, migrate=True, confirm=lambda q: True)
    backup = root / "infra/provision/inference.parameters.json.bak"
    assert backup.read_bytes() == original
    assert "the old file is infra/provision/inference.parameters.json.bak" in dict(result.steps)[PARAMETERS]
    new = json.loads((root / PARAMETERS).read_text())["parameters"]
    packaged_defaults = json.loads(packaged.path(PARAMETERS).read_text())["parameters"]
    assert new["defaultCommands"] == packaged_defaults["defaultCommands"]
    assert new["location"] == {"value": "westus3"}  # carried over
    assert new["maximumInstanceCount"] == packaged_defaults["maximumInstanceCount"]  # what it lacked, as the default
    old = json.loads(original)["parameters"]
    assert {k: new[k] for k in old if k != "defaultCommands"} == {k: v for k, v in old.items() if k != "defaultCommands"}
    # the migrated project provisions; a second migration finds nothing to do and keeps the backup
    assert provision("local", project=root, progress=False)
    init(project=root, migrate=True, yes=True)
    assert backup.read_bytes() == original and not backup.with_name(backup.name + ".1").exists()


def test_migrating_a_file_that_cannot_be_read_names_it_and_writes_nothing(tmp_path):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    (root / PARAMETERS).write_text('{"parameters": {"defaultCommands": {"value": ["python3 ./gradio_chat.py"]},}}')
    before = snapshot(root)
    with pytest.raises(ConfigError, match=r"inference.parameters.json is not valid JSON \(line 1"):
        init(project=root, migrate=True, yes=True)
    assert snapshot(root) == before


def test_migration_with_yes_and_a_backup_that_exists(tmp_path):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    taken = root / "infra/provision/inference.parameters.json.bak"
    taken.write_text("someone's own backup")
    init(project=root, migrate=True, yes=True, confirm=lambda q: pytest.fail("asked despite --yes"))
    assert taken.read_text() == "someone's own backup"
    assert "gradio_chat.py" in (root / "infra/provision/inference.parameters.json.bak.1").read_text()


def test_migration_without_anyone_to_ask_changes_nothing(shell, tmp_path, monkeypatch):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    before = snapshot(root)
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    with pytest.raises(UsageError, match="not confirmed; nothing changed"):
        shell.run_line_magic("aitk", f"init --migrate --project {root}")
    assert snapshot(root) == before


def test_toolkit_bicep_is_never_overwritten_or_used(tmp_path, monkeypatch):
    root = copy_example(INFERENCE_EXAMPLE, tmp_path / "aitk-project")
    (root / BICEP).write_text(TOOLKIT_BICEP)
    result = init(project=root, migrate=True, yes=True)
    assert (root / BICEP).read_text() == TOOLKIT_BICEP
    assert dict(result.steps)[BICEP].startswith("kept: not aitk-nb's template (AI Toolkit's)")
    notes = provision("local", project=root, progress=False).notes
    assert ("infra/provision/inference.bicep is not aitk-nb's template (AI Toolkit's, by its content): left as it is, "
            "not used; provision deploys infra/provision/inference.json (project)") in notes
    assert (root / BICEP).read_text() == TOOLKIT_BICEP


def test_a_project_option_may_name_an_empty_folder_but_not_a_missing_one(tmp_path, shell):
    assert provision("local", project=tmp_path, progress=False).config_path == tmp_path / "infra/inference.config.json"
    with pytest.raises(UsageError, match=r"--project .*nowhere: no such folder"):
        shell.run_line_magic("aitk", f"status --project {tmp_path / 'nowhere'}")


def test_the_provision_form_in_an_empty_folder(empty):
    from aitk_nb.widgets.provision import ProvisionForm
    from helpers import free_port

    form = ProvisionForm(port=free_port())  # reads the packaged defaults
    assert form.fields["defaultCommands"].value == "\n".join(start_commands())
    assert "(the packaged defaults until saved)" in form.widget.children[0].value
    form.provision_button.click()
    form.runner.wait(60)
    assert (empty / "infra/inference.config.json").exists() and not (empty / PARAMETERS).exists()
    assert "(packaged default)" in "\n".join(form.result.notes)
    form.save()  # Save writes the project's own file, never the packaged one
    assert json.loads((empty / PARAMETERS).read_text())["parameters"]["defaultCommands"]["value"] == start_commands()
