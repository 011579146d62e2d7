"""A redeploy with nothing changed sends nothing and does not restart the replica (on a GPU replica a
restart is a model reload and minutes without service); `--restart` forces one, and a deploy that synced
without restarting (`--no-restart`) leaves the next deploy to restart (issue 10, item 5)."""
import json

import pytest

import aitk_nb
from aitk_nb import sync
from helpers import STANDIN, app_folder, free_port


@pytest.fixture
def deployed(project, tmp_path, monkeypatch):
    """The local target serving the stand-in, and a counter of every file written to its share."""
    aitk_nb.provision("local", project=project, port=free_port(), progress=False,
                      overrides={"defaultCommands": ['STANDIN_DELAY=0 exec "$AITK_PYTHON" /mount/standin.py']})
    share = project / ".aitk/local/shares" / json.loads((project / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    (share / "standin.py").write_text(STANDIN)
    written: list[str] = []
    for method in ("upload", "write_bytes"):
        original = getattr(sync.LocalFolderRemote, method)
        monkeypatch.setattr(sync.LocalFolderRemote, method,
                            lambda self, path, *a, _f=original: (written.append(path), _f(self, path, *a))[1])
    model = tmp_path / "tiny"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    adapter = tmp_path / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(model)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"lora weights")
    first = aitk_nb.deploy([str(adapter)], project=project, progress=False)
    yield project, share, adapter, written, first
    aitk_nb.teardown(yes=True, project=project)


def pid(project) -> int:
    return json.loads((project / ".aitk/local/replica.json").read_text())["pid"]


def test_nothing_changed_sends_nothing_and_keeps_the_replica(deployed):
    project, share, _, written, first = deployed
    assert first.restarted and first.changed and first.health
    before, stamp = pid(project), (share / app_folder(project) / "settings.json").stat().st_mtime_ns
    written.clear()
    again = aitk_nb.deploy(project=project, progress=False)
    assert written == [] and not again.restarted and not again.changed and again.health
    assert pid(project) == before and (share / app_folder(project) / "settings.json").stat().st_mtime_ns == stamp
    assert again.state == ("nothing changed since the last deploy: nothing sent, not restarted "
                           "(--restart restarts it); ready")
    assert ("synced", f"{app_folder(project)}/settings.json: unchanged") in again.card().rows
    forced = aitk_nb.deploy(project=project, restart=True, progress=False)
    assert written == [] and forced.restarted and pid(project) != before and forced.state == "ready: restarted (--restart)"


def test_a_change_restarts_and_a_deploy_without_restart_leaves_the_next_one_to_restart(deployed):
    project, share, adapter, written, _ = deployed
    before = pid(project)
    written.clear()
    (adapter / "adapter_model.safetensors").write_bytes(b"retrained")
    staged = aitk_nb.deploy(project=project, restart=False, adapters=[str(adapter)], progress=False)
    # settings.json names the adapter's new content (adapter_versions: a running server notices weights changed
    # in place, issue 17)
    assert written == ["models/lora/adapter_model.safetensors", f"{app_folder(project)}/settings.json",
                       f"{app_folder(project)}/.aitk-restart-pending"]
    assert not staged.restarted and pid(project) == before
    assert staged.state == "files synced, not restarted (--no-restart); the next deploy restarts it"
    written.clear()
    live = aitk_nb.deploy(project=project, progress=False)  # nothing new to send, but the staged change goes live
    assert written == [] and live.restarted and pid(project) != before
    assert not (share / app_folder(project) / ".aitk-restart-pending").exists()
    after = pid(project)
    assert not aitk_nb.deploy(project=project, progress=False).restarted and pid(project) == after


def test_a_replica_that_does_not_run_is_started_even_when_nothing_changed(deployed):
    project, _, _, written, _ = deployed
    aitk_nb.teardown(app_only=True, yes=True, project=project)
    aitk_nb.provision("local", project=project, port=free_port(), progress=False,
                      overrides={"defaultCommands": ['STANDIN_DELAY=0 exec "$AITK_PYTHON" /mount/standin.py']})
    written.clear()
    result = aitk_nb.deploy(project=project, progress=False)
    assert written == [] and not result.changed and result.restarted and result.health
