"""A real browser (Debian's chromium, driven by Playwright; no browser download) against a real
JupyterLab on loopback, over a temp copy of the project. Screenshots go to test-artifacts/browser/."""
import json
import os
import shutil
import subprocess
import sys
import time
import secrets
from pathlib import Path

import pytest

from helpers import REPO, free_port, stop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
ARTIFACTS = REPO / "test-artifacts" / "browser"

# JupyterLab user settings for the test: no news pop-up, every cell in the DOM (no virtualised cells)
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def lab_project(tmp_path_factory):
    """A temp copy of the project (infra/provision and notebooks) and the local endpoint's port."""
    root = tmp_path_factory.mktemp("browser") / "proj"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    port = free_port()
    try:
        yield root, port
    finally:
        import aitk_nb  # whatever happened, no replica is left running

        if (root / "infra/inference.config.json").exists():
            aitk_nb.teardown(yes=True, project=root)


@pytest.fixture(scope="module")
def jupyterlab(lab_project, tmp_path_factory):
    """JupyterLab headless on loopback, serving the temp project; yields its base URL with the token."""
    pytest.importorskip("jupyterlab", reason="pip install jupyterlab")
    root, aitk_port = lab_project
    state = tmp_path_factory.mktemp("lab")
    for rel, value in LAB_SETTINGS.items():
        (state / "settings" / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / "settings" / rel).write_text(json.dumps(value))
    token, port = secrets.token_hex(16), free_port()
    env = {**os.environ, "AITK_PORT": str(aitk_port), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
           "JUPYTER_RUNTIME_DIR": str(state / "runtime"), "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("AITK_TARGET_OPTIONS", None)  # the notebook's default: the local target
    log = open(state / "lab.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             "--ServerApp.port_retries=0", "--ServerApp.open_browser=False"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("JupyterLab did not start:\n" + (state / "lab.log").read_text()[-3000:])
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}", token
    finally:
        stop(proc, timeout=20)
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(state / "lab.log", ARTIFACTS / "jupyterlab.log")
