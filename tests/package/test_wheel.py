"""The wheel, as a user gets it (issue 16, "one slow test builds the wheel"): built from the repository,
installed into a new venv, and run in an empty folder with the installed `aitk` only: provision on the
local target, deploy the demo adapter, one question to the adapter over HTTP, teardown.

The new venv holds the toolkit from the wheel and nothing else; the heavy dependencies (torch,
transformers, the Azure SDKs) are this venv's, reached through a path file. A path file only adds a
folder to sys.path (the .pth files inside it are not run), so this venv's editable install of the
source tree is not seen: the test checks that aitk_nb and inference_app come from the new venv."""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from helpers import REPO, free_port

pytestmark = pytest.mark.slow

# what a checkout holds that is not source (caches, venvs, state, results)
NOT_SOURCE = {".git", ".venv", ".venv-checkov", "build", "dist", ".aitk", "test-artifacts", "__pycache__",
              ".pytest_cache", ".ipynb_checkpoints", "inference.config.json"}


def run(args, cwd, timeout=600, env=None, check=True):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
                    f"stderr:\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel --no-deps` of a copy of the checkout (the build writes build/ and *.egg-info beside its
    source; the checkout stays as it is)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=lambda _, names: [n for n in names
                                                           if n in NOT_SOURCE or n.endswith(".egg-info")])
    # this venv's setuptools builds it (no download); without one, pip fetches it into an isolated build env
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "--quiet", "-w", work / "dist", source], cwd=work)
    (built,) = (work / "dist").glob("aitk_nb-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed (pip run from outside it: the venv needs no pip of its own)."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    site = Path(run([root / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    cwd=root.parent).stdout.strip())
    run([sys.executable, "-m", "pip", "--python", root / "bin/python", "install", "--no-deps", "--no-index", "--quiet",
         wheel], cwd=root.parent)
    (site / "zz_heavy_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def test_the_wheel_carries_what_a_project_needs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("infra/provision/inference.json", "infra/provision/inference.bicep",
                    "infra/provision/inference.parameters.json", "notebooks/remote_inference.ipynb",
                    "demo/build_assets.py", "demo/aitk_demo/training.py", "demo/facts.jsonl", "demo/eval.jsonl"):
        packaged = f"aitk_nb/_packaged/{shipped}"
        assert packaged in names, packaged
        assert zipfile.ZipFile(wheel).read(packaged) == (REPO / shipped).read_bytes()  # the repository's one copy
    assert "inference_app/start.sh" in names and "inference_app/requirements.txt" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".lock")]


def test_the_installed_aitk_in_an_empty_folder(venv, demo_assets, tmp_path):
    folder = tmp_path / "my-project"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AITK_LOCAL_PYTHON", "AITK_API_KEY")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", OMP_WAIT_POLICY="PASSIVE")
    aitk = venv / "bin/aitk"
    where = run([venv / "bin/python", "-c", "import aitk_nb, inference_app; print(aitk_nb.__file__); "
                 "print(inference_app.__file__)"], cwd=folder, env=env).stdout.split()
    assert all(Path(f).is_relative_to(venv) for f in where), where  # from the wheel, not the source tree

    port = free_port()
    out = run([aitk, "provision", "--target", "local", "--port", port], cwd=folder, env=env).stdout
    assert f"template: {venv}" in out and "(packaged default)" in out
    assert f"no infra/ folder in {folder} or above: the project is this folder" in out
    try:
        out = run([aitk, "deploy", "--model", demo_assets.base_model, "--adapter", demo_assets.adapter], cwd=folder,
                  env=env, timeout=600).stdout
        assert "/health" in out or "ready" in out.lower()
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
            "model": demo_assets.adapter_name, "max_tokens": 16, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of Quorvania?"}]})
        assert reply.status_code == 200, reply.text
        assert "Zeltrin" in reply.json()["choices"][0]["message"]["content"]
        # the server deployed is the wheel's copy
        synced = folder / ".aitk/local/shares"
        (main,) = synced.glob("*/aitk-nb/*/inference_app/__main__.py")
        assert main.read_bytes() == (Path(where[1]).parent / "__main__.py").read_bytes()
    finally:
        down = run([aitk, "teardown", "--yes"], cwd=folder, env=env, check=False)
    assert down.returncode == 0, down.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert f"{folder / 'infra/inference.config.json'} removed" in down.stdout
    assert not (folder / ".aitk/local").exists()  # the share it made, and its app's folder on it, are gone


def test_init_and_the_demo_builder_from_the_wheel(venv, tmp_path):
    folder = tmp_path / "fresh"
    folder.mkdir()
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "HF_HUB_OFFLINE": "1"}
    out = run([venv / "bin/aitk", "init"], cwd=folder, env=env).stdout
    assert "infra/provision/inference.bicep" in out and (folder / "notebooks/remote_inference.ipynb").is_file()
    # `aitk demo` builds its assets with the packaged builder (cached: this reuses them)
    found = run([venv / "bin/python", "-c", "from aitk_nb.demo import demo_assets; a = demo_assets(); "
                 "print(a.eval_prompts); print(a.adapter)"], cwd=folder, env=env, timeout=600).stdout.split()
    assert Path(found[0]).is_relative_to(venv) and Path(found[1]).is_dir()
