"""The local target on a real machine (issue 10, item 10): paths with shell characters run nothing extra,
no process is signalled unless the record proves it is the replica, malformed files are one line that
names the file and the fix, values are range-checked where they are given, and links in synced folders
are handled one way for files and folders alike."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

import aitk_nb
from aitk_nb.local.record import AppRecord
from helpers import REPO, STANDIN, app_folder, free_port


def usage_error(shell, line: str) -> str:
    with pytest.raises(UsageError) as e:
        shell.run_line_magic("aitk", line)
    assert type(e.value) is UsageError and "\n" not in str(e.value)  # one line, no traceback
    return str(e.value)


def provision(project: Path, *commands: str) -> Path:
    """Provision the local target; returns the share folder."""
    overrides = {"defaultCommands": list(commands)} if commands else None
    aitk_nb.provision("local", project=project, port=free_port(), overrides=overrides, progress=False)
    share = json.loads((project / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    return project / ".aitk/local/shares" / share


# -- paths that reach a shell -------------------------------------------------------------------------
@pytest.mark.parametrize("folder", ["my proj", "pj;touch X;x"])
def test_a_project_folder_with_shell_characters_serves_and_runs_nothing_extra(tmp_path, folder, model, monkeypatch):
    root = tmp_path / folder
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    monkeypatch.chdir(tmp_path)
    share = provision(root, "cd /mount/aitk-nb/$CONTAINER_APP_NAME", 'printf "%s\\n" "$PWD" > /mount/where.txt',
                      'STANDIN_DELAY=0 exec "$AITK_PYTHON" /mount/standin.py')
    (share / "standin.py").write_text(STANDIN)
    result = aitk_nb.deploy(model=str(model), project=root, progress=False)
    try:
        assert result.health["model"] == "standin"
        assert (share / "where.txt").read_text() == f"{share / app_folder(root)}\n"
        assert not [p for p in tmp_path.rglob("X")], "a command hidden in the folder name ran"
    finally:
        aitk_nb.teardown(yes=True, project=root)


def test_the_mount_path_is_quoted_in_every_shell_context(tmp_path):
    share = tmp_path / "it's \"a\" $HOME `id` dir;touch Z \\ x"
    share.mkdir()
    script = ("printf '%s\\n' /mount/a \"/mount/b\" '/mount/c' \"$(printf '%s' /mount/d)\" /mount "
              "\"x/mount/y\" /mountain \"/mount\"/e $'/mount/f\\'s' \"`printf '%s' /mount/g`\" "
              "\"$( (printf '%s' /mount/i) )\"")
    record = AppRecord(name="app", share=str(share), port=1, mount_path="/mount", command=["/bin/bash", "-c", script],
                       env={}, readiness_path="/health", startup_timeout=1)
    out = subprocess.run(record.local_command(), capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert out.splitlines() == [f"{share}/a", f"{share}/b", f"{share}/c", f"{share}/d", str(share),
                                "x/mount/y", "/mountain", f"{share}/e", f"{share}/f's", f"{share}/g",
                                f"{share}/i"]
    assert not (tmp_path / "Z").exists()
    plain = AppRecord(**{**record.__dict__, "command": ["python", "/mount/app.py", "--root=/mount", "x/mount"]})
    assert plain.local_command() == ["python", f"{share}/app.py", f"--root={share}", "x/mount"]  # no shell: as they are


# -- signals ------------------------------------------------------------------------------------------
def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]


@pytest.mark.parametrize("case", ["legacy record (no start time)", "forged start time", "not a session leader"])
def test_teardown_never_signals_a_process_the_record_does_not_prove_is_the_replica(project, case):
    provision(project)
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=case != "not a session leader")
    try:
        record = {"pid": bystander.pid, "port": 1, "started": "2024-01-01T00:00:00+00:00"}
        if case == "forged start time":
            record["proc_start"] = str(int(_start_time(bystander.pid)) + 1)
        elif case == "not a session leader":
            record["proc_start"] = _start_time(bystander.pid)
        (project / ".aitk/local/replica.json").write_text(json.dumps(record))
        card = aitk_nb.teardown(app_only=True, yes=True, project=project)
        time.sleep(0.3)
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert f"pid {bystander.pid} is not the replica it recorded; not signalled" in str(card)
        assert not (project / ".aitk/local/replica.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


# -- malformed files ----------------------------------------------------------------------------------
def test_a_parameters_file_that_is_not_utf8_is_named(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    params = project / "infra/provision/inference.parameters.json"
    params.write_bytes(b'{"parameters": {"location": {"value": "caf\xe9"}}}')
    assert usage_error(shell, "provision --target local") == (
        f"{params} is not UTF-8 text (byte 0xe9 at position 42); save it as UTF-8 and run again")
    assert not (project / ".aitk").exists() and not (project / "infra/inference.config.json").exists()


@pytest.mark.parametrize("content, problem", [
    ("{", "is not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes)"),
    ("[]", "must hold a JSON object, not an array"),
    ('{"adapters": 5}', "field 'adapters' must be an object of adapter name to share path, not 5"),
    ('{"base_model": ["x"], "adapters": {}}', "field 'base_model' must be a share path or hub id, not ['x']"),
])
def test_a_malformed_settings_file_on_the_share_is_named_on_status_and_deploy(shell, project, model, monkeypatch,
                                                                              content, problem):
    monkeypatch.chdir(project)
    share = provision(project)
    settings = share / app_folder(project) / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(content)
    before = sorted(p.relative_to(share) for p in share.rglob("*"))
    fix = "fix it, or delete it and deploy with --model (and --adapter)"
    assert usage_error(shell, "status") == f"{settings} {problem}; {fix}"
    assert usage_error(shell, f"deploy --model {model}") == f"{settings} {problem}; {fix}"
    assert settings.read_text() == content and sorted(p.relative_to(share) for p in share.rglob("*")) == before


@pytest.mark.parametrize("edit, problem", [
    (lambda r: r.pop("port"), "misses the key port"),
    (lambda r: r.update(port="7860x"), "key port must be a whole number from 1 to 65535, not '7860x'"),
    (lambda r: r.update(command="bash"), "key command must be a list of strings, not 'bash'"),
])
def test_an_app_record_with_missing_or_wrong_keys_is_named(shell, project, monkeypatch, edit, problem):
    monkeypatch.chdir(project)
    provision(project)
    path = project / ".aitk/local/app.json"
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    assert usage_error(shell, "status") == (
        f"{path} {problem}; it is aitk-nb's record of the local app: run `%aitk provision --target local` again to rewrite it")


def test_a_truncated_replica_record_is_named_and_nothing_is_signalled(shell, project, model, monkeypatch):
    monkeypatch.chdir(project)
    provision(project)
    path = project / ".aitk/local/replica.json"
    path.write_text('{"pid": 1, "proc_sta')
    expected = (f"{path} is not a replica record aitk-nb can read (truncated?), so no process was signalled; "
                "if a replica still runs, stop it yourself, then delete the file and run again")
    for line in ("status", "teardown --app-only --yes", f"deploy --model {model}"):
        assert usage_error(shell, line) == expected, line
    assert path.exists()


def test_an_invalid_adapter_config_is_named(shell, project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    provision(project)
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": ')
    assert usage_error(shell, f"deploy --adapter {adapter}") == (
        f"--adapter {adapter}: {adapter}/adapter_config.json is not valid JSON (line 1, column 29: Expecting value); "
        "pass a PEFT adapter folder (what `save_pretrained` of a PEFT model writes)")


# -- ranges -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("port", ["99999", "0", "-1"])
def test_a_port_out_of_range_is_refused_where_it_is_given(shell, project, monkeypatch, port):
    monkeypatch.chdir(project)
    assert usage_error(shell, f"provision --target local --port {port}") == (
        f"--port {port}: a TCP port from 1 to 65535")
    assert not (project / ".aitk").exists()


def test_a_negative_tail_is_refused_and_zero_shows_nothing(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    provision(project, "echo one", "echo two", "exit 1")
    (project / ".aitk/local/replica.log").write_text("one\ntwo\n")
    assert usage_error(shell, "logs --tail -5") == "--tail -5: a number of lines, 0 or more"
    assert str(shell.run_line_magic("aitk", "logs --tail 0")) == ""
    assert str(shell.run_line_magic("aitk", "logs --tail 1")) == "two"


# -- links in synced folders --------------------------------------------------------------------------
def test_links_are_followed_inside_the_folder_and_skipped_with_a_warning_outside(project, tmp_path, capsys):
    share = provision(project)
    (tmp_path / "secret.txt").write_text("outside the adapter")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/more.txt").write_text("outside too")
    adapter = tmp_path / "lora"
    (adapter / "sub").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    (adapter / "sub/weights.bin").write_bytes(b"w" * 100)
    (adapter / "adapter_model.safetensors").write_bytes(b"lora")
    os.symlink(adapter / "adapter_config.json", adapter / "config-link.json")  # a file inside
    os.symlink("sub", adapter / "sub-link")  # a folder inside
    os.symlink(tmp_path / "secret.txt", adapter / "secret-link.txt")  # a file outside
    os.symlink(tmp_path / "elsewhere", adapter / "elsewhere-link")  # a folder outside
    os.symlink(".", adapter / "loop")  # a folder inside that holds itself
    os.symlink(tmp_path / "missing", adapter / "dangling")
    result = aitk_nb.deploy([str(adapter)], project=project, restart=False)
    on_share = sorted(p.relative_to(share / "models/lora").as_posix()
                      for p in (share / "models/lora").rglob("*") if p.is_file() and not p.name.startswith("."))
    assert on_share == ["adapter_config.json", "adapter_model.safetensors", "config-link.json", "sub-link/weights.bin",
                        "sub/weights.bin"]
    assert not [p for p in share.rglob("*") if p.is_symlink()]
    assert (share / "models/lora/config-link.json").read_bytes() == (adapter / "adapter_config.json").read_bytes()
    warning = ("models/lora: 4 links skipped (followed only inside the folder): dangling (target missing), "
               "elsewhere-link (outside), loop (a folder that holds itself), secret-link.txt (outside)")
    assert warning in capsys.readouterr().out
    assert ("synced", warning) in result.card().rows


# -- what deploy did not make -------------------------------------------------------------------------
def test_deploy_never_writes_into_a_share_folder_it_did_not_make(shell, project, tmp_path, monkeypatch):
    """A fine-tuning's models/lora on the share, and a local adapter folder also called lora: deploy
    would have replaced its weights and deleted its other files; it refuses, and says the two ways out."""
    monkeypatch.chdir(project)
    share = provision(project)
    theirs = share / "models/lora"
    theirs.mkdir(parents=True)
    files = {"adapter_config.json": b'{"base_model_name_or_path": "org/base"}', "adapter_model.safetensors": b"theirs",
             "trainer_state.json": b"{}"}
    for name, data in files.items():
        (theirs / name).write_bytes(data)
    mine = tmp_path / "lora"
    mine.mkdir()
    (mine / "adapter_config.json").write_text('{"base_model_name_or_path": "org/base"}')
    (mine / "adapter_model.safetensors").write_bytes(b"mine")
    assert usage_error(shell, f"deploy --adapter {mine} --no-restart") == (
        f"--adapter {mine}: {theirs} holds files aitk-nb did not put there (adapter_config.json, "
        "adapter_model.safetensors, trainer_state.json), and deploy does not overwrite or delete them; serve what is "
        "there as it is: `%aitk deploy --adapter share:models/lora`, or send yours under another name "
        "(--adapter NAME=PATH)")
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == files
    assert not (share / app_folder(project) / "settings.json").exists()
    shell.run_line_magic("aitk", f"deploy --adapter mine={mine} --no-restart")  # under another name: sent
    assert (share / "models/mine/adapter_model.safetensors").read_bytes() == b"mine"
    assert {p.name: p.read_bytes() for p in theirs.iterdir()} == files


def test_a_timeout_that_is_not_positive_is_refused(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    provision(project)
    assert usage_error(shell, "deploy --model org/base --timeout 0") == "--timeout 0.0: seconds to wait, more than 0"
