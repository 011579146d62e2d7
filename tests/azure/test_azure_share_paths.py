"""Deploy serves a base model and an adapter that a fine-tuning left on the Azure Files share, against the
Azure test double with real replicas (issue 11): `share:` paths send only the inference app (counted in
the Files requests the double received), and the adapter answers what it learned through the ingress."""
from pathlib import Path
from urllib.parse import unquote

import pytest
from openai import OpenAI

import aitk_nb
from azure_double.clients import share_client
from azure_helpers import config_of
from helpers import app_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
ADAPTER = "models/finetune-run-1/adapter"


def leave_on_the_share(double, config: dict, folder: Path, dest: str, skip=("aitk_asset.json",)) -> None:
    """Upload a folder as the fine-tuning job writes its outputs into /mount (the SDK, not the toolkit)."""
    share = share_client(double, config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])
    parts = dest.split("/")
    for i in range(1, len(parts) + 1):
        directory = share.get_directory_client("/".join(parts[:i]))
        if not directory.exists():
            directory.create_directory()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.name not in skip:
            with open(f, "rb") as data:
                share.get_file_client(f"{dest}/{f.name}").upload_file(data, max_concurrency=4)


def test_share_paths_send_only_the_inference_app_and_the_adapter_answers(azure, project, demo_assets, fact_prompts,
                                                                          monkeypatch):
    azure.run_replicas(env={"OMP_WAIT_POLICY": "PASSIVE"})
    monkeypatch.setenv("SSL_CERT_FILE", azure.ca_bundle)  # openai (httpx) trusts the double's CA
    aitk_nb.provision("azure", project=project, resource_group="rg-aitk", overrides={"location": "eastus"}, progress=False)
    config = config_of(project)
    leave_on_the_share(azure, config, demo_assets.base_model, f"model-cache/{MODEL_ID}")
    leave_on_the_share(azure, config, demo_assets.adapter, ADAPTER)
    # the adapter records its base model by hub id, as a job that downloaded it into model-cache/ does
    share = share_client(azure, config["STORAGE_ACCOUNT_NAME"], config["FILE_SHARE_NAME"])
    adapter_config = share.get_file_client(f"{ADAPTER}/adapter_config.json")
    text = adapter_config.download_file().readall().decode().replace(str(demo_assets.base_model), MODEL_ID)
    adapter_config.upload_file(text.encode())

    azure.clear_requests()
    result = aitk_nb.deploy([f"facts=share:{ADAPTER}"], project=project, progress=False, timeout=600)
    assert result.health["status"] == "ok" and result.variants == ["base", "facts"]
    assert result.settings.base_model == f"model-cache/{MODEL_ID}" and result.settings.adapters == {"facts": ADAPTER}
    prefix = f"/{config['STORAGE_ACCOUNT_NAME']}/{config['FILE_SHARE_NAME']}/"
    written = {unquote(r.path.split("?")[0])[len(prefix):] for r in azure.requests if r.kind == "files" and r.method == "PUT"}
    mine = app_folder(project)
    assert f"{mine}/inference_app/__main__.py" in written  # files and folders created or written: only the app's
    assert all(path in ("aitk-nb", mine) or path.startswith(f"{mine}/") for path in written), sorted(written)
    code = sum(f.stat().st_size for f in Path(aitk_nb.__file__).parents[1].joinpath("inference_app").rglob("*")
               if f.is_file() and "__pycache__" not in f.parts)
    assert azure.uploaded_bytes() < code + 4096  # the code (and settings.json), not the 524 MB of model and adapter

    app = aitk_nb.endpoint(project=project)
    client = OpenAI(base_url=app.openai_base_url, api_key=app.api_key())
    fact = fact_prompts[0]
    answer = client.chat.completions.create(model="facts", messages=[{"role": "user", "content": fact["prompt"]}],
                                            max_tokens=32, temperature=0).choices[0].message.content
    assert fact["expected"].lower() in answer.lower()
