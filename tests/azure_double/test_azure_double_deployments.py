"""Deployments as ARM runs them, through the real SDK clients: what-if against the double's state,
operations of reused and conditional resources, a second PUT while one runs, cancel, and the
order resources are made in (waves: a reference() to a resource without dependsOn on it fails)."""
from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError

from azure_double.clients import clients
from azure_double.scenario import deployment_body, provision

RG = "rg-dep"


@pytest.fixture
def arm(azure_double):
    res, dep, apps, st, _ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    return azure_double, res, dep, st


def _template(*resources, parameters=None, outputs=None) -> dict:
    return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "parameters": parameters or {}, "resources": list(resources), "outputs": outputs or {}}


def _workspace(name: str, **extra) -> dict:
    return {"type": "Microsoft.OperationalInsights/workspaces", "apiVersion": "2023-09-01", "name": name, "location": "eastus",
            "properties": {"retentionInDays": 30}, **extra}


def _body(template: dict, parameters: dict | None = None, **props) -> dict:
    return {"properties": {"template": template, "mode": "Incremental",
                           "parameters": {k: {"value": v} for k, v in (parameters or {}).items()}, **props}}


def _changes(dep, name: str, body: dict) -> dict:
    return {c.resource_id.rsplit("/", 1)[1]: c for c in dep.deployments.begin_what_if(RG, name, body).result().properties.changes}


def test_what_if_against_the_state(arm):
    double, res, dep, st = arm
    st.storage_accounts.begin_create(RG, "other01", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    dep.deployments.begin_create_or_update(RG, "d1", _body(_template(_workspace("kept", tags={"team": "a"})))).result()
    template = _template(
        _workspace("kept", tags={"team": "a"}),
        _workspace("fresh"),
        _workspace("maybe", condition="[parameters('make')]"),
        parameters={"make": {"type": "bool", "defaultValue": False}})
    changes = _changes(dep, "d2", _body(template))
    assert {k: str(c.change_type.value) for k, c in changes.items()} == {"kept": "NoChange", "fresh": "Create", "other01": "Ignore"}
    assert changes["fresh"].after["properties"]["retentionInDays"] == 30
    # a changed property and the tags a PUT would clear show in the delta
    template["resources"][0] = _workspace("kept", properties={"retentionInDays": 60})
    kept = _changes(dep, "d2", _body(template))["kept"]
    assert str(kept.change_type.value) == "Modify"
    assert {(d.path, str(d.property_change_type.value)) for d in kept.delta} == {
        ("properties.retentionInDays", "Modify"), ("tags.team", "Delete")}
    # ResourceIdOnly: ARM does not compare existing resources
    ids_only = _changes(dep, "d2", _body(template, whatIfSettings={"resultFormat": "ResourceIdOnly"}))
    assert str(ids_only["kept"].change_type.value) == "Deploy" and str(ids_only["fresh"].change_type.value) == "Create"
    # a condition-false resource that exists is not deployed: Ignore, like any other resource of the group
    dep.deployments.begin_create_or_update(RG, "d3", _body(_template(_workspace("maybe")))).result()
    assert str(_changes(dep, "d2", _body(template))["maybe"].change_type.value) == "Ignore"


def test_operations_list_what_the_deployment_put(arm):
    """Reused resources the deployment PUT are operations too; a false condition is not one."""
    double, res, dep, st = arm
    dep.deployments.begin_create_or_update(RG, "first", _body(_template(_workspace("reused")))).result()
    template = _template(_workspace("reused"), _workspace("new"), _workspace("skipped", condition="[equals(1, 2)]"))
    dep.deployments.begin_create_or_update(RG, "second", _body(template)).result()
    ops = [o for o in dep.deployment_operations.list(RG, "second") if o.properties.target_resource]
    assert sorted((o.properties.target_resource.resource_name, o.properties.status_code) for o in ops) == [("new", "Created"), ("reused", "OK")]
    assert not double.state.get(f"/subscriptions/{double.subscription_id}/resourceGroups/{RG}/providers/"
                                "Microsoft.OperationalInsights/workspaces/skipped")


def test_a_second_put_while_one_runs_is_refused_and_cancel_stops_it(arm):
    double, res, dep, st = arm
    double.resource_seconds = 0.3
    template = _template(*[_workspace(f"ws{i}") for i in range(4)])
    for i in range(1, 4):
        template["resources"][i]["dependsOn"] = [f"ws{i - 1}"]        # one after the other: a long deployment
    poller = dep.deployments.begin_create_or_update(RG, "slow", _body(template))
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_create_or_update(RG, "slow", _body(template))
    assert e.value.status_code == 409 and e.value.error.code == "DeploymentActive"
    assert e.value.error.message.startswith("Unable to edit or replace deployment 'slow': previous deployment from '")
    assert "is still active (expiration time is '" in e.value.error.message
    dep.deployments.cancel(RG, "slow")
    with pytest.raises(HttpResponseError):
        poller.result()
    assert dep.deployments.get(RG, "slow").properties.provisioning_state == "Canceled"
    made = [b["name"] for b in double.state.of_type("Microsoft.OperationalInsights/workspaces", RG)]
    assert len(made) < 4                                              # stopped part-way
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.cancel(RG, "slow")
    assert e.value.status_code == 409
    # a finished deployment's name can be used again
    dep.deployments.begin_create_or_update(RG, "slow", _body(template)).result()
    assert len(double.state.of_type("Microsoft.OperationalInsights/workspaces", RG)) == 4


def test_resources_deploy_in_waves(arm):
    """Independent resources start together: a reference() to one without dependsOn on it finds
    nothing yet (ResourceNotFound), as in Azure; with dependsOn it works. A failed resource fails
    what depends on it, not what does not."""
    double, res, dep, st = arm
    ws_id = "resourceId('Microsoft.OperationalInsights/workspaces', 'src')"
    reader = _workspace("reader", properties={"retentionInDays": 30, "description": f"[reference({ws_id}).customerId]"})
    with pytest.raises(HttpResponseError):
        dep.deployments.begin_create_or_update(RG, "racy", _body(_template(_workspace("src"), reader))).result()
    failed = [o for o in dep.deployment_operations.list(RG, "racy") if o.properties.provisioning_state == "Failed"]
    assert [(o.properties.target_resource.resource_name, o.properties.status_message["error"]["code"]) for o in failed] == \
        [("reader", "ResourceNotFound")]
    dep.deployments.begin_create_or_update(RG, "ordered", _body(_template(_workspace("src"), {**reader, "dependsOn": [f"[{ws_id}]"]}))).result()
    # a failure: its dependents never start, the others still deploy
    double.faults.fail_deployment(code="Conflict", message="injected", resource="Microsoft.OperationalInsights/workspaces/a")
    template = _template(_workspace("a"), _workspace("needs-a", dependsOn=["a"]), _workspace("alone"))
    with pytest.raises(HttpResponseError):
        dep.deployments.begin_create_or_update(RG, "partial", _body(template)).result()
    d = dep.deployments.get(RG, "partial").properties
    assert d.provisioning_state == "Failed" and [x.code for x in d.error.details] == ["Conflict"]
    names = {b["name"] for b in double.state.of_type("Microsoft.OperationalInsights/workspaces", RG)}
    assert "alone" in names and "needs-a" not in names and "a" not in names


def test_outputs_parameters_and_template_errors(arm):
    double, res, dep, st = arm
    template = _template(_workspace("[parameters('name')]"),
                         parameters={"name": {"type": "string", "minLength": 3}, "secret": {"type": "securestring", "defaultValue": "s3cr3t!!"}},
                         outputs={"id": {"type": "string", "value": "[resourceId('Microsoft.OperationalInsights/workspaces', parameters('name'))]"},
                                  "customer": {"type": "string", "value": "[reference(parameters('name')).customerId]"},
                                  "hidden": {"type": "securestring", "value": "[parameters('secret')]"}})
    result = dep.deployments.begin_create_or_update(RG, "out", _body(template, {"name": "named"})).result()
    outputs = result.properties.outputs
    assert outputs["id"]["value"].endswith("/workspaces/named") and len(outputs["customer"]["value"]) == 36
    assert outputs["hidden"] == {"type": "SecureString"}                            # secure outputs carry no value
    assert result.properties.parameters["secret"] == {"type": "SecureString"}
    with pytest.raises(HttpResponseError) as e:                                     # checked before anything is made
        dep.deployments.begin_create_or_update(RG, "bad", _body(template, {"name": "ab"}))
    assert e.value.status_code == 400 and e.value.error.code == "InvalidTemplate"
    assert "Length of the value should be greater than or equal to '3'" in e.value.error.message
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_create_or_update(RG, "bad", _body(template, {"name": "ok1", "nope": 1}))
    assert "The template parameters 'nope' in the parameters file are not valid" in e.value.error.message
    assert dep.deployments.get(RG, "out").properties.provisioning_state == "Succeeded"


def test_the_project_template_what_if_after_provision(arm):
    """The toolkit's template: nothing changes on a second what-if; another GPU profile type on the
    environment shows as a Modify of its workload profiles."""
    double, res, dep, st = arm
    provision(double, RG, "app1")
    body = deployment_body({"acaAppName": "app1"})
    assert {str(c.change_type.value) for c in dep.deployments.begin_what_if(RG, "aitk-inference", body).result().properties.changes} == {"NoChange"}
    body = deployment_body({"acaAppName": "app1", "gpuWorkloadProfileType": "Consumption-GPU-NC24-A100"})
    changes = dep.deployments.begin_what_if(RG, "aitk-inference", body).result().properties.changes
    env = next(c for c in changes if "/managedEnvironments/" in c.resource_id and "/storages/" not in c.resource_id)
    assert str(env.change_type.value) == "Modify"
    assert [d.path for d in env.delta] == ["properties.workloadProfiles[1].workloadProfileType"]
    # ... which the deployment cannot do: a profile keeps its type (a new serverless GPU profile could be added)
    with pytest.raises(HttpResponseError):
        dep.deployments.begin_create_or_update(RG, "aitk-inference", body).result()
    failed = [o for o in dep.deployment_operations.list(RG, "aitk-inference") if o.properties.provisioning_state == "Failed"]
    assert [o.properties.status_message["error"]["code"] for o in failed] == ["WorkloadProfileTypeCannotBeChanged"]


def test_reference_to_a_resource_whose_condition_is_false(arm):
    """The conditional deployment docs: reference() is evaluated even when the condition is false, and
    fails unless the resource exists; if() keeps it from being evaluated."""
    double, res, dep, st = arm
    template = _template(_workspace("maybe", condition="[parameters('make')]"),
                         parameters={"make": {"type": "bool"}},
                         outputs={"customer": {"type": "string", "value": "[reference('maybe').customerId]"},
                                  "guarded": {"type": "string", "value": "[if(parameters('make'), reference('maybe').customerId, 'none')]"}})
    with pytest.raises(HttpResponseError):
        dep.deployments.begin_create_or_update(RG, "cond", _body(template, {"make": False})).result()
    error = dep.deployments.get(RG, "cond").properties.error
    assert error.code == "DeploymentOutputEvaluationFailed" and error.details[0].code == "ResourceNotFound"
    assert "The Resource 'Microsoft.OperationalInsights/workspaces/maybe' under resource group 'rg-dep' was not found" in error.details[0].message
    guarded = {**template, "outputs": {"guarded": template["outputs"]["guarded"]}}
    out = dep.deployments.begin_create_or_update(RG, "cond", _body(guarded, {"make": False})).result().properties.outputs
    assert out["guarded"]["value"] == "none"
    dep.deployments.begin_create_or_update(RG, "made", _body(_template(_workspace("maybe")))).result()
    out = dep.deployments.begin_create_or_update(RG, "cond", _body(template, {"make": False})).result().properties.outputs
    assert len(out["customer"]["value"]) == 36                     # it exists now: reference() reads it
