"""What an AI Toolkit fine-tuning leaves behind, made on this machine for the local target (issue 11):

    infra/finetuning.config.json                 the job's resources (FILE_SHARE_NAME; no Azure ones here)
    infra/provision/finetuning.parameters.json   the fine-tuning's parameters (fileShareName)
    .aitk/local/shares/<share>/                  the share: the local target's mount root for that name
        model-cache/<org>/<model>/               the base model, where the job downloads it
        models/<run>/adapter/                    the adapter the job trained

The base model and the adapter are the demo's (built once and cached, as `build_assets.py` builds
them); the adapter is trained on the base model in model-cache/, and its adapter_config.json records
that model as the job in the container saw it (`/mount/model-cache/<org>/<model>`). The 517 MB model
is hard-linked into the share when the file system allows, else copied."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .base_model import ensure_base
from .cache import STAMP
from .training import ensure_adapter

MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # where the job downloads it: model-cache/<org>/<model>
RUN = "demo-facts-run"
DEFAULT_SHARE = "finetune-demo"


def finetuning_layout(project: Path, share: str = DEFAULT_SHARE) -> dict[str, str]:
    """Lay the demo out in `project` as a fine-tuning job would; returns the paths a deploy names."""
    project = Path(project).resolve()
    root = project / ".aitk" / "local" / "shares" / share
    base = ensure_base()
    adapter = ensure_adapter(base)
    model_dir = root / "model-cache" / MODEL_ID
    adapter_dir = root / "models" / RUN / "adapter"
    _place(base, model_dir, link=True)
    _place(adapter, adapter_dir, link=False)
    config_path = adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = f"/mount/model-cache/{MODEL_ID}"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    _write(project / "infra" / "finetuning.config.json", {
        "SUBSCRIPTION_ID": None, "RESOURCE_GROUP_NAME": None, "STORAGE_ACCOUNT_NAME": None, "FILE_SHARE_NAME": share,
        "ACA_JOB_NAME": None, "COMMANDS": None})
    parameters = {"location": None, "defaultCommands": ["cd /mount", "python finetuning/train.py"],
                  "maximumInstanceCount": 1, "storageAccountName": None, "fileShareName": share,
                  "acaEnvironmentName": None, "acaEnvironmentStorageName": None, "acaJobName": None,
                  "acaLogAnalyticsName": None}
    _write(project / "infra" / "provision" / "finetuning.parameters.json", {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
        "contentVersion": "1.0.0.0", "parameters": {k: {"value": v} for k, v in parameters.items()}})
    return {"project": str(project), "share": share, "share_folder": str(root),
            "model": f"model-cache/{MODEL_ID}", "adapter": f"models/{RUN}/adapter"}


def _place(source: Path, dest: Path, *, link: bool) -> None:
    """The files of a cached asset (not its cache stamp) in `dest`, replacing what was there."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        if not f.is_file() or f.name == STAMP:
            continue
        if link:
            try:
                os.link(f, dest / f.name)
                continue
            except OSError:  # another file system, or links not allowed: a copy
                pass
        shutil.copy2(f, dest / f.name)


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
