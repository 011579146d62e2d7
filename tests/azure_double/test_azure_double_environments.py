"""Managed environments, their storages, jobs and GPU usages, through the real SDK clients."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from azure_double.clients import clients

RG = "rg-env"
LOC = "westus3"


@pytest.fixture
def arm(azure_double):
    res, dep, apps, st, _ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": LOC})
    return azure_double, apps, st


def _env(apps, name: str, profiles: list[dict]):
    return apps.managed_environments.begin_create_or_update(RG, name, {"location": LOC, "properties": {"workloadProfiles": profiles}}).result()


CONSUMPTION = {"name": "Consumption", "workloadProfileType": "Consumption"}
A100 = {"name": "gpu-a100", "workloadProfileType": "NC24-A100", "minimumCount": 0, "maximumCount": 1}
T4 = {"name": "gpu-t4", "workloadProfileType": "Consumption-GPU-NC8as-T4"}


def _app(apps, name: str, env_id: str, profile: str, *, key: str = "environmentId"):
    return apps.container_apps.begin_create_or_update(RG, name, {
        "location": LOC, "properties": {key: env_id, "workloadProfileName": profile,
                                        "template": {"containers": [{"name": "c", "image": "x"}], "scale": {"minReplicas": 1, "maxReplicas": 1}}}}).result()


def test_workload_profiles_added_removed_and_used(arm):
    double, apps, st = arm
    env = _env(apps, "env1", [CONSUMPTION, A100])
    assert [(p.name, p.workload_profile_type) for p in apps.managed_environments.get(RG, "env1").workload_profiles] == \
        [("Consumption", "Consumption"), ("gpu-a100", "NC24-A100")]
    # a dedicated GPU profile only at creation; a serverless GPU profile can come later
    _env(apps, "env2", [CONSUMPTION])
    with pytest.raises(HttpResponseError) as e:
        _env(apps, "env2", [CONSUMPTION, A100])
    assert e.value.error.code == "WorkloadProfileCannotBeAdded" and "only be added when the environment is created" in e.value.error.message
    _env(apps, "env1", [CONSUMPTION, A100, T4])
    with pytest.raises(HttpResponseError) as e:
        _env(apps, "env1", [CONSUMPTION, A100, {**T4, "minimumCount": 1}])
    assert e.value.error.code == "WorkloadProfilePropertyNotSupported"
    assert e.value.error.message == "Workload Profile property 'MinimumCount' is not supported for Consumption_GPU_NC8as_T4"
    # an app needs a profile the environment has; apps accept environmentId or the older managedEnvironmentId
    with pytest.raises(HttpResponseError) as e:
        _app(apps, "app1", env.id, "gpu-missing")
    assert e.value.error.code == "WorkloadProfileNameNotFound" and "gpu-a100" in e.value.error.message
    app = _app(apps, "app1", env.id, "gpu-a100", key="managedEnvironmentId")
    assert app.environment_id == app.managed_environment_id == env.id
    # a profile in use cannot be removed; the environment cannot be deleted under its app
    with pytest.raises(HttpResponseError) as e:
        _env(apps, "env1", [CONSUMPTION, T4])
    assert e.value.error.code == "WorkloadProfileInUse" and "app1" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        apps.managed_environments.begin_delete(RG, "env1").result()
    assert e.value.error.code == "ManagedEnvironmentHasContainerApps"
    apps.container_apps.begin_delete(RG, "app1").result()
    _env(apps, "env1", [CONSUMPTION, T4])                    # no app on it now: it may go


def test_environment_storages_and_jobs(arm):
    double, apps, st = arm
    env = _env(apps, "env1", [CONSUMPTION, A100])
    st.storage_accounts.begin_create(RG, "envstore01", {"location": LOC, "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    st.file_shares.create(RG, "envstore01", "ft", {})
    key = st.storage_accounts.list_keys(RG, "envstore01").keys_property[0].value
    apps.managed_environments_storages.create_or_update(RG, "env1", "ft-share", {"properties": {"azureFile": {
        "accountName": "envstore01", "accountKey": key, "shareName": "ft", "accessMode": "ReadWrite"}}})
    listed = list(apps.managed_environments_storages.list(RG, "env1").value)
    assert [(s.name, s.properties.azure_file.share_name, s.properties.azure_file.account_key) for s in listed] == [("ft-share", "ft", None)]
    assert apps.managed_environments_storages.get(RG, "env1", "ft-share").properties.azure_file.account_name == "envstore01"
    with pytest.raises(HttpResponseError) as e:
        apps.managed_environments_storages.create_or_update(RG, "env1", "bad", {"properties": {"azureFile": {
            "accountName": "envstore01", "accountKey": "wrong", "shareName": "ft", "accessMode": "ReadWrite"}}})
    assert e.value.error.code == "ManagedEnvironmentStorageAccountKeyInvalid"
    job = apps.jobs.begin_create_or_update(RG, "finetune-job", {"location": LOC, "properties": {
        "environmentId": env.id, "workloadProfileName": "gpu-a100",
        "configuration": {"triggerType": "Manual", "replicaTimeout": 3600},
        "template": {"containers": [{"name": "ft", "image": "x", "command": ["python", "finetune.py"]}]}}}).result()
    assert job.environment_id == env.id and job.configuration.trigger_type == "Manual"
    assert [j.name for j in apps.jobs.list_by_resource_group(RG)] == ["finetune-job"]
    assert apps.jobs.get(RG, "finetune-job").workload_profile_name == "gpu-a100"
    with pytest.raises(HttpResponseError) as e:       # the job runs on the A100 profile
        _env(apps, "env1", [CONSUMPTION])
    assert e.value.error.code == "WorkloadProfileInUse" and "finetune-job" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        apps.jobs.begin_create_or_update(RG, "orphan", {"location": LOC, "properties": {
            "environmentId": env.id.replace("env1", "gone"), "configuration": {"triggerType": "Manual", "replicaTimeout": 60},
            "template": {"containers": []}}}).result()
    assert e.value.error.code == "ManagedEnvironmentNotFound"


def test_gpu_usage_counts_the_replicas_that_hold_gpus(arm):
    double, apps, st = arm
    env = _env(apps, "env1", [CONSUMPTION, T4, A100])
    usage = lambda: {u.name.value: (u.current_value, u.limit) for u in apps.usages.list(LOC)}  # noqa: E731
    assert usage()["ManagedEnvironmentConsumptionT4Gpus"] == (0, 1)
    _app(apps, "gpu-app", env.id, "gpu-t4")
    _app(apps, "cpu-app", env.id, "Consumption")
    _app(apps, "a100-app", env.id, "gpu-a100")          # a dedicated profile bills nodes, not this serverless quota
    assert usage()["ManagedEnvironmentConsumptionT4Gpus"] == (1, 1)   # an app at the quota shows its own use
    double.set_quota("ManagedEnvironmentConsumptionT4Gpus", limit=4, current=2, location=LOC)
    assert usage()["ManagedEnvironmentConsumptionT4Gpus"] == (3, 4)   # plus what the rest of the subscription holds
    apps.container_apps.begin_stop(RG, "gpu-app").result()
    assert usage()["ManagedEnvironmentConsumptionT4Gpus"] == (2, 4)
    assert {u.name.value: u.current_value for u in apps.usages.list("eastus")}["ManagedEnvironmentConsumptionT4Gpus"] == 0
