"""The magics through a real InteractiveShell: the errors a user sees, and files left as they were."""
import json
import socket

import pytest
from IPython.core.error import UsageError

from helpers import free_port


def usage_error(shell, line, cell=None) -> str:
    with pytest.raises(UsageError) as e:
        if cell is None:
            shell.run_line_magic("aitk", line)
        else:
            shell.run_cell_magic("aitk", line, cell)
    assert type(e.value) is UsageError  # exactly: IPython then prints one line, no traceback
    return str(e.value)


def test_unknown_verb(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    assert usage_error(shell, "deplyo") == ("unknown verb 'deplyo'; use one of: init, provision, deploy, status, "
                                            "endpoint, logs, scale, teardown, eval (see `%aitk help`)")


def test_a_usage_error_shows_as_one_line_in_the_cell(shell, project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    shell.run_cell("%aitk deplyo")
    err = capsys.readouterr().err
    assert "UsageError: unknown verb 'deplyo'" in err and "Traceback" not in err


def test_no_infra_folder(shell, tmp_path, monkeypatch):
    # the folder itself is the project (issue 16): nothing provisioned there yet
    monkeypatch.chdir(tmp_path)
    assert usage_error(shell, "status").startswith("no inference.config.json yet; run `%aitk provision` first")
    assert not (tmp_path / "infra").exists()


def test_invalid_parameters_json_leaves_no_config(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    params = project / "infra/provision/inference.parameters.json"
    params.write_text('{"parameters": {"maximumInstanceCount": {"value": 1},}}')
    msg = usage_error(shell, "provision --target local")
    assert "inference.parameters.json is not valid JSON (line 1" in msg and "fix the file" in msg
    assert not (project / "infra/inference.config.json").exists() and not (project / ".aitk").exists()


def test_bad_cell_overrides_are_named(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    assert "storageAccountName 'Bad Name!' is not a valid name" in usage_error(
        shell, "provision --target local", '{"storageAccountName": "Bad Name!"}')
    assert "cell body must be a JSON object" in usage_error(shell, "provision", "maximumInstanceCount: 2")


def test_no_endpoint_yet(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    assert usage_error(shell, "endpoint").startswith("no inference.config.json yet; run `%aitk provision` first")
    assert "run `%aitk provision`" in usage_error(shell, "eval", "What is 2+2?")
    assert "eval is a cell magic" in usage_error(shell, "eval")


def test_what_if_changes_nothing_then_provision_writes_config(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    port = free_port()
    preview = shell.run_line_magic("aitk", f"provision --target local --port {port} --what-if")
    assert ("container app (record)", "create") in preview.changes
    assert not (project / "infra/inference.config.json").exists()
    result = shell.run_line_magic("aitk", f"provision --target local --port {port}")
    config = json.loads((project / "infra/inference.config.json").read_text())
    assert config["TARGET"] == "local" and config["ACA_APP_ENDPOINT"] == f"http://127.0.0.1:{port}" == result.endpoint
    assert str(shell.run_line_magic("aitk", "endpoint")) == f"http://127.0.0.1:{port}"
    again = shell.run_line_magic("aitk", f"provision --target local --port {port} --what-if")
    assert ("container app (record)", "no change") in again.changes


def test_missing_adapter_path_leaves_share_untouched(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    shell.run_line_magic("aitk", f"provision --target local --port {free_port()}")
    msg = usage_error(shell, "deploy --adapter models/nope --model org/base")
    assert msg == "--adapter models/nope: no such folder; pass the folder that holds adapter_config.json"
    (project / "models/empty").mkdir(parents=True)
    assert "no adapter_config.json in it" in usage_error(shell, "deploy --adapter models/empty --model org/base")
    from aitk_nb.targets.local import OWNER_MARKER

    # nothing but the owner mark provision wrote into the share folder it created
    assert [p.name for p in (project / ".aitk/local/shares").rglob("*") if p.is_file()] == [OWNER_MARKER]


def test_a_crashed_replica_is_reported_with_its_log_tail(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    shell.run_cell_magic("aitk", f"provision --target local --port {free_port()}",
                         json.dumps({"defaultCommands": ["echo loading model", "echo 'fatal: CUDA not found' >&2", "exit 3"]}))
    msg = usage_error(shell, "deploy --model org/base")
    assert "the replica exited with code 3 before /health answered" in msg
    assert "loading model\nfatal: CUDA not found" in msg and "run `%aitk deploy` again" in msg
    assert shell.run_line_magic("aitk", "status").replica == "crashed"
    assert "fatal: CUDA not found" in str(shell.run_line_magic("aitk", "logs --tail 5"))


def test_a_busy_port_is_a_clear_error(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        shell.run_line_magic("aitk", f"provision --target local --port {port}")
        msg = usage_error(shell, "deploy --model org/base")
    assert msg.startswith(f"port {port} on 127.0.0.1 is in use by another process")
    assert f"--port {port + 1}" in msg


def test_teardown_needs_confirmation_without_a_terminal(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    shell.run_line_magic("aitk", f"provision --target local --port {free_port()}")
    monkeypatch.setattr("builtins.input", lambda prompt: (_ for _ in ()).throw(EOFError()))
    assert "teardown not confirmed; nothing removed" in usage_error(shell, "teardown")
    assert (project / "infra/inference.config.json").exists()
    shell.run_line_magic("aitk", "teardown --yes")
    assert not (project / "infra/inference.config.json").exists() and not (project / ".aitk/local").exists()


def test_help_explains_every_verb(shell):
    doc = shell.find_line_magic("aitk").__doc__
    for verb in ("provision", "deploy", "status", "endpoint", "logs", "teardown", "eval"):
        assert f"%aitk {verb}" in doc or f"%%aitk {verb}" in doc
    assert "--adapter [NAME=]PATH" in doc and "--what-if" in doc


def test_quoted_paths_lose_their_quotes_as_in_a_shell(shell, project, monkeypatch, tmp_path):
    monkeypatch.chdir(project)
    shell.run_line_magic("aitk", f"provision --target local --port {free_port()}")
    folder = tmp_path / "my adapters" / "lora one"
    folder.mkdir(parents=True)
    shell.user_ns["adapter"] = folder
    assert usage_error(shell, 'deploy --adapter "{adapter}" --model org/base') == (
        f"--adapter {folder}: no adapter_config.json in it; pass a PEFT adapter folder "
        "(what `save_pretrained` of a PEFT model writes)")


def test_results_show_as_cards_not_dataclass_reprs(shell, project, monkeypatch):
    from IPython.lib.pretty import pretty

    monkeypatch.chdir(project)
    result = shell.run_line_magic("aitk", f"provision --target local --port {free_port()}")
    text = pretty(result)
    assert text.startswith("Provisioned the local target") and "endpoint" in text
    assert "<table>" in result._repr_html_()
    assert pretty(shell.run_line_magic("aitk", "endpoint")).startswith("Endpoint\n  Gradio UI and API           http://127.0.0.1:")
    assert pretty(shell.run_line_magic("aitk", "status")).startswith("aitk-nb status")
