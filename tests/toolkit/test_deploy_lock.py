"""One deploy at a time per app (issue 17): the local target's deploy lock (flock on a file beside
settings.json, with the holder and a heartbeat written in it)."""
import json
import subprocess
import sys
import threading
import time

import pytest

from aitk_nb import deploy_lock
from aitk_nb.deploy_lock import DeployLock
from inference_app.contract import lock_path, settings_path

APP = "aitk-app"
LOCK_PATH = lock_path(APP)
from aitk_nb.errors import DeployError
from aitk_nb.sync import LocalFolderRemote


def test_a_second_deploy_is_refused_or_waits_with_a_line_naming_the_holder(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy_lock, "POLL_SECONDS", 0.05)
    remote = LocalFolderRemote(tmp_path)
    first = DeployLock.acquire(remote, APP)
    held = json.loads((tmp_path / LOCK_PATH).read_text())
    assert held["holder"] == deploy_lock.holder_name()
    with pytest.raises(DeployError, match=r"another deploy to this app is running: .*\(pid \d+\), since 20\d\d-.* UTC; "
                                          "wait for it to finish, or deploy again without --no-wait-lock"):
        DeployLock.acquire(remote, APP, wait=False)
    lines, got = [], []
    waiter = threading.Thread(target=lambda: got.append(DeployLock.acquire(remote, APP, say=lines.append)))
    waiter.start()
    time.sleep(0.3)
    assert not got and len(lines) == 1 and "waiting for it to finish" in lines[0]
    first.release()
    waiter.join(5)
    assert got and len(lines) == 1
    got[0].release()


def test_the_holder_renews_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(deploy_lock, "HEARTBEAT_SECONDS", 0.05)
    remote = LocalFolderRemote(tmp_path)
    with DeployLock.acquire(remote, APP):
        first = json.loads((tmp_path / LOCK_PATH).read_text())["heartbeat"]
        time.sleep(0.3)
        later = json.loads((tmp_path / LOCK_PATH).read_text())
    assert later["heartbeat"] > first and later["since"] == first


def test_a_killed_deploy_leaves_no_lock_behind(tmp_path):
    code = ("import sys, time; from aitk_nb.deploy_lock import DeployLock; from aitk_nb.sync import LocalFolderRemote; "
            f"lock = DeployLock.acquire(LocalFolderRemote({str(tmp_path)!r}), {APP!r}); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(DeployError, match="another deploy"):
            DeployLock.acquire(LocalFolderRemote(tmp_path), APP, wait=False)
    finally:
        proc.kill()
        proc.wait(10)
    DeployLock.acquire(LocalFolderRemote(tmp_path), APP, wait=False).release()


def test_cli_no_wait_lock_stops_at_once_with_one_line_and_exit_1(project, capsys):
    import aitk_nb
    from aitk_nb.cli import main
    from helpers import free_port

    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    share = project / ".aitk/local/shares" / json.loads((project / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"]
    config = json.loads((project / "infra/inference.config.json").read_text())
    with DeployLock.acquire(LocalFolderRemote(share), config["ACA_APP_NAME"]):
        code = main(["deploy", "--no-wait-lock", "--model", "org/base", "--project", str(project)])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("aitk deploy: error: another deploy to this app is running: ")
    assert err.count("\n") == 1 and not (share / settings_path(config["ACA_APP_NAME"])).exists()


def test_begin_deploy_waits_for_the_lock_in_the_background_and_a_cancel_stops_the_wait(project, monkeypatch):
    """A notebook form's Deploy calls begin_deploy: while a teammate's deploy holds the app, it must return at
    once (the kernel stays free) and wait in the background, where Cancel stops it; nothing is written."""
    import aitk_nb
    from aitk_nb.errors import OperationCancelledError
    from helpers import free_port

    monkeypatch.setattr(deploy_lock, "POLL_SECONDS", 0.05)
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    config = json.loads((project / "infra/inference.config.json").read_text())
    share = project / ".aitk/local/shares" / config["FILE_SHARE_NAME"]
    with DeployLock.acquire(LocalFolderRemote(share), config["ACA_APP_NAME"]):
        start = time.monotonic()
        op = aitk_nb.begin_deploy(model="org/base", project=project, progress=False)
        assert time.monotonic() - start < 5 and not op.done()  # it returned while the lock is held
        time.sleep(0.3)
        assert not op.done() and op.status() == "InProgress"
        op.cancel()
        with pytest.raises(OperationCancelledError):
            op.result(timeout=10)
    assert not (share / settings_path(config["ACA_APP_NAME"])).exists()
