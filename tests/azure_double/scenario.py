"""Ready-made states for tests, built through the real SDK clients as a user's tools would build them:

- `provision`: a resource group with the repo's template deployed, so a deploy/status/logs test can
  start from "provisioned".
- `finetuning_leftovers`: a resource group that an AI Toolkit fine-tuning left behind (a Log
  Analytics workspace, an environment with its own dedicated GPU profile, a tagged storage account
  and a share holding the base model under model-cache/<org>/<model>/ and an adapter under models/,
  the environment storage on that share, and the fine-tuning job), plus the project files the
  fine-tuning step writes (infra/finetuning.config.json, infra/provision/finetuning.parameters.json)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .clients import clients, share_client

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "provision" / "inference.json"


def deployment_body(parameters: dict | None = None, template: dict | None = None) -> dict:
    tpl = template or json.loads(TEMPLATE.read_text())
    return {"properties": {"template": tpl, "mode": "Incremental",
                           "parameters": {k: {"value": v} for k, v in (parameters or {}).items()}}}


def provision(double, resource_group: str = "rg-aitk", app_name: str = "aitk-app", deployment: str = "aitk-inference",
              parameters: dict | None = None, location: str = "eastus") -> dict:
    """Create the group and deploy the template; returns the outputs {NAME: value}."""
    res, dep, *_ = clients(double)
    res.resource_groups.create_or_update(resource_group, {"location": location})
    params = {"acaAppName": app_name, **(parameters or {})}
    result = dep.deployments.begin_create_or_update(resource_group, deployment, deployment_body(params)).result()
    return {k: v["value"] for k, v in result.properties.outputs.items()}


@dataclass
class FineTuning:
    """What a fine-tuning left in Azure, by name; `model_path` and `adapter_path` are share paths."""

    subscription_id: str
    resource_group: str
    location: str
    workspace: str
    environment: str
    environment_id: str
    gpu_profile: str
    storage_account: str
    share: str
    environment_storage: str
    job: str
    model_path: str
    adapter_path: str
    commands: list[str] = field(default_factory=list)

    def config(self) -> dict:
        """infra/finetuning.config.json as the AI Toolkit writes it."""
        return {"SUBSCRIPTION_ID": self.subscription_id, "RESOURCE_GROUP_NAME": self.resource_group,
                "STORAGE_ACCOUNT_NAME": self.storage_account, "FILE_SHARE_NAME": self.share, "ACA_JOB_NAME": self.job,
                "COMMANDS": self.commands or None}

    def parameters(self) -> dict:
        """infra/provision/finetuning.parameters.json (an ARM parameters file)."""
        values = {"location": self.location, "defaultCommands": self.commands, "maximumInstanceCount": 1,
                  "storageAccountName": self.storage_account, "fileShareName": self.share,
                  "acaEnvironmentName": self.environment, "acaEnvironmentStorageName": self.environment_storage,
                  "acaJobName": self.job, "acaLogAnalyticsName": self.workspace}
        return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
                "contentVersion": "1.0.0.0", "parameters": {k: {"value": v} for k, v in values.items()}}

    def write_project_files(self, project: Path) -> None:
        (project / "infra" / "provision").mkdir(parents=True, exist_ok=True)
        (project / "infra" / "finetuning.config.json").write_text(json.dumps(self.config(), indent=2))
        (project / "infra" / "provision" / "finetuning.parameters.json").write_text(json.dumps(self.parameters(), indent=2))


def finetuning_leftovers(double, resource_group: str = "rg-finetune", *, location: str = "westus3",
                         base_model: Path | None = None, model_id: str = "org/base-model", adapter: Path | None = None,
                         adapter_path: str = "models/finetune-run-1/adapter", storage_account: str = "ftstorage0001",
                         share: str = "finetune", environment: str = "ft-env", workspace: str = "ft-logs",
                         environment_storage: str = "ft-share", job: str = "ft-job", gpu_profile: str = "gpu-a100",
                         gpu_profile_type: str = "NC24-A100", storage_tags: dict | None = None) -> FineTuning:
    """Build the group with the SDK (PUTs as the fine-tuning's own deployment would make them) and
    upload the base model folder and the adapter folder to the share (small stand-ins when none is
    given: a config.json, a tokenizer file, an adapter_config.json, adapter_model.safetensors)."""
    _, _, apps, st, _ = clients(double)
    sub = double.subscription_id
    env = _group_with_environment(double, resource_group, location, workspace, environment, {
        "name": gpu_profile, "workloadProfileType": gpu_profile_type, "minimumCount": 0, "maximumCount": 1})
    st.storage_accounts.begin_create(resource_group, storage_account, {
        "location": location, "sku": {"name": "Standard_LRS"}, "kind": "StorageV2",
        "tags": storage_tags if storage_tags is not None else {"created-by": "ai-toolkit-finetuning"}}).result()
    st.file_shares.create(resource_group, storage_account, share, {})
    key = st.storage_accounts.list_keys(resource_group, storage_account).keys_property[0].value
    apps.managed_environments_storages.create_or_update(resource_group, environment, environment_storage, {"properties": {"azureFile": {
        "accountName": storage_account, "accountKey": key, "shareName": share, "accessMode": "ReadWrite"}}})
    commands = ["cd /mount", "python finetuning/train.py"]
    apps.jobs.begin_create_or_update(resource_group, job, {"location": location, "properties": {
        "environmentId": env.id, "workloadProfileName": gpu_profile,
        "configuration": {"triggerType": "Manual", "replicaTimeout": 36000, "replicaRetryLimit": 0,
                          "manualTriggerConfig": {"replicaCompletionCount": 1, "parallelism": 1}},
        "template": {"containers": [{"name": "finetune", "image": "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04",
                                     "command": ["/bin/bash", "-c", "; ".join(commands)],
                                     "resources": {"cpu": 24, "memory": "220Gi"},
                                     "volumeMounts": [{"volumeName": "share", "mountPath": "/mount"}]}],
                     "volumes": [{"name": "share", "storageType": "AzureFile", "storageName": environment_storage}]}}}).result()
    files = share_client(double, storage_account, share)
    model_path = f"model-cache/{model_id}"
    _upload(files, model_path, _folder(base_model, {"config.json": json.dumps({"model_type": "llama"}), "tokenizer.json": "{}"}))
    _upload(files, adapter_path, _folder(adapter, {"adapter_config.json": json.dumps(
        {"base_model_name_or_path": model_id, "peft_type": "LORA", "r": 8}), "adapter_model.safetensors": b"\0" * 1024}))
    return FineTuning(sub, resource_group, location, workspace, environment, env.id, gpu_profile, storage_account, share,
                      environment_storage, job, model_path, adapter_path, commands)


def _group_with_environment(double, resource_group: str, location: str, workspace: str, environment: str, gpu: dict):
    """The group, a Log Analytics workspace and an environment logging to it, with a Consumption profile and
    the `gpu` one; returns the environment."""
    from azure.core.rest import HttpRequest

    res, _, apps, _, _ = clients(double)
    res.resource_groups.create_or_update(resource_group, {"location": location})
    ws_id = (f"/subscriptions/{double.subscription_id}/resourceGroups/{resource_group}/providers/"
             f"Microsoft.OperationalInsights/workspaces/{workspace}")
    ws = res.resources.begin_create_or_update_by_id(ws_id, {"location": location, "properties": {"sku": {"name": "PerGB2018"},
                                                                                                 "retentionInDays": 30}},
                                                    api_version="2023-09-01").result()
    keys = res.send_request(HttpRequest("POST", f"{double.arm_endpoint}{ws_id}/sharedKeys?api-version=2023-09-01")).json()
    return apps.managed_environments.begin_create_or_update(resource_group, environment, {
        "location": location, "properties": {
            "appLogsConfiguration": {"destination": "log-analytics", "logAnalyticsConfiguration": {
                "customerId": ws.properties["customerId"], "sharedKey": keys["primarySharedKey"]}},
            "workloadProfiles": [{"name": "Consumption", "workloadProfileType": "Consumption"}, gpu]}}).result()


def _folder(path: Path | None, stand_in: dict[str, str | bytes]) -> dict[str, bytes]:
    """{relative path: bytes} of a folder's files, or the stand-in files."""
    if path is None:
        return {k: v.encode() if isinstance(v, str) else v for k, v in stand_in.items()}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(Path(path).rglob("*")) if p.is_file()}


def _upload(share, dest: str, files: dict[str, bytes]) -> None:
    made = set()
    for rel, data in files.items():
        parts = f"{dest}/{rel}".split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in made:
                if not share.get_directory_client(folder).exists():
                    share.create_directory(folder)
                made.add(folder)
        share.get_file_client("/".join(parts)).upload_file(data)


AITK_COMMANDS = ["cd /mount", "pip install -r ./setup/requirements.txt", "cd /mount/inference",
                 "pip install -r ./requirements.txt", "python3 ./gradio_chat.py"]


@dataclass
class AitkInference:
    """An inference app that AI Toolkit for VS Code provisioned, by name, and the project files it left."""

    config: dict  # infra/inference.config.json: the six keys, no TARGET, ACA_APP_ENDPOINT a bare host name
    environment: str
    environment_storage: str
    workspace: str
    model_path: str
    adapter_path: str

    def write_project_files(self, project: Path) -> None:
        (project / "infra" / "provision").mkdir(parents=True, exist_ok=True)
        (project / "infra" / "inference.config.json").write_text(json.dumps(self.config, indent=2))
        values = {"location": "westus3", "defaultCommands": AITK_COMMANDS, **{k: None for k in (
            "storageAccountName", "fileShareName", "acaEnvironmentName", "acaEnvironmentStorageName", "acaAppName",
            "acaLogAnalyticsName")}}
        (project / "infra" / "provision" / "inference.parameters.json").write_text(json.dumps({
            "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
            "contentVersion": "1.0.0.0", "parameters": {k: {"value": v} for k, v in values.items()}}, indent=2))


def aitk_inference(double, resource_group: str = "rg-phi3-finetune", *, suffix: str = "x7k2q9",
                   location: str = "westus3", model_id: str = "microsoft/Phi-3-mini-4k-instruct") -> AitkInference:
    """Build, with the SDK, what AI Toolkit's own inference template makes (its shapes as
    ../shared/aitk-inference-example/README.md gives them): a storage account with a 1 TiB share mounted
    at /mount, Log Analytics, an environment with a Consumption and a GPU profile and the environment
    storage, and one container app on the GPU profile running `python3 ./gradio_chat.py` (image
    pytorch/pytorch, 24 CPU / 220 GiB, `bash -c` with the commands joined by '; ', external ingress on
    7860 without authentication, no secrets, probes on `/`, minReplicas 1, maxReplicas 1, no tag naming
    who made it); on the share its server in inference/, the base model in model-cache/ and the adapter
    under models/qlora/."""
    _, _, apps, st, _ = clients(double)
    account, share, environment, workspace = f"aistorage{suffix}", "aifileshare", f"aiacaenv{suffix}", f"ailogs{suffix}"
    link, app = "aifileshare", f"aiacaapp{suffix}"
    env = _group_with_environment(double, resource_group, location, workspace, environment,
                                  {"name": "GPU", "workloadProfileType": "Consumption-GPU-NC24-A100"})
    st.storage_accounts.begin_create(resource_group, account, {"location": location, "sku": {"name": "Standard_LRS"},
                                                               "kind": "StorageV2"}).result()
    st.file_shares.create(resource_group, account, share, {"properties": {"shareQuota": 1024}})
    key = st.storage_accounts.list_keys(resource_group, account).keys_property[0].value
    apps.managed_environments_storages.create_or_update(resource_group, environment, link, {"properties": {"azureFile": {
        "accountName": account, "accountKey": key, "shareName": share, "accessMode": "ReadWrite"}}})
    probe = {"httpGet": {"path": "/", "port": 7860}, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 30}
    made = apps.container_apps.begin_create_or_update(resource_group, app, {"location": location, "properties": {
        "environmentId": env.id, "workloadProfileName": "GPU",
        "configuration": {"activeRevisionsMode": "Single",
                          "ingress": {"external": True, "targetPort": 7860, "transport": "auto", "allowInsecure": False}},
        "template": {"containers": [{"name": app, "image": "pytorch/pytorch:latest",
                                     "command": ["/bin/bash", "-c", "; ".join(AITK_COMMANDS)],
                                     "resources": {"cpu": 24, "memory": "220Gi"},
                                     "probes": [{"type": t, **probe} for t in ("Startup", "Liveness", "Readiness")],
                                     "volumeMounts": [{"volumeName": "azurefile", "mountPath": "/mount"}]}],
                     "scale": {"minReplicas": 1, "maxReplicas": 1},
                     "volumes": [{"name": "azurefile", "storageType": "AzureFile", "storageName": link}]}}}).result()
    files = share_client(double, account, share)
    _upload(files, "inference", {"gradio_chat.py": b"import gradio  # AI Toolkit's server\n", "utils.py": b"\n",
                                 "requirements.txt": b"gradio\ntransformers\npeft\n"})
    _upload(files, "setup", {"requirements.txt": b"torch\n"})
    model_path, adapter_path = f"model-cache/{model_id}", "models/qlora/qlora/gpu_model/adapter"
    _upload(files, model_path, {"config.json": json.dumps({"model_type": "phi3"}).encode(), "tokenizer.json": b"{}"})
    _upload(files, adapter_path, {"adapter_config.json": json.dumps({"base_model_name_or_path": model_id,
                                                                      "peft_type": "LORA", "r": 8}).encode(),
                                  "adapter_model.safetensors": b"\0" * 1024})
    config = {"SUBSCRIPTION_ID": double.subscription_id, "RESOURCE_GROUP_NAME": resource_group, "STORAGE_ACCOUNT_NAME": account,
              "FILE_SHARE_NAME": share, "ACA_APP_NAME": app,
              "ACA_APP_ENDPOINT": made.configuration.ingress.fqdn}  # AI Toolkit's template outputs ingress.fqdn as it is
    return AitkInference(config, environment, link, workspace, model_path, adapter_path)
