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


@pytest.fixture(scope="module")
def shell():
    """IPython's shell (one per process) with the extension loaded: the magics as a notebook runs them."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aitk_nb")
    return ip


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

@pytest.fixture(scope="session")
def fact_prompts() -> list[dict]:
    """The evaluation prompts about the invented facts the demo adapter learned (not the controls)."""
    import json

    def read_jsonl(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    learned = {f["prompt"] for f in read_jsonl(REPO / "demo/facts.jsonl")}
    facts = [p for p in read_jsonl(REPO / "demo/eval.jsonl") if p["prompt"] in learned]
    assert len(facts) >= 5
    return facts


from azure_double.fixtures import azure_double  # noqa: F401,E402


@pytest.fixture
def azure(azure_double, monkeypatch):
    """The Azure test double, with this process pointed at it (no credential is passed to the toolkit)."""
    for key, value in azure_double.environment().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    azure_double.poll_delay = 0.05
    return azure_double


@pytest.fixture(autouse=True)
def _prices_offline(monkeypatch, tmp_path_factory):
    """No test reaches the Azure Retail Prices API: by default its URL is a closed loopback port (the
    "price unknown" path) and its cache a fresh folder; `prices_api` serves the recorded prices."""
    from helpers import free_port

    monkeypatch.setenv("AITK_PRICES_URL", f"http://127.0.0.1:{free_port()}/api/retail/prices")
    monkeypatch.setenv("AITK_PRICES_CACHE", str(tmp_path_factory.mktemp("prices-cache")))
    monkeypatch.delenv("AITK_CURRENCY", raising=False)


@pytest.fixture
def prices_api(monkeypatch):
    """The Azure Retail Prices API on loopback, answering the recorded Container Apps prices."""
    from prices_api import PricesAPI

    api = PricesAPI()
    monkeypatch.setenv("AITK_PRICES_URL", api.url)
    yield api
    api.close()
