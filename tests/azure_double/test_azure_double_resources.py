"""Resources as ARM keeps them, through the real SDK clients: tags (set by a PUT, replaced by the
next PUT, changed alone through the Tags API), listing with tag filters, resources by id, file
share metadata, and the caller's rights (denied actions, expired tokens)."""
from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from azure_double.clients import clients, share_client
from azure_double.scenario import deployment_body, provision

RG = "rg-res"
API = "2025-04-01"


@pytest.fixture
def arm(azure_double):
    res, dep, apps, st, _ = clients(azure_double)
    res.resource_groups.create_or_update(RG, {"location": "eastus"})
    return azure_double, res, dep, apps, st


def _account_id(double, name: str) -> str:
    return f"/subscriptions/{double.subscription_id}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts/{name}"


def test_a_put_sets_and_replaces_tags(arm):
    double, res, dep, apps, st = arm
    st.storage_accounts.begin_create(RG, "tagged01", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2",
                                                      "tags": {"owner": "team-a", "cost": "42"}}).result()
    assert st.storage_accounts.get_properties(RG, "tagged01").tags == {"owner": "team-a", "cost": "42"}
    # a PUT that names no tags leaves none, as ARM's PUT replaces them
    st.storage_accounts.begin_create(RG, "tagged01", {"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}).result()
    assert st.storage_accounts.get_properties(RG, "tagged01").tags == {}
    # a deployment's PUT does the same with the template's tags
    template = {"$schema": "x", "contentVersion": "1.0.0.0", "resources": [
        {"type": "Microsoft.OperationalInsights/workspaces", "apiVersion": "2023-09-01", "name": "ws1", "location": "eastus",
         "tags": {"made-by": "[deployment().name]"}, "properties": {}}]}
    dep.deployments.begin_create_or_update(RG, "tagging", {"properties": {"template": template, "mode": "Incremental"}}).result()
    ws = res.resources.get_by_id(f"/subscriptions/{double.subscription_id}/resourceGroups/{RG}/providers/Microsoft.OperationalInsights/workspaces/ws1", api_version="2023-09-01")
    assert ws.tags == {"made-by": "tagging"}


def test_tags_api_at_resource_scope(arm):
    double, res, *_ = arm
    provision(double, RG, "app1", parameters={"storageAccountName": "tagsapi01"})
    scope = _account_id(double, "tagsapi01")
    tags = res.tags
    assert tags.get_at_scope(scope).properties.tags == {"aitk-nb-owner": "app1"}  # the template's owner mark
    tags.begin_create_or_update_at_scope(scope, {"properties": {"tags": {"a": "1", "b": "2"}}}).result()  # replaces it
    tags.begin_update_at_scope(scope, {"operation": "Merge", "properties": {"tags": {"b": "20", "c": "3"}}}).result()
    assert tags.get_at_scope(scope).properties.tags == {"a": "1", "b": "20", "c": "3"}
    tags.begin_update_at_scope(scope, {"operation": "Delete", "properties": {"tags": {"a": "", "c": "not-3"}}}).result()
    assert tags.get_at_scope(scope).properties.tags == {"b": "20", "c": "3"}   # a value given must match
    tags.begin_update_at_scope(scope, {"operation": "Replace", "properties": {"tags": {"only": "this"}}}).result()
    assert res.resources.get_by_id(scope, api_version="2023-05-01").tags == {"only": "this"}   # the resource's GET shows them
    tags.begin_delete_at_scope(scope).result()
    assert tags.get_at_scope(scope).properties.tags == {}
    # the group's tags too
    group_scope = f"/subscriptions/{double.subscription_id}/resourceGroups/{RG}"
    tags.begin_create_or_update_at_scope(group_scope, {"properties": {"tags": {"env": "test"}}}).result()
    assert res.resource_groups.get(RG).tags == {"env": "test"}
    with pytest.raises(HttpResponseError) as e:
        tags.begin_create_or_update_at_scope(scope, {"properties": {"tags": {f"k{i}": "v" for i in range(51)}}}).result()
    assert e.value.error.code == "InvalidTag"
    # a share is a proxy resource: no tags
    share = f"{scope}/fileServices/default/shares/aitk-inference"
    with pytest.raises(HttpResponseError, match="does not support tags"):
        tags.get_at_scope(share)


def test_listing_a_group_with_tag_filters(arm):
    double, res, *_ = arm
    provision(double, RG, "app1", parameters={"storageAccountName": "listme01"})
    res.tags.begin_create_or_update_at_scope(_account_id(double, "listme01"), {"properties": {"tags": {"aitk": "owned"}}}).result()
    everything = list(res.resources.list_by_resource_group(RG))
    assert {r.type for r in everything} == {"Microsoft.Storage/storageAccounts", "Microsoft.OperationalInsights/workspaces",
                                            "Microsoft.App/managedEnvironments", "Microsoft.App/containerApps"}
    assert all(r.tags is not None for r in everything)
    hits = list(res.resources.list_by_resource_group(RG, filter="tagName eq 'aitk' and tagValue eq 'owned'"))
    assert [r.name for r in hits] == ["listme01"]
    assert list(res.resources.list_by_resource_group(RG, filter="tagName eq 'aitk' and tagValue eq 'other'")) == []
    assert [r.name for r in res.resources.list_by_resource_group(RG, filter="resourceType eq 'Microsoft.App/containerApps'")] == ["app1"]
    with pytest.raises(HttpResponseError) as e:
        list(res.resources.list_by_resource_group(RG, filter="startswith(name, 'x')"))
    assert e.value.error.code == "InvalidFilterInQueryString"


def test_each_template_type_by_id(arm):
    """get_by_id / begin_delete_by_id for every type the project's template deploys, children first."""
    double, res, *_ = arm
    out = provision(double, RG, "app1", parameters={"storageAccountName": "byid0001"})
    ids = [c["id"] for c in sorted(double.state.resources.values(), key=lambda b: -b["id"].count("/"))
           if "/providers/" in c["id"] and f"/resourceGroups/{RG}/" in c["id"]]
    assert len(ids) == 6
    for rid in ids:
        body = res.resources.get_by_id(rid, api_version="2024-03-01")
        assert body.id == rid
        assert res.resources.check_existence_by_id(rid, api_version="2024-03-01")
    app_id = next(i for i in ids if i.endswith("/containerApps/app1"))
    env_id = next(i for i in ids if "/managedEnvironments/" in i and "/storages/" not in i)
    with pytest.raises(HttpResponseError) as e:         # the environment still runs the app
        res.resources.begin_delete_by_id(env_id, api_version="2024-03-01").result()
    assert e.value.status_code == 409 and e.value.error.code == "ManagedEnvironmentHasContainerApps"
    for rid in [app_id] + [i for i in ids if i != app_id]:
        res.resources.begin_delete_by_id(rid, api_version="2024-03-01").result()
        with pytest.raises(ResourceNotFoundError):
            res.resources.get_by_id(rid, api_version="2024-03-01")
    assert out["STORAGE_ACCOUNT_NAME"] not in double.files.accounts   # the account's files went with it


def test_share_metadata_through_arm_and_the_data_plane(arm):
    double, res, dep, apps, st = arm
    provision(double, RG, "app1", parameters={"storageAccountName": "meta0001"})
    from azure.mgmt.storage.models import FileShare

    shares = st.file_shares
    shares.create(RG, "meta0001", "models", FileShare(metadata={"owner": "finetune", "run": "7"}, share_quota=100))
    got = shares.get(RG, "meta0001", "models")
    assert got.metadata == {"owner": "finetune", "run": "7"} and got.share_quota == 100
    shares.update(RG, "meta0001", "models", FileShare(metadata={"owner": "inference"}))
    assert shares.get(RG, "meta0001", "models").metadata == {"owner": "inference"}
    assert shares.get(RG, "meta0001", "models").share_quota == 100           # PATCH keeps what it does not name
    # one store with the data plane's x-ms-meta-* headers
    client = share_client(double, "meta0001", "models")
    assert client.get_share_properties().metadata == {"owner": "inference"}
    client.set_share_metadata({"written": "by-data-plane"})
    assert shares.get(RG, "meta0001", "models").metadata == {"written": "by-data-plane"}
    assert [s.name for s in shares.list(RG, "meta0001")] == ["aitk-inference", "models"]
    assert "tags" not in double.state.get(f"{_account_id(double, 'meta0001')}/fileServices/default/shares/models")
    with pytest.raises(HttpResponseError) as e:
        shares.update(RG, "meta0001", "models", FileShare(metadata={"not a name": "x"}))
    assert e.value.error.code == "InvalidMetadata"


def test_a_denied_action_is_refused_as_azure_rbac_does(arm):
    double, res, dep, apps, st = arm
    provision(double, RG, "app1")
    double.deny("Microsoft.App/containerApps/listSecrets/action")
    with pytest.raises(HttpResponseError) as e:
        apps.container_apps.list_secrets(RG, "app1")
    assert e.value.status_code == 403 and e.value.error.code == "AuthorizationFailed"
    app_id = f"/subscriptions/{double.subscription_id}/resourceGroups/{RG}/providers/Microsoft.App/containerApps/app1"
    assert e.value.error.message == (f"The client 'test@example.com' with object id '{double.access.object_id}' does not have "
                                     "authorization to perform action 'Microsoft.App/containerApps/listSecrets/action' over scope "
                                     f"'{app_id}' or the scope is invalid. If access was recently granted, please refresh your credentials.")
    assert apps.container_apps.get(RG, "app1").name == "app1"             # reading is still allowed
    # a deployment checks each resource it writes: the denial fails that resource's operation
    double.deny("Microsoft.Storage/storageAccounts/write")
    with pytest.raises(HttpResponseError):
        dep.deployments.begin_create_or_update(RG, "again", deployment_body({"acaAppName": "app1"})).result()
    failed = [o for o in dep.deployment_operations.list(RG, "again") if o.properties.provisioning_state == "Failed"]
    assert [o.properties.status_message["error"]["code"] for o in failed] == ["AuthorizationFailed"]
    # ... and validation's preflight already says so
    with pytest.raises(HttpResponseError) as e:
        dep.deployments.begin_validate(RG, "again", deployment_body({"acaAppName": "app1"})).result()
    assert e.value.error.details[0].details[0].code == "AuthorizationFailed"
    double.allow()
    assert apps.container_apps.list_secrets(RG, "app1").value


def test_expired_tokens_are_refused_with_a_challenge(arm):
    double, res, *_ = arm
    old = double.credential.get_token("scope").token
    double.expire_tokens()
    r = httpx.get(f"{double.arm_endpoint}/subscriptions?api-version=2022-12-01", headers={"Authorization": f"Bearer {old}"},
                  verify=double.client_ssl_context())
    assert r.status_code == 401 and r.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert "is earlier than current UTC time" in r.json()["error"]["message"]
    assert 'error="invalid_token"' in r.headers["WWW-Authenticate"] and "expired" in r.headers["WWW-Authenticate"]
    # a client holding the old token fails; a fresh sign-in gets a new token that works
    from azure.core.credentials import AccessToken
    from azure.mgmt.resource.resources import ResourceManagementClient

    from azure_double.clients import mgmt_kwargs

    class Stale:
        def get_token(self, *scopes, **kw):
            return AccessToken(old, int(time.time()) + 3600)

    with pytest.raises(ClientAuthenticationError):
        ResourceManagementClient(Stale(), double.subscription_id, **mgmt_kwargs(double)).resource_groups.get(RG)
    # a client that cached the token keeps failing; a new sign-in gets a token that works
    with pytest.raises(ClientAuthenticationError):
        res.resource_groups.get(RG)
    assert double.credential.get_token("scope").token != old
    assert clients(double)[0].resource_groups.get(RG).name == RG
