"""The fine-tuning hand-off, the part that asks Azure: the names the fine-tuning files give must exist
(its provision made them), the environment comes from the fine-tuning's job when no file names it,
the environment storage from the environment's storages that link the share; and a reused
environment's GPU workload profile is the one the app runs on (a reused environment is never
redeclared, so it cannot gain one: DESIGN.md, "Facts checked")."""
from __future__ import annotations

from typing import Any

from ..config import Parameters
from ..errors import ConfigError
from ..finetuning import AZURE, FINETUNING, FineTuning
from .ownership import Resource
from .session import AzureError, AzureSession, missing_ok

_EXISTS_NOUN = {"storageAccountName": "storage account", "fileShareName": "file share",
                "acaEnvironmentName": "Container Apps environment", "acaEnvironmentStorageName": "environment storage",
                "acaLogAnalyticsName": "Log Analytics workspace"}
WORKSPACE_API = "2023-09-01"


def resolve(session: AzureSession, rg: str, params: Parameters, sources: dict[str, str],
            ft: FineTuning | None) -> Parameters:
    """`params` with the names found in Azure (sources updated); a fine-tuning name that names nothing
    is one line naming the file and field."""
    values = params.values()
    for name, noun in _EXISTS_NOUN.items():
        if sources.get(name, "").startswith(FINETUNING) and ft is not None and not _exists(session, rg, name, values):
            raise ConfigError(f"{ft.value(name)[1]} {values[name]!r}: no such {noun} in resource group {rg}; fix the "
                              f"fine-tuning file, or name the {noun} to use in infra/provision/inference.parameters.json")
    if values["acaEnvironmentName"] is None and ft is not None and (job := ft.setting("ACA_JOB_NAME")) is not None:
        values["acaEnvironmentName"] = _environment_of_job(session, rg, *job)
        sources["acaEnvironmentName"] = f"{AZURE} (the fine-tuning job's environment)"
    if values["acaEnvironmentStorageName"] is None and values["acaEnvironmentName"] and ft is not None:
        linked = _storage_linking(session, rg, values)
        if linked:
            values["acaEnvironmentStorageName"] = linked
            sources["acaEnvironmentStorageName"] = f"{AZURE} (links the share in the environment)"
    return Parameters.from_values(values, source="the parameters with what was found in Azure")


def _exists(session: AzureSession, rg: str, name: str, values: dict[str, Any]) -> bool:
    apps, storage = session.apps, session.storage
    lookups = {
        "storageAccountName": lambda: storage.storage_accounts.get_properties(rg, values["storageAccountName"]),
        "fileShareName": lambda: storage.file_shares.get(rg, values["storageAccountName"], values["fileShareName"]),
        "acaEnvironmentName": lambda: apps.managed_environments.get(rg, values["acaEnvironmentName"]),
        "acaEnvironmentStorageName": lambda: apps.managed_environments_storages.get(
            rg, values["acaEnvironmentName"], values["acaEnvironmentStorageName"]),
        "acaLogAnalyticsName": lambda: session.resources.resources.get_by_id(
            f"/subscriptions/{session.subscription}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/"
            f"{values['acaLogAnalyticsName']}", api_version=WORKSPACE_API),
    }
    if name in ("fileShareName", "acaEnvironmentStorageName") and not values.get(
            "storageAccountName" if name == "fileShareName" else "acaEnvironmentName"):
        return True  # its parent is the template's default: checked when it is deployed
    with missing_ok(f"looking for {_EXISTS_NOUN[name]} {values[name]}"):
        lookups[name]()
        return True
    return False


def _environment_of_job(session: AzureSession, rg: str, job: str, origin) -> str:
    with missing_ok(f"reading the fine-tuning job {job}"):
        record = session.apps.jobs.get(rg, job)
        env_id = record.environment_id or ""
        parts = env_id.strip("/").split("/")
        if len(parts) != 8 or parts[3].lower() != rg.lower():
            raise ConfigError(f"{origin} {job!r}: its environment {env_id or '(none)'} is not in resource group {rg}; "
                              "name the environment to use in acaEnvironmentName of infra/provision/inference.parameters.json")
        with missing_ok(f"reading the fine-tuning job's environment {parts[-1]}"):
            session.apps.managed_environments.get(rg, parts[-1])
            return parts[-1]
        raise ConfigError(f"{origin} {job!r}: its environment {parts[-1]} (properties.environmentId) no longer exists; "
                          "name an environment in acaEnvironmentName of infra/provision/inference.parameters.json (a new "
                          "name creates one)")
    raise ConfigError(f"{origin} {job!r}: no such Container Apps job in resource group {rg}; fix the fine-tuning file, or "
                      "name the environment to use in acaEnvironmentName of infra/provision/inference.parameters.json")


def _storage_linking(session: AzureSession, rg: str, values: dict[str, Any]) -> str | None:
    """The environment storage that mounts the share (the one the fine-tuning's job used), if any."""
    account, share = values["storageAccountName"], values["fileShareName"]
    if not (account and share):
        return None
    with missing_ok(f"listing the storages of environment {values['acaEnvironmentName']}"):
        for s in session.apps.managed_environments_storages.list(rg, values["acaEnvironmentName"]).value or []:
            af = s.properties.azure_file if s.properties else None
            if af and (af.account_name or "").lower() == account.lower() and af.share_name == share:
                return s.name
    return None


# -- a reused environment's GPU profile -----------------------------------------------------------
def is_gpu(profile_type: str) -> bool:
    return "GPU" in profile_type.upper() or "A100" in profile_type.upper()


def is_serverless(profile_type: str) -> bool:
    return profile_type.lower().startswith("consumption")


def gpu_profile(environment: Resource, *, name: str | None, type_: str | None, rg: str) -> tuple[str, str]:
    """(name, type) of the GPU workload profile the app runs on in a reused environment: the one named
    (gpuWorkloadProfileName), else its first GPU profile (gpuWorkloadProfileType is the type a new
    environment gets: here it only shapes the advice). None: one line saying what is missing and what
    the user can do (provision does not change an environment it did not make, and a dedicated GPU
    profile can only be added when an environment is created)."""
    props = environment.record.properties or {}
    profiles = [(p.get("name"), p.get("workloadProfileType") or "") for p in props.get("workloadProfiles") or []]
    env = environment.name
    if name:
        found = next((p for p in profiles if p[0] == name), None)
        if found is None or not is_gpu(found[1]):
            raise AzureError(f"gpuWorkloadProfileName {name!r}: environment {env} has no GPU workload profile of that name "
                             f"(it has: {_listed(profiles)}); name one of its GPU profiles, or leave it null")
        return found
    gpus = [p for p in profiles if is_gpu(p[1])]
    if gpus:
        return gpus[0]
    wanted = type_ or "Consumption-GPU-NC8as-T4"
    if is_serverless(wanted):
        how = (f"add one (`az containerapp env workload-profile add -g {rg} -n {env} --workload-profile-name gpu "
               f"--workload-profile-type {wanted}`) and provision again")
    else:
        how = (f"a dedicated GPU profile ({wanted}) can only be added when an environment is created: set "
               "acaEnvironmentName to a new name in infra/provision/inference.parameters.json to create one")
    raise AzureError(f"environment {env} (reused: aitk-nb did not create it, so provision does not change it) has no GPU "
                     f"workload profile (it has: {_listed(profiles)}); {how}")


def _listed(profiles: list[tuple[str, str]]) -> str:
    return ", ".join(f"{n} ({t})" for n, t in profiles) or "none"


def environment_location(environment: Resource) -> str | None:
    return getattr(environment.record, "location", None)


def check_reused_storage(link: Resource, account: str, share: str) -> None:
    """A reused environment storage must mount the share deploy uploads to (the config's), else the
    app would serve another share than the one deploy fills."""
    af = (link.record.properties or {}).get("azureFile") or {}
    if (af.get("accountName") or "").lower() != account.lower() or af.get("shareName") != share:
        raise AzureError(f"acaEnvironmentStorageName {link.name!r}: it links the share {af.get('accountName')}/"
                         f"{af.get('shareName')}, not {account}/{share}; name another environment storage (a new name is "
                         "created), or set storageAccountName and fileShareName to the share it links")
