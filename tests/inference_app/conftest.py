"""Fixtures: a tiny LoRA adapter, a mount folder with settings.json, one real server per session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_helpers import REPO, free_port, server_env, write_settings
from helpers import stop

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

API_KEY = "test-key-5d41402abc4b2a76"
ADAPTER = "demo-lora"
SECOND_ADAPTER = "other-lora"  # other modules and ranks than ADAPTER, so layers hold different adapter sets
BASE_ID = "SmolLM2-135M-Instruct"
START_TIMEOUT = 90


@pytest.fixture(scope="session")
def base_model_path(demo_base_model) -> Path:
    return demo_base_model


@pytest.fixture(scope="session")
def mount_root(tmp_path_factory, base_model_path) -> Path:
    """A mount root laid out like the share: model-cache/<base>, models/<adapter>, inference/settings.json."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("mount")
    (root / "model-cache").mkdir()
    (root / "model-cache" / BASE_ID).symlink_to(base_model_path, target_is_directory=True)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    # Non-zero init (and a large alpha) so the adapter's greedy text clearly differs from base.
    lora = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(root / "models" / ADAPTER)
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    # o_proj at rank 2 (rank_pattern): layers holding the same adapters can differ in rank
    other = LoraConfig(r=8, lora_alpha=16, target_modules=["v_proj", "o_proj", "down_proj"], rank_pattern={"o_proj": 2},
                       init_lora_weights=False)
    get_peft_model(base, other).save_pretrained(root / "models" / SECOND_ADAPTER)
    write_settings(root, {"base_model": f"model-cache/{BASE_ID}", "adapters": {ADAPTER: f"models/{ADAPTER}"}, "max_new_tokens": 16})
    return root


@dataclass
class Server:
    url: str
    key: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="session")
def server(mount_root, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inference_app"],
            cwd=REPO, env=server_env(mount_root, port, AITK_API_KEY=API_KEY), stdout=out, stderr=subprocess.STDOUT,
        )
    srv = Server(f"http://127.0.0.1:{port}", API_KEY, proc, log)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{srv.output()}")
            try:
                if httpx.get(srv.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not healthy after {START_TIMEOUT} s:\n{srv.output()}")
            time.sleep(0.2)
        yield srv
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def adapter_name() -> str:
    return ADAPTER


@pytest.fixture(scope="session")
def second_adapter(mount_root) -> tuple[str, Path]:
    """A second adapter on the same base (not in the session server's settings): name and folder."""
    return SECOND_ADAPTER, mount_root / "models" / SECOND_ADAPTER


@pytest.fixture(scope="session")
def base_id() -> str:
    return BASE_ID
