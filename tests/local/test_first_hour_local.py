"""A new user's first hour on the local target (issue 20), with the stand-in server for speed: every
command a message suggests is run as printed (from the project folder, as a user would) and works;
a port change does not strand the replica; a crash is reported with its cause; scale's advice works;
`aitk endpoint` says what its help promises; teardown leaves no log behind."""
import json
import re
import shlex
import time
from pathlib import Path

import pytest

import aitk_nb
from aitk_nb.cli import main
from aitk_nb.errors import AitkError, ReplicaCrashedError, ReplicaOutdatedError
from helpers import STANDIN, app_folder, free_port
from inference_app.contract import start_commands

STANDIN_COMMAND = 'STANDIN_DELAY=0 exec "$AITK_PYTHON" /mount/standin.py'


def provision(project: Path, port: int, *commands: str) -> Path:
    """Provision the local target (the stand-in as its command, unless `commands`, written into the
    parameters file so that a provision from the command line keeps it); returns the share."""
    path = project / "infra/provision/inference.parameters.json"
    params = json.loads(path.read_text())
    params["parameters"]["defaultCommands"] = {"value": list(commands or [STANDIN_COMMAND])}
    path.write_text(json.dumps(params))
    aitk_nb.provision("local", project=project, port=port, progress=False)
    share = project / ".aitk/local/shares" / json.loads((project / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    (share / "standin.py").write_text(STANDIN)
    return share


@pytest.fixture
def local(project, monkeypatch):
    """The project folder as the working directory (where a user runs the printed commands); torn down after."""
    monkeypatch.chdir(project)
    yield project
    if (project / "infra/inference.config.json").exists():
        aitk_nb.teardown(yes=True, project=project, show=None)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        rc = main(list(args))
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def suggested(message: str) -> list[list[str]]:
    """The `aitk ...` commands a terminal message tells the user to run, as argv lists."""
    return [shlex.split(c)[1:] for c in re.findall(r"`(aitk [^`]+)`", message)]


def run_suggested(capsys, message: str) -> list[tuple[int, str, str]]:
    commands = suggested(message)
    assert commands, f"no command suggested in: {message}"
    return [cli(capsys, *argv) for argv in commands]


# -- item 1: a provision that changes the port does not strand the replica ----------------------------
def test_a_port_change_is_said_and_the_next_deploy_restarts_the_replica(local, model, capsys):
    old, new = free_port(), free_port()
    provision(local, old)
    assert aitk_nb.deploy(model=str(model), project=local, progress=False).health
    first = json.loads((local / ".aitk/local/replica.json").read_text())["pid"]

    rc, out, _ = cli(capsys, "provision", "--target", "local", "--port", str(new))
    assert rc == 0 and f"http://127.0.0.1:{new}" in out
    assert (f"the running replica (pid {first}) was started before this change of port {old} -> {new} and still "
            "runs as before; `aitk deploy` restarts it") in out
    rc, out, _ = cli(capsys, "status")
    assert f"running as provisioned before (port {old} -> {new}); `aitk deploy` restarts it" in out

    start = time.monotonic()  # a wait that sees the replica listening elsewhere says so at once
    with pytest.raises(ReplicaOutdatedError) as e:
        aitk_nb.endpoint(project=local).wait(timeout=60, progress=False)
    assert time.monotonic() - start < 5
    assert str(e.value) == (f"the replica (pid {first}) started before provision changed port {old} -> {new}: it "
                            "still runs as before, so /health will not answer as provisioned; run `%aitk deploy` "
                            "to restart it")

    [(rc, out, err)] = run_suggested(capsys, f"`aitk deploy`")  # what both messages say, as printed
    assert rc == 0, err
    assert json.loads((local / ".aitk/local/replica.json").read_text())["pid"] != first
    assert aitk_nb.endpoint(project=local).wait(timeout=30, progress=False).url == f"http://127.0.0.1:{new}"


def test_provision_restarts_the_replica_it_changes_after_asking(local, model, capsys, monkeypatch):
    old, new = free_port(), free_port()
    provision(local, old)
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    first = json.loads((local / ".aitk/local/replica.json").read_text())["pid"]
    asked = []
    monkeypatch.setattr("builtins.input", lambda question: asked.append(question) or "y")
    rc, out, err = cli(capsys, "provision", "--target", "local", "--port", str(new))
    assert rc == 0, err
    assert asked == [f"the running replica (pid {first}) was started before this change of port {old} -> {new}; "
                     "restart it now? [y/N] "]
    assert f"port {old} -> {new}: restarted; `aitk status` shows when it is ready" in out
    assert aitk_nb.endpoint(project=local).wait(timeout=30, progress=False).url == f"http://127.0.0.1:{new}"
    rc, out, _ = cli(capsys, "provision", "--target", "local", "--port", str(old), "--yes")  # --yes: not asked
    assert rc == 0 and len(asked) == 1 and f"port {new} -> {old}: restarted" in out


def test_a_command_change_is_said_and_the_next_deploy_restarts(local, model):
    port = free_port()
    provision(local, port)
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    changed = aitk_nb.provision("local", project=local, port=port, progress=False,
                                overrides={"defaultCommands": ["true", STANDIN_COMMAND]})
    assert any("was started before this change of command" in n for n in changed.notes)
    again = aitk_nb.deploy(project=local, progress=False)  # nothing new to send: restarted all the same
    assert again.restarted and again.health
    unchanged = aitk_nb.provision("local", project=local, port=port, progress=False,
                                  overrides={"defaultCommands": ["true", STANDIN_COMMAND]})
    assert not [n for n in unchanged.notes if "replica" in n], unchanged.notes  # beside where the files came from


# -- item 2: a crash is reported with its cause, not only the shutdown lines after it -----------------
def test_a_crash_shows_the_lines_that_name_its_cause(local, model):
    # what the server prints when a model fails to load: the cause, then thirty lines of a clean shutdown
    script = ("import sys; print('INFO loading base model'); "
              "print('ERROR inference_app: model load failed: SafetensorError: header too large'); "
              "[print(f'INFO:     Shutting down step {i}') for i in range(30)]; "
              "print('INFO:     Finished server process'); sys.exit(1)")
    provision(local, free_port(), f'exec "$AITK_PYTHON" -c "{script}"')
    with pytest.raises(ReplicaCrashedError) as e:
        aitk_nb.deploy(model=str(model), project=local, progress=False)
    message = str(e.value)
    assert "says:\nERROR inference_app: model load failed: SafetensorError: header too large\n" in message
    assert message.endswith("INFO:     Finished server process\nfix the cause and run `%aitk deploy` again")
    assert "Shutting down step 3\n" not in message  # the tail is short: the cause stays in sight
    assert "model load failed" in str(aitk_nb.status(project=local))


# -- item 3: the way out of a fine-tuning's folder is a command that works -----------------------------
def test_the_command_suggested_for_a_finetuning_folder_works(local, capsys, tmp_path):
    share = provision(local, free_port())
    run = share / "models/demo-facts-run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter/adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    (run / "adapter/adapter_model.safetensors").write_bytes(b"theirs")
    (run / "trainer_state.json").write_text("{}")
    mine = tmp_path / "demo-facts"
    mine.mkdir()
    (mine / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base"}))
    (mine / "adapter_model.safetensors").write_bytes(b"mine")
    rc, _, err = cli(capsys, "deploy", "--adapter", f"demo-facts-run={mine}")
    assert rc == 1 and ("serve what is there as it is: `aitk deploy --adapter "
                        "demo-facts-run=share:models/demo-facts-run/adapter`, or send yours under another name") in err
    [(rc, out, err)] = run_suggested(capsys, err)
    assert rc == 0, err
    settings = json.loads((share / app_folder(local) / "settings.json").read_text())
    assert settings["adapters"] == {"demo-facts-run": "models/demo-facts-run/adapter"}
    assert (run / "adapter/adapter_model.safetensors").read_bytes() == b"theirs"


# -- item 4: scale's advice on the local target works ---------------------------------------------------
def test_scale_on_the_local_target_suggests_commands_that_work(local, model, capsys):
    provision(local, free_port())
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    with pytest.raises(AitkError) as e:
        aitk_nb.endpoint(project=local).scale(min_replicas=0)
    rc, _, err = cli(capsys, "scale", "--min", "0")
    assert rc == 1 and "stop it with `aitk scale --stop`, start it again with `aitk scale --start`" in err
    assert "%aitk scale --stop" in str(e.value)
    (stop_rc, _, stop_err), (start_rc, _, start_err) = run_suggested(capsys, err)
    assert stop_rc == 0 and start_rc == 0, (stop_err, start_err)
    assert aitk_nb.endpoint(project=local).wait(timeout=30, progress=False).health["model"] == "standin"
    cli(capsys, "scale", "--stop")
    assert aitk_nb.status(project=local).replica == "stopped"
    assert aitk_nb.deploy(project=local, progress=False).health  # deploy starts it as well


# -- item 6: `aitk endpoint` prints what its help promises -------------------------------------------------
def test_cli_endpoint_shows_the_base_url_health_route_and_state(local, model, capsys):
    port = free_port()
    provision(local, port)
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    rc, out, _ = cli(capsys, "endpoint")
    url = f"http://127.0.0.1:{port}"
    assert rc == 0 and out.startswith("Endpoint\n")
    for row in (f"Gradio UI and API           {url}", f"OpenAI-compatible base URL  {url}/v1",
                f"health                      {url}/health", "state                       Running (ready)"):
        assert row in out, out


# -- item 12: teardown leaves no log behind ------------------------------------------------------------------
def test_teardown_removes_the_previous_start_s_log_too(local, model, capsys):
    provision(local, free_port())
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    aitk_nb.deploy(project=local, restart=True, progress=False)
    assert (local / ".aitk/local/replica.log.1").exists()
    rc, out, _ = cli(capsys, "teardown", "--yes")
    assert rc == 0 and not (local / ".aitk/local").exists()


# -- item 11: the demo's stop hint works from anywhere, with --project --------------------------------
def test_the_demo_stop_hint_names_the_project_and_works(local, model, capsys, tmp_path, monkeypatch):
    from aitk_nb.demo import stop_hint

    provision(local, free_port())
    aitk_nb.deploy(model=str(model), project=local, progress=False)
    hint = stop_hint(str(local))
    assert "make stop" not in hint and ".venv" not in hint
    monkeypatch.chdir(tmp_path)  # somewhere else: the hint names the project
    [(rc, _, err)] = run_suggested(capsys, hint)
    assert rc == 0, err
    assert not (local / "infra/inference.config.json").exists() and not (local / ".aitk/local").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_server_s_crash_on_a_garbage_adapter_is_reported_with_its_cause(local, demo_assets, tmp_path):
    """The issue's case with the real server: the cause is above the /health polls and uvicorn's shutdown."""
    import shutil

    provision(local, free_port(), *start_commands())
    bad = tmp_path / "bad"
    shutil.copytree(demo_assets.adapter, bad)
    (bad / "adapter_model.safetensors").write_bytes(b"\xff" * 4096)
    with pytest.raises(ReplicaCrashedError) as e:
        aitk_nb.deploy([str(bad)], str(demo_assets.base_model), project=local, progress=False)
    # the cause, then the shutdown; with many lines between them (/health polls), those are left out
    message = str(e.value)
    assert "model load failed: adapter 'bad'" in message and "SafetensorError" in message
    assert message.index("model load failed") < message.index("Finished server process")


# -- the rule: a command suggested after --project names the project, so it works from where the user is --
def test_commands_suggested_after_project_name_it_and_work_from_elsewhere(project, model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # not in the project: only --project finds it
    rc, _, err = cli(capsys, "status", "--project", str(project))
    assert rc == 1 and f"run `aitk provision --project {project}` first" in err
    [(rc, _, err)] = run_suggested(capsys, err)
    assert rc == 0, err
    try:
        rc, _, err = cli(capsys, "scale", "--min", "0", "--project", str(project))
        assert f"`aitk scale --stop --project {project}`" in err
    finally:
        aitk_nb.teardown(yes=True, project=project, show=None)


def test_a_log_shorter_than_the_tail_is_shown_whole(tmp_path):
    """A short log (fewer lines than the tail asked for) was cut to its last line (a negative slice start):
    a crash with its cause in the last lines then showed only 'Finished server process'."""
    from aitk_nb.local.logs import LogFile

    log = LogFile(tmp_path / "replica.log")
    lines = [*[f'INFO: "GET /health HTTP/1.1" 503 ({i})' for i in range(21)],
             "ERROR inference_app: model load failed: adapter 'bad'", "INFO: shutdown", "INFO: Finished server process"]
    log.path.write_text("\n".join(lines) + "\n")  # 24 lines, the cause among the last: all of them are shown
    assert log.crash_excerpt(25) == "\n".join(lines)
    assert log.tail(25) == "\n".join(lines) and log.tail(2) == "\n".join(lines[-2:])
