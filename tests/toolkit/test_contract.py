"""The toolkit and the server share one contract (inference_app/contract.py): what deploy writes on the
share is what the deployed server reads, through the server's own settings loader."""
import json
import os
import subprocess
import sys

import pytest

import aitk_nb
from helpers import free_port
from inference_app import contract

# run inside the deployed copy of the server code (its folder first on sys.path), as start.sh does
READ_BACK = """
import json, inference_app
from inference_app.settings import load_settings
from inference_app.interface import AdapterRegistry
s = load_settings()
print(json.dumps({"package": inference_app.__file__, "settings_path": str(s.settings_path),
                  "base_model": s.base_model, "base_is_local": s.base_model_is_local,
                  "adapters": {k: str(v) for k, v in s.adapters.items()}, "merge_adapter": s.merge_adapter,
                  "variants": AdapterRegistry(s).variants()}))
"""


def model_and_adapters(root, *names):
    model = root / "tiny-base"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}))
    adapters = []
    for name in names:
        folder = root / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(model)}))
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
        adapters.append(folder)
    return model, adapters


def read_back(share, app):
    env = {k: v for k, v in os.environ.items() if k not in ("AITK_SETTINGS", "AITK_BASE_MODEL", "AITK_MERGE_ADAPTER")}
    out = subprocess.run([sys.executable, "-c", READ_BACK], cwd=share / contract.app_dir(app), check=True, text=True,
                         capture_output=True, env={**env, "AITK_MOUNT_ROOT": str(share)}).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("names, merge", [(("lora-a", "lora-b"), False), (("lora-a",), True)])
def test_what_deploy_writes_is_what_the_deployed_server_reads(project, tmp_path, names, merge):
    aitk_nb.provision("local", project=project, port=free_port(), progress=False)
    model, adapters = model_and_adapters(tmp_path / "assets", *names)
    result = aitk_nb.deploy([str(a) for a in adapters], str(model), project=project, restart=False, progress=False,
                            merge_adapter=merge)
    share = next((project / ".aitk/local/shares").iterdir())

    app = json.loads((project / "infra/inference.config.json").read_text())["ACA_APP_NAME"]
    seen = read_back(share, app)
    assert seen["package"] == str(share / contract.code_dest(app) / "__init__.py")  # the deployed copy, not ours
    assert seen["settings_path"] == str(share / contract.settings_path(app))  # found beside the package, no env var
    assert seen["base_model"] == str(share / contract.MODEL_DIR / "tiny-base") and seen["base_is_local"]
    assert seen["adapters"] == {n: str(share / contract.ADAPTER_DIR / n) for n in names}
    assert seen["merge_adapter"] is merge
    assert seen["variants"] == result.variants == contract.served_variants(names, merge)
    assert result.variants == (["lora-a"] if merge else ["base", "lora-a", "lora-b"])


def test_the_server_reads_every_key_deploy_writes():
    from inference_app.settings import SettingsFile

    assert set(contract.DeployedSettings.KEYS) <= set(SettingsFile.model_fields)
    kept = contract.DeployedSettings.parse(b'{"base_model": "org/m", "adapters": {}, "engine": "transformers"}')
    assert json.loads(kept.dumps()) == {"base_model": "org/m", "adapters": {}, "engine": "transformers"}


def test_the_reserved_names_cover_the_server_s_own_name_for_the_base():
    from inference_app.batching import PEFT_BASE

    assert {contract.BASE, PEFT_BASE} <= contract.RESERVED_NAMES
    assert contract.reserved_name_problem("my-lora", "SmolLM2") is None
    assert contract.reserved_name_problem("SmolLM2", "SmolLM2") == "the name 'SmolLM2' is reserved for the base model"
    assert [contract.base_model_id(v) for v in ("model-cache/SmolLM2", "/abs/SmolLM2/", "org/name")] == [
        "SmolLM2", "SmolLM2", "org/name"]
