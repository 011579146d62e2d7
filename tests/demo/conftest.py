import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: see demo/build_assets.py

DEMO = Path(__file__).resolve().parents[2] / "demo"


@pytest.fixture(scope="session")
def ba():
    """The demo/build_assets.py module (demo/ is not a package)."""
    if "aitk_demo_build_assets" in sys.modules:
        return sys.modules["aitk_demo_build_assets"]
    spec = importlib.util.spec_from_file_location("aitk_demo_build_assets", DEMO / "build_assets.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def assets(ba):
    """Base model and demo adapter from the cache ($AITK_CACHE), built on first use."""
    return ba.build_all()
