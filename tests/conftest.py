import os
import shutil
from pathlib import Path

import pytest

from helpers import REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh project folder: the repository's infra/ (template and parameters), nothing provisioned."""
    root = tmp_path / "proj"
    shutil.copytree(REPO / "infra" / "provision", root / "infra" / "provision")
    return root


@pytest.fixture(scope="session")
def demo_base_model() -> Path:
    """The converted demo base model (SmolLM2-135M-Instruct), built from the GGUF on first use."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "demo/build_assets.py"), "base"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return Path(json.loads(out.strip().splitlines()[-1])["base_model"])


@pytest.fixture(scope="session")
def demo_assets():
    """The cached demo base model and adapter (built on first use, ~1-2 min)."""
    from aitk_nb.demo import demo_assets

    return demo_assets()

from azure_double.fixtures import azure_double  # noqa: F401
