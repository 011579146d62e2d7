"""The local target mirrors the share layout of several apps (issue 16, item 5): the app's code and
settings in aitk-nb/<app>/ on the share, the replica started in that folder through CONTAINER_APP_NAME
(as Container Apps sets it). The app's name is not written into the parameters file (on Azure it is: there
two projects can meet in one resource group; a local app lives in the project's own .aitk/local/, and
`aitk demo` provisions the repository's own project, whose file stays as committed)."""
import json

import pytest
from IPython.core.error import UsageError

import aitk_nb
from helpers import STANDIN, app_folder, free_port


def test_the_replica_runs_in_its_app_s_folder(project, tmp_path):
    path = project / "infra" / "provision" / "inference.parameters.json"
    before = path.read_text()
    made = aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    app = json.loads((project / "infra/inference.config.json").read_text())["ACA_APP_NAME"]
    assert app and path.read_text() == before and not any("written into" in n for n in made.notes)

    # the default command's first step (cd into the app's folder), then a stand-in that says where it runs
    commands = [json.loads(before)["parameters"]["defaultCommands"]["value"][0],
                'printf "%s\\n" "$PWD" > /mount/where.txt', 'STANDIN_DELAY=0 exec "$AITK_PYTHON" /mount/standin.py']
    aitk_nb.provision("local", project=project, port=free_port(), progress=False, overrides={"defaultCommands": commands})
    share = next((project / ".aitk/local/shares").iterdir())
    (share / "standin.py").write_text(STANDIN)
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    try:
        result = aitk_nb.deploy(model=str(model), project=project, progress=False)
        assert result.health["model"] == "standin"
        assert (share / "where.txt").read_text() == f"{share / app_folder(project)}\n"
        assert (share / f"aitk-nb/{app}/settings.json").is_file() and (share / f"aitk-nb/{app}/inference_app").is_dir()
        assert not (share / "inference").exists()
    finally:
        aitk_nb.teardown(yes=True, project=project, show=None)


def test_a_local_app_of_the_single_folder_layout_is_named_with_the_fix(project, shell, monkeypatch, tmp_path):
    aitk_nb.provision("local", project=project, port=free_port(), progress=False,
                      overrides={"defaultCommands": ["cd /mount/inference", "bash inference_app/start.sh"]})
    record_path = project / ".aitk/local/app.json"
    record = json.loads(record_path.read_text())
    assert "cd /mount/aitk-nb/$CONTAINER_APP_NAME" in " ".join(record["command"])  # the old default means today's
    record["command"] = [part.replace("/mount/aitk-nb/$CONTAINER_APP_NAME", "/mount/inference") for part in record["command"]]
    record_path.write_text(json.dumps(record))  # what an earlier aitk-nb recorded
    monkeypatch.chdir(project)
    with pytest.raises(UsageError) as e:
        shell.run_line_magic("aitk", f"deploy --model {tmp_path}")
    assert str(e.value) == ("the local app was provisioned for the old share layout (inference/); run "
                            "`%aitk provision --target local` again to start it in its own folder, then deploy")
    assert not list((project / ".aitk/local/shares").rglob("settings.json"))  # nothing sent
