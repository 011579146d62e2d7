"""The double's response bodies against the official x-ms-examples (tests/azure_double/rest-examples,
copied from ../shared/azure-rest-examples):
every key of the example's body must be in the double's body with the same JSON type, except the
listed optional features the double does not model (each with its reason)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from azure_double.scenario import deployment_body, provision

EXAMPLES = Path(__file__).resolve().parent / "rest-examples"  # a copy of ../shared/azure-rest-examples
RG = "rg-shapes"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"{EXAMPLES} is not present")

# free-form objects (their keys are the user's) and optional features the double leaves out
FREE_FORM = ("properties.outputs.", "properties.parameters.", "tags.", "properties.template.containers[].resources.",
             "properties.configuration.secrets[].", "value[].properties.template.", "properties.template.scale.",
             "properties.changes[].delta[].before", "properties.changes[].delta[].after")   # what-if: the property's own value
OPTIONAL = {
    "resources/PutDeploymentResourceGroup.json": {"properties.templateLink"},
    "resources/PostDeploymentValidateOnResourceGroup.json": {"properties.templateLink"},
    "resources/PostDeploymentWhatIfOnResourceGroup.json": {"properties.changes[].after.tags", "properties.changes[].before.location"},
    "subscriptions/GetLocations.json": {"value[].availabilityZoneMappings", "value[].metadata.geography",
                                        "value[].metadata.geographyGroup", "value[].metadata.latitude",
                                        "value[].metadata.longitude", "value[].metadata.pairedRegion",
                                        "value[].metadata.physicalLocation"},
    # identity, custom domains, Dapr, service binds, init containers, registries...: not used by aitk-nb
    "app/ContainerApps_Get.json": {"identity", "properties.configuration.ingress.customDomains",
                                   "properties.configuration.ingress.ipSecurityRestrictions",
                                   "properties.configuration.ingress.stickySessions",
                                   "properties.configuration.ingress.clientCertificateMode",
                                   "properties.configuration.ingress.corsPolicy",
                                   "properties.configuration.ingress.additionalPortMappings",
                                   "properties.configuration.ingress.targetPortHttpScheme",
                                   "properties.configuration.dapr", "properties.configuration.maxInactiveRevisions",
                                   "properties.configuration.service", "properties.configuration.identitySettings",
                                   "properties.configuration.runtime", "properties.template.initContainers",
                                   "properties.template.serviceBinds", "properties.template.revisionSuffix",
                                   "properties.template.containers[].probes[].httpGet.httpHeaders",
                                   "properties.template.containers[].probes[].initialDelaySeconds",
                                   "properties.template.containers[].probes[].tcpSocket",
                                   "properties.template.scale.cooldownPeriod", "properties.template.scale.pollingInterval",
                                   "properties.template.volumes", "properties.template.containers[].volumeMounts",
                                   "properties.patchingConfiguration", "properties.deploymentErrors",
                                   "properties.kind", "kind",
                                   # the double routes traffic with latestRevision: true
                                   "properties.configuration.ingress.traffic[].revisionName",
                                   "properties.template.containers[].volumeMounts[].subPath"},
    "app/ManagedEnvironments_Get.json": {"properties.deploymentErrors", "properties.zoneRedundant", "properties.vnetConfiguration",
                                         "properties.customDomainConfiguration", "properties.kedaConfiguration",
                                         "properties.daprConfiguration", "properties.infrastructureResourceGroup",
                                         "properties.peerAuthentication", "properties.peerTrafficConfiguration",
                                         "properties.ingressConfiguration", "properties.workloadProfiles[].minimumCount",
                                         "properties.workloadProfiles[].maximumCount"},
    "app/Revisions_Get.json": set(),
    "app/Revisions_List.json": set(),
    "app/Replicas_List.json": {"value[].properties.containers[].runningStateDetails"},
    # Key Vault references for the account key: not used by aitk-nb
    "app/ManagedEnvironmentsStorages_List.json": {"value[].properties.azureFile.accountKeyVaultProperties"},
}


def compare(expected, actual, path: str = "") -> list[str]:
    """Paths where `actual` lacks a key of `expected` or has another JSON type."""
    if any(path.startswith(p) for p in FREE_FORM):
        return []
    if expected is None or actual is None:   # null: an optional value that is not set
        return []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path or '<root>'}: expected object, got {type(actual).__name__}"]
        out = []
        for k, v in expected.items():
            p = f"{path}.{k}" if path else k
            if any(p.startswith(f) for f in FREE_FORM) or ".tags." in f".{p}":
                continue
            if k not in actual:
                out.append(p)
            else:
                out += compare(v, actual[k], p)
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected array, got {type(actual).__name__}"]
        if expected and actual:
            return compare(expected[0], actual[0], path + "[]")
        return []
    kinds = (bool,) if isinstance(expected, bool) else (int, float) if isinstance(expected, (int, float)) else (str,)
    if not isinstance(actual, kinds) or (kinds != (bool,) and isinstance(actual, bool)):
        return [f"{path}: expected {type(expected).__name__}, got {type(actual).__name__}"]
    return []


def check(name: str, status: str, actual) -> None:
    example = json.loads((EXAMPLES / name).read_text())["responses"][status]
    missing = [p for p in compare(example.get("body"), actual) if p.split(":")[0] not in OPTIONAL.get(name, set())]
    assert not missing, f"{name} {status}: the double's body lacks or mistypes {missing}"


@pytest.fixture
def api(azure_double):
    out = provision(azure_double, RG, "app1")
    client = httpx.Client(base_url=azure_double.arm_endpoint, verify=azure_double.client_ssl_context(),
                          headers={"Authorization": f"Bearer {azure_double.token}"})
    sub = azure_double.subscription_id
    rg = f"/subscriptions/{sub}/resourcegroups/{RG}"
    yield client, out, sub, rg
    client.close()


def _poll(client, resp, api_version):
    while resp.status_code == 202:
        time.sleep(0.05)
        resp = client.get(resp.headers["Location"])
    return resp


def test_resources_shapes(api, azure_double):
    client, out, sub, rg = api
    v = {"api-version": "2025-04-01"}
    dep = f"{rg}/providers/Microsoft.Resources/deployments"
    check("resources/PutDeploymentWithExternalInputs.json", "200", client.get(f"{dep}/aitk-inference", params=v).json())
    created = client.put(f"{dep}/second", params=v, json=deployment_body({"acaAppName": "app1"}))
    assert created.status_code == 201 and "Azure-AsyncOperation" in created.headers
    check("resources/PutDeploymentResourceGroup.json", "201", created.json())
    check("resources/PutDeploymentWithExternalInputs.json", "201", created.json())
    val = client.post(f"{dep}/third/validate", params=v, json=deployment_body({"acaAppName": "app1"}))
    check("resources/PostDeploymentValidateOnResourceGroup.json", "200", val.json())
    # a preflight refusal (a provider's own check) comes wrapped with details, as the official example shows
    bad = client.post(f"{dep}/third/validate", params=v, json=deployment_body({"storageAccountName": "Not_Valid_Name"}))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidTemplateDeployment"
    check("resources/PostDeploymentValidateOnResourceGroup.json", "400", bad.json())
    assert bad.json()["error"]["details"][0]["details"][0]["code"] == "AccountNameInvalid"
    # a template or parameter error is ARM's own: InvalidTemplate, no details
    bad = client.post(f"{dep}/third/validate", params=v, json=deployment_body({"maximumInstanceCount": 0}))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidTemplate"
    assert bad.json()["error"]["message"].startswith("Deployment template validation failed: 'The provided value for the template parameter 'maximumInstanceCount'")
    wi = client.post(f"{dep}/third/whatIf", params=v, json=deployment_body({"acaAppName": "app1", "maximumInstanceCount": 2}))
    assert wi.status_code == 202 and "Location" in wi.headers
    result = _poll(client, wi, v).json()
    example = json.loads((EXAMPLES / "resources/PostDeploymentWhatIfOnResourceGroup.json").read_text())["responses"]["200"]["body"]
    for ex_change in example["properties"]["changes"]:
        ours = next(c for c in result["properties"]["changes"] if c["changeType"] == ex_change["changeType"]) \
            if ex_change["changeType"] != "Create" else None
        if ours is not None:
            missing = [p for p in compare(ex_change, ours, "properties.changes[]")
                       if p not in OPTIONAL["resources/PostDeploymentWhatIfOnResourceGroup.json"]]
            assert not missing, missing
    assert compare({k: v for k, v in example.items() if k != "properties"}, result) == []
    g = client.put(f"/subscriptions/{sub}/resourcegroups/rg-new", params=v, json={"location": "westus"})
    assert g.status_code == 201
    check("resources/CreateResourceGroup.json", "201", g.json())
    check("resources/CreateResourceGroup.json", "200", client.put(f"/subscriptions/{sub}/resourcegroups/rg-new", params=v, json={"location": "westus"}).json())
    check("resources/ResourceGroups_Get.json", "200", client.get(f"/subscriptions/{sub}/resourcegroups/rg-new", params=v).json())
    d = client.delete(f"/subscriptions/{sub}/resourcegroups/rg-new", params=v)
    assert d.status_code == 202 and d.headers["location"].startswith(f"{azure_double.arm_endpoint}/subscriptions/{sub}/operationresults/")
    sv = {"api-version": "2022-12-01"}
    check("subscriptions/GetSubscriptions.json", "200", client.get("/subscriptions", params=sv).json())
    check("subscriptions/GetLocations.json", "200", client.get(f"/subscriptions/{sub}/locations", params=sv).json())


def test_app_and_storage_shapes(api, azure_double):
    client, out, sub, rg = api
    v = {"api-version": "2025-07-01"}
    app = f"{rg}/providers/Microsoft.App/containerApps/app1"
    time.sleep(azure_double.activation_seconds)
    body = client.get(app, params=v).json()
    check("app/ContainerApps_Get.json", "200", body)
    check("app/ContainerApps_ListSecrets.json", "200", client.post(f"{app}/listSecrets", params=v).json())
    check("app/ContainerApps_GetAuthToken.json", "200", client.post(f"{app}/getAuthtoken", params=v).json())
    revs = client.get(f"{app}/revisions", params=v).json()
    check("app/Revisions_List.json", "200", revs)
    rev = revs["value"][0]["name"]
    check("app/Revisions_Get.json", "200", client.get(f"{app}/revisions/{rev}", params=v).json())
    check("app/Replicas_List.json", "200", client.get(f"{app}/revisions/{rev}/replicas", params=v).json())
    restart = client.post(f"{app}/revisions/{rev}/restart", params=v)
    assert restart.status_code == 200 and restart.content == b""
    env_id = body["properties"]["managedEnvironmentId"]
    check("app/ManagedEnvironments_Get.json", "200", client.get(env_id, params=v).json())
    storage = client.get(f"{env_id}/storages/aitk-share", params=v).json()
    check("app/ManagedEnvironmentsStorages_Get.json", "200", storage)
    check("app/ManagedEnvironmentsStorages_CreateOrUpdate.json", "200", storage)
    assert "accountKey" not in json.dumps(storage)
    sv = {"api-version": "2025-01-01"}
    acct = f"{rg}/providers/Microsoft.Storage/storageAccounts/{out['STORAGE_ACCOUNT_NAME']}"
    check("storage/StorageAccountListKeys.json", "200", client.post(f"{acct}/listKeys", params=sv).json())
    check("storage/FileSharesGet.json", "200", client.get(f"{acct}/fileServices/default/shares/{out['FILE_SHARE_NAME']}", params=sv).json())
    put = client.put(f"{acct}/fileServices/default/shares/another", params=sv, json={})
    assert put.status_code == 201
    check("storage/FileSharesPut.json", "201", put.json())
    check("storage/FileSharesPut.json", "200", client.put(f"{acct}/fileServices/default/shares/another", params=sv, json={}).json())
    d = client.delete(app, params=v)
    assert d.status_code == 202 and "azure-asyncoperation" in d.headers


def test_tags_jobs_storages_and_share_update_shapes(api, azure_double):
    client, out, sub, rg = api
    acct = f"{rg}/providers/Microsoft.Storage/storageAccounts/{out['STORAGE_ACCOUNT_NAME']}"
    tags = f"{acct}/providers/Microsoft.Resources/tags/default"
    v = {"api-version": "2025-04-01"}
    put = client.put(tags, params=v, json={"properties": {"tags": {"tagKey1": "tag-value-1"}}})
    check("resources/PutTagsResource.json", "200", put.json())
    check("resources/GetTagsResource.json", "200", client.get(tags, params=v).json())
    check("resources/PatchTagsResource.json", "200",
          client.patch(tags, params=v, json={"operation": "Replace", "properties": {"tags": {"tagKey2": "v"}}}).json())
    assert client.delete(tags, params=v).status_code == 200
    sv = {"api-version": "2025-01-01"}
    patched = client.patch(f"{acct}/fileServices/default/shares/{out['FILE_SHARE_NAME']}", params=sv,
                           json={"properties": {"metadata": {"type": "image"}}})
    check("storage/FileSharesPatch.json", "200", patched.json())
    av = {"api-version": "2025-07-01"}
    env_id = client.get(f"{rg}/providers/Microsoft.App/containerApps/app1", params=av).json()["properties"]["environmentId"]
    check("app/ManagedEnvironmentsStorages_List.json", "200", client.get(f"{env_id}/storages", params=av).json())
    job = client.put(f"{rg}/providers/Microsoft.App/jobs/job1", params=av, json={"location": "eastus", "properties": {
        "environmentId": env_id, "configuration": {"triggerType": "Manual", "replicaTimeout": 10, "replicaRetryLimit": 10,
                                                   "manualTriggerConfig": {"replicaCompletionCount": 1, "parallelism": 4}},
        "template": {"containers": [{"image": "repo/x:v4", "name": "x", "resources": {"cpu": 0.5, "memory": "1Gi"}}],
                     "initContainers": [{"image": "repo/y:v4", "name": "y", "resources": {"cpu": 0.5, "memory": "1Gi"}}]}}})
    assert job.status_code in (200, 201)
    check("app/Jobs_ListByResourceGroup.json", "200", client.get(f"{rg}/providers/Microsoft.App/jobs", params=av).json())
