"""The double's ARM side, driven by the real Azure SDK management clients."""
from __future__ import annotations

import json
import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from azure_double.clients import clients, mgmt_kwargs
from azure_double.scenario import deployment_body, provision

RG = "rg-test"


def _raw(double, method, path, **kw):
    with httpx.Client(verify=double.client_ssl_context(), base_url=double.arm_endpoint) as c:
        return c.request(method, path, headers={"Authorization": f"Bearer {double.token}", **kw.pop("headers", {})}, **kw)


def test_bearer_token_is_required(azure_double):
    from azure.core.credentials import AccessToken
    from azure.mgmt.resource.resources import ResourceManagementClient

    class Wrong:
        def get_token(self, *scopes, **kw):
            return AccessToken("not-the-token", int(time.time()) + 3600)

    client = ResourceManagementClient(Wrong(), azure_double.subscription_id, **mgmt_kwargs(azure_double))
    with pytest.raises(ClientAuthenticationError):
        list(client.resource_groups.list())
    r = httpx.get(f"{azure_double.arm_endpoint}/subscriptions?api-version=2022-12-01", verify=azure_double.client_ssl_context())
    assert r.status_code == 401 and r.json()["error"]["code"] == "AuthenticationFailed"
    assert "Bearer" in r.headers["WWW-Authenticate"]
    assert _raw(azure_double, "GET", "/subscriptions").json()["error"]["code"] == "MissingApiVersionParameter"


def test_subscriptions_and_resource_groups(azure_double):
    res, _, _, _, subs = clients(azure_double)
    assert [s.subscription_id for s in subs.subscriptions.list()] == [azure_double.subscription_id]
    assert subs.subscriptions.get(azure_double.subscription_id).tenant_id == azure_double.tenant_id
    assert not res.resource_groups.check_existence(RG)
    g = res.resource_groups.create_or_update(RG, {"location": "eastus"})
    assert (g.name, g.location, g.properties.provisioning_state) == (RG, "eastus", "Succeeded")
    assert res.resource_groups.check_existence(RG)
    assert [x.name for x in res.resource_groups.list()] == [RG]
    with pytest.raises(HttpResponseError) as e:
        res.resource_groups.create_or_update(RG, {"location": "westus"})
    assert e.value.error.code == "InvalidResourceGroupLocation"
    res.resource_groups.begin_delete(RG).result()
    assert not res.resource_groups.check_existence(RG)
    with pytest.raises(ResourceNotFoundError):
        res.resource_groups.get(RG)


def test_deployment_validate_what_if_create_and_operations(azure_double):
    res, dep, apps, st, _ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    body = deployment_body({"acaAppName": "app1", "apiKey": "sekret-api-key-123"})
    v = dep.deployments.begin_validate(RG, "d1", body).result()
    assert v.properties.provisioning_state == "Succeeded"
    assert len(v.properties.validated_resources) == 6
    changes = dep.deployments.begin_what_if(RG, "d1", body).result().properties.changes
    assert {c.change_type for c in changes} == {"Create"} and len(changes) == 6

    poller = dep.deployments.begin_create_or_update(RG, "d1", body)
    seen = set()
    while not poller.done():
        seen.add(dep.deployments.get(RG, "d1").properties.provisioning_state)
        time.sleep(0.02)
    result = poller.result()
    assert result.properties.provisioning_state == "Succeeded"
    assert {"Accepted", "Running"} & seen
    polls = [r for r in azure_double.requests if "/operationStatuses/" in r.path]
    assert len(polls) >= 2
    outputs = {k: v["value"] for k, v in result.properties.outputs.items()}
    assert outputs["ACA_APP_NAME"] == "app1" and outputs["RESOURCE_GROUP_NAME"] == RG
    assert outputs["ACA_APP_ENDPOINT"].startswith("https://127.0.0.1:")

    ops = list(dep.deployment_operations.list(RG, "d1"))
    targets = {o.properties.target_resource.resource_type: o.properties.provisioning_state
               for o in ops if o.properties.target_resource}
    assert targets == {t: "Succeeded" for t in (
        "Microsoft.Storage/storageAccounts", "Microsoft.Storage/storageAccounts/fileServices/shares",
        "Microsoft.OperationalInsights/workspaces", "Microsoft.App/managedEnvironments",
        "Microsoft.App/managedEnvironments/storages", "Microsoft.App/containerApps")}

    # secure parameters are never echoed back; secrets stay out of GET bodies
    raw = _raw(azure_double, "GET", f"/subscriptions/{azure_double.subscription_id}/resourcegroups/{RG}"
               f"/providers/Microsoft.Resources/deployments/d1", params={"api-version": "2025-04-01"}).text
    assert "sekret-api-key-123" not in raw
    assert json.loads(raw)["properties"]["parameters"]["apiKey"] == {"type": "SecureString"}
    everything = json.dumps(azure_double.state.resources)
    assert "sekret-api-key-123" not in everything
    assert azure_double.state.account_key(outputs["STORAGE_ACCOUNT_NAME"]) not in everything
    secrets = apps.container_apps.list_secrets(RG, "app1").value
    assert [(s.name, s.value) for s in secrets] == [("aitk-api-key", "sekret-api-key-123")]

    # the storage account reports the double's path-style file endpoint
    account = outputs["STORAGE_ACCOUNT_NAME"]
    props = st.storage_accounts.get_properties(RG, account)
    assert props.primary_endpoints.file == f"{azure_double.arm_endpoint}/{account}/"
    keys = st.storage_accounts.list_keys(RG, account).keys_property
    assert [k.value for k in keys] == azure_double.state.account_keys(account)

    # a second what-if with the same parameters changes nothing
    again = dep.deployments.begin_what_if(RG, "d1", body).result().properties.changes
    assert {c.change_type for c in again} == {"NoChange"}
    # ... and one with another value shows a Modify with its delta
    body2 = deployment_body({"acaAppName": "app1", "apiKey": "sekret-api-key-123", "maximumInstanceCount": 3})
    modified = [c for c in dep.deployments.begin_what_if(RG, "d1", body2).result().properties.changes if c.change_type == "Modify"]
    assert [c.resource_id.rsplit("/", 1)[1] for c in modified] == ["app1"]
    assert any(d.path.endswith("maxReplicas") for d in modified[0].delta)


def test_continuation_token_resumes_a_deployment(azure_double):
    res, dep, *_ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    azure_double.resource_seconds = 0.1
    poller = dep.deployments.begin_create_or_update(RG, "d1", deployment_body({"acaAppName": "app1"}))
    token = poller.continuation_token()
    # a new process: fresh clients, no body
    _, dep2, *_ = clients(azure_double)
    resumed = dep2.deployments.begin_create_or_update(RG, "d1", None, continuation_token=token)
    assert resumed.result().properties.provisioning_state == "Succeeded"
    assert poller.result().properties.outputs["ACA_APP_NAME"]["value"] == "app1"


def test_failed_deployment_reports_code_and_resource(azure_double):
    res, dep, *_ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    azure_double.faults.fail_deployment(code="InvalidTemplateDeployment", message="GPU profile not available",
                                        resource="Microsoft.App/containerApps/app1")
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_create_or_update(RG, "d1", deployment_body({"acaAppName": "app1"})).result()
    assert "DeploymentFailed" in str(e.value) or "failed" in str(e.value).lower()
    d = dep.deployments.get(RG, "d1")
    assert d.properties.provisioning_state == "Failed"
    assert d.properties.error.details[0].code == "InvalidTemplateDeployment"
    assert d.properties.error.details[0].message == "GPU profile not available"
    failed = [o for o in dep.deployment_operations.list(RG, "d1") if o.properties.provisioning_state == "Failed"]
    assert [o.properties.target_resource.resource_name for o in failed] == ["app1"]
    assert failed[0].properties.status_message["error"]["code"] == "InvalidTemplateDeployment"
    # the fault fired once: the next deployment succeeds
    assert dep.deployments.begin_create_or_update(RG, "d1", deployment_body({"acaAppName": "app1"})).result()


def test_invalid_parameters_fail_validation(azure_double):
    res, dep, *_ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_validate(RG, "d1", deployment_body({"maximumInstanceCount": 99})).result()
    assert e.value.status_code == 400 and e.value.error.code == "InvalidTemplate"
    assert "maximumInstanceCount" in str(e.value)
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_create_or_update(RG, "d1", deployment_body({"nope": 1})).result()
    assert e.value.status_code == 400


def test_throttling_is_retried_after_retry_after(azure_double):
    res, *_ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    azure_double.faults.throttle("GET", rf"/resourcegroups/{RG}\?", count=2, retry_after=1)
    t = time.monotonic()
    assert res.resource_groups.get(RG).name == RG
    assert time.monotonic() - t >= 2
    assert [r.status for r in azure_double.requests if r.method == "GET" and f"/resourcegroups/{RG}?" in r.path] == [429, 429, 200]


def test_server_errors_are_retried_then_reported(azure_double):
    res, *_ = clients(azure_double, retry_total=2)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    azure_double.faults.error("GET", rf"/resourcegroups/{RG}\?", status=503)
    assert res.resource_groups.get(RG).name == RG
    azure_double.faults.error("GET", rf"/resourcegroups/{RG}\?", status=500, count=5)
    with pytest.raises(HttpResponseError) as e:
        res.resource_groups.get(RG)
    assert e.value.status_code == 500


def test_container_app_revisions_restart_and_health(azure_double):
    out = provision(azure_double, RG, "app1")
    _, _, apps, _, _ = clients(azure_double)
    app = apps.container_apps.get(RG, "app1")
    assert app.provisioning_state == "Succeeded" and app.latest_revision_name.startswith("app1--")
    assert app.configuration.ingress.fqdn == out["ACA_APP_ENDPOINT"][len("https://"):]
    assert app.event_stream_endpoint.startswith(azure_double.arm_endpoint)
    rev_name = app.latest_revision_name
    time.sleep(azure_double.activation_seconds)
    rev = apps.container_apps_revisions.get_revision(RG, "app1", rev_name)
    assert (rev.running_state, rev.health_state) == ("Running", "Healthy")
    with httpx.Client(verify=azure_double.client_ssl_context()) as http:
        assert http.get(out["ACA_APP_ENDPOINT"] + "/health").status_code == 200
        assert http.get(out["ACA_APP_ENDPOINT"] + "/v1/models").status_code == 401
        key = apps.container_apps.list_secrets(RG, "app1").value[0].value
        assert http.get(out["ACA_APP_ENDPOINT"] + "/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        apps.container_apps_revisions.restart_revision(RG, "app1", rev_name)
        assert apps.container_apps_revisions.get_revision(RG, "app1", rev_name).running_state == "Activating"
        assert http.get(out["ACA_APP_ENDPOINT"] + "/health").status_code == 503
        time.sleep(azure_double.activation_seconds + 0.05)
        assert apps.container_apps_revisions.get_revision(RG, "app1", rev_name).running_state == "Running"
        assert http.get(out["ACA_APP_ENDPOINT"] + "/health").status_code == 200
    replicas = apps.container_apps_revision_replicas.list_replicas(RG, "app1", rev_name).value
    assert len(replicas) == 1 and replicas[0].containers[0].ready
    assert [r.name for r in apps.container_apps_revisions.list_revisions(RG, "app1")] == [rev_name]


def test_revision_never_healthy(azure_double):
    azure_double.faults.revision_never_healthy()
    out = provision(azure_double, RG, "app1")
    _, _, apps, _, _ = clients(azure_double)
    rev = apps.container_apps.get(RG, "app1").latest_revision_name
    time.sleep(azure_double.activation_seconds * 3 + 0.05)
    r = apps.container_apps_revisions.get_revision(RG, "app1", rev)
    assert (r.running_state, r.health_state) == ("Degraded", "Unhealthy")
    assert apps.container_apps.get(RG, "app1").latest_ready_revision_name is None
    assert not apps.container_apps_revision_replicas.list_replicas(RG, "app1", rev).value[0].containers[0].ready
    assert httpx.get(out["ACA_APP_ENDPOINT"] + "/health", verify=azure_double.client_ssl_context()).status_code == 503


def test_usages_workload_profiles_and_app_delete(azure_double):
    provision(azure_double, RG, "app1")
    _, _, apps, _, _ = clients(azure_double)
    usage = {u.name.value: (u.current_value, u.limit) for u in apps.usages.list("eastus")}
    assert usage["ManagedEnvironmentConsumptionT4Gpus"] == (1, 1)       # the app's replica holds its T4
    azure_double.set_quota("ManagedEnvironmentConsumptionT4Gpus", 0)
    usage = {u.name.value: (u.current_value, u.limit) for u in apps.usages.list("eastus")}
    assert usage["ManagedEnvironmentConsumptionT4Gpus"] == (1, 0)
    profiles = {p.name: p.properties.gpus for p in apps.available_workload_profiles.get("eastus")}
    assert profiles["Consumption-GPU-NC8as-T4"] == 1
    env = apps.managed_environments.get(RG, apps.container_apps.get(RG, "app1").managed_environment_id.rsplit("/", 1)[1])
    assert {p.name for p in env.workload_profiles} >= {"Consumption"}
    apps.container_apps.begin_delete(RG, "app1").result()
    with pytest.raises(ResourceNotFoundError):
        apps.container_apps.get(RG, "app1")
