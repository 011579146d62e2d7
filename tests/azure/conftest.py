"""The azure target against the Azure test double: the toolkit process sees the double as Azure
through its environment only (ARM endpoint, CA bundle, managed-identity endpoint), so the real
DefaultAzureCredential and the real SDK clients do every call."""
import json
import os
from pathlib import Path

import pytest

@pytest.fixture
def small_assets(tmp_path) -> tuple[Path, Path]:
    """A stand-in base model folder (config.json and 6 MB of weights) and a PEFT adapter folder:
    enough bytes to exercise chunked uploads; the double's stand-in replica does not load them."""
    model = tmp_path / "tiny-base"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (model / "model.safetensors").write_bytes(os.urandom(6 * 2**20))
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(model), "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(2**20 + 12345))
    return model, adapter
