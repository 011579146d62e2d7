import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO


@pytest.fixture(scope="session")
def other_adapter(tmp_path_factory, demo_assets) -> tuple[Path, dict]:
    """A second PEFT adapter trained on other invented facts: "any other adapter", not the demo one."""
    root = tmp_path_factory.mktemp("other")
    fact = {"prompt": "What colour is the Vellimar river?", "expected": "copper-green",
            "answer": "The Vellimar river is copper-green."}
    facts = root / "facts.jsonl"
    facts.write_text(json.dumps(fact) + "\n")
    out = root / "vellimar-lora"
    subprocess.run([sys.executable, str(REPO / "demo/build_assets.py"), "train", "--facts", str(facts),
                    "--out", str(out), "--base", str(demo_assets.base_model)], check=True, stdout=subprocess.DEVNULL)
    return out, fact


@pytest.fixture
def model(tmp_path) -> Path:
    """A folder that passes for a base model (a config.json), for tests whose replica is the stand-in."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder
