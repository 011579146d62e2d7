"""Start-up failures: the process exits non-zero with one clear line, never hangs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest

from helpers import stop
from server_helpers import REPO, free_port, run_server_to_exit, server_env, write_settings


@pytest.mark.timeout(90)
def test_missing_adapter_exits_non_zero_naming_adapter_and_path(tmp_path, base_model_path):
    write_settings(tmp_path, {"base_model": str(base_model_path), "adapters": {"ghost": "models/ghost"}})
    code, out = run_server_to_exit(tmp_path)
    assert code != 0
    assert "adapter 'ghost'" in out and str(tmp_path / "models" / "ghost") in out and "does not exist" in out


@pytest.mark.timeout(90)
def test_unloadable_base_model_exits_1(tmp_path):
    write_settings(tmp_path, {"base_model": "no-org/no-such-model"})
    code, out = run_server_to_exit(tmp_path, HF_HUB_OFFLINE="1")
    assert code == 1, out
    assert "model load failed" in out and "no-org/no-such-model" in out


@pytest.mark.timeout(90)
def test_start_sh_uses_aitk_python(tmp_path):
    """The local target's path through start.sh: exec $AITK_PYTHON -m inference_app (fails fast here)."""
    write_settings(tmp_path, {"adapters": {"ghost": "/nonexistent/ghost"}})
    env = server_env(tmp_path, free_port(), AITK_PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", "inference_app/start.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "adapter 'ghost' at /nonexistent/ghost" in proc.stdout


def _fake_share(tmp_path, requirements: str):
    """A share with start.sh, the placeholder and a stand-in server that reports its interpreter."""
    code = tmp_path / "share" / "inference" / "inference_app"
    code.mkdir(parents=True)
    for name in ("start.sh", "installing.py"):
        shutil.copy(REPO / "inference_app" / name, code / name)
    (code / "requirements.txt").write_text(requirements)
    (code / "__main__.py").write_text("import sys\nprint('server runs with', sys.prefix)\n")
    (code / "__init__.py").write_text("")
    return tmp_path / "share"


def _start(share, **env):
    env = {k: v for k, v in os.environ.items() if k not in ("AITK_PYTHON", "VIRTUAL_ENV")} | {
        "AITK_MOUNT_ROOT": str(share), "PORT": str(free_port()), "HOST": "127.0.0.1", **env}
    return subprocess.run(["bash", "inference_app/start.sh"], cwd=share / "inference", env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.timeout(300)
def test_start_sh_builds_the_environment_once_per_requirements_and_reuses_it(tmp_path):
    """The container's path through start.sh: a venv on the share named by the requirements' hash,
    built under a temporary name, reused by the next start, rebuilt when the requirements change."""
    share = _fake_share(tmp_path, "# no requirements: the stand-in server needs none\n")
    first = _start(share)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "start.sh: building" in first.stdout and "is ready" in first.stdout
    venvs = sorted((share / ".venvs").iterdir())
    digest = hashlib.sha256((share / "inference/inference_app/requirements.txt").read_bytes()).hexdigest()
    assert [v.name for v in venvs] == [digest]  # no temporary folder left behind
    assert f"server runs with {venvs[0]}" in first.stdout

    again = _start(share)
    assert again.returncode == 0 and "building" not in again.stdout and f"server runs with {venvs[0]}" in again.stdout

    (share / "inference/inference_app/requirements.txt").write_text("# changed\n")
    changed = _start(share)
    assert "start.sh: building" in changed.stdout and len(list((share / ".venvs").iterdir())) == 2


@pytest.mark.timeout(60)
def test_the_placeholder_keeps_the_replica_alive_but_out_of_traffic_while_installing(tmp_path):
    import httpx

    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "inference_app/installing.py")], env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                live = httpx.get(f"http://127.0.0.1:{port}/live", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the placeholder did not listen"
                time.sleep(0.1)
        assert live.status_code == 200 and live.json()["status"] == "installing"
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        assert health.status_code == 503 and health.headers["retry-after"] == "30"
    finally:
        stop(proc)
