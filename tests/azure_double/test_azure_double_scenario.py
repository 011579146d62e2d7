"""The ready-made fine-tuning leftovers: everything there, as the SDK shows it, with the real demo files."""
from __future__ import annotations

import json

from azure_double.clients import clients
from azure_double.scenario import finetuning_leftovers


def test_a_group_a_finetuning_left_behind(azure_double, tmp_path):
    model = tmp_path / "SmolLM2"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    (model / "sub" / "tokenizer.json").write_bytes(b"{}" * 5000)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/m", "peft_type": "LORA"}))
    (adapter / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    ft = finetuning_leftovers(azure_double, base_model=model, model_id="HuggingFaceTB/SmolLM2-135M-Instruct", adapter=adapter)
    res, _, apps, st, _ = clients(azure_double)
    env = apps.managed_environments.get(ft.resource_group, ft.environment)
    assert [(p.name, p.workload_profile_type) for p in env.workload_profiles] == [("Consumption", "Consumption"), ("gpu-a100", "NC24-A100")]
    job = apps.jobs.get(ft.resource_group, ft.job)
    assert job.environment_id == env.id == ft.environment_id and job.workload_profile_name == "gpu-a100"
    assert st.storage_accounts.get_properties(ft.resource_group, ft.storage_account).tags == {"created-by": "ai-toolkit-finetuning"}
    storage = apps.managed_environments_storages.get(ft.resource_group, ft.environment, ft.environment_storage)
    assert (storage.properties.azure_file.account_name, storage.properties.azure_file.share_name) == (ft.storage_account, ft.share)
    files = azure_double.state.files(ft.storage_account, ft.share)
    assert files["model-cache/HuggingFaceTB/SmolLM2-135M-Instruct/config.json"] == (model / "config.json").read_bytes()
    assert files["model-cache/HuggingFaceTB/SmolLM2-135M-Instruct/sub/tokenizer.json"] == b"{}" * 5000
    assert files[f"{ft.adapter_path}/adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").read_bytes()
    assert ft.model_path == "model-cache/HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {r.type for r in res.resources.list_by_resource_group(ft.resource_group)} == {
        "Microsoft.OperationalInsights/workspaces", "Microsoft.App/managedEnvironments", "Microsoft.Storage/storageAccounts",
        "Microsoft.App/jobs"}
    ft.write_project_files(tmp_path / "proj")
    config = json.loads((tmp_path / "proj" / "infra" / "finetuning.config.json").read_text())
    assert config == {"SUBSCRIPTION_ID": azure_double.subscription_id, "RESOURCE_GROUP_NAME": ft.resource_group,
                      "STORAGE_ACCOUNT_NAME": ft.storage_account, "FILE_SHARE_NAME": ft.share, "ACA_JOB_NAME": ft.job,
                      "COMMANDS": ft.commands}
    params = json.loads((tmp_path / "proj" / "infra" / "provision" / "finetuning.parameters.json").read_text())["parameters"]
    assert params["acaEnvironmentName"]["value"] == ft.environment and params["acaLogAnalyticsName"]["value"] == ft.workspace
