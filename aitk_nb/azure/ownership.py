"""What aitk-nb made, recorded in Azure itself so that it survives the loss of `.aitk/` and is seen
from a teammate's fresh clone.

The rule (README, "What teardown deletes"): before each deployment, the template's resources are
resolved to their ids by a what-if (ARM computes default names such as uniqueString(); the toolkit
never predicts them) and each one that exists is read. It is ours when it carries the owner mark of
THIS app (`aitk-nb-owner: <app name>`, so another project's app never claims it): a tag on the
tracked resources, the share's metadata (shares have no tags), and for an environment storage (no
tags either) a tag on our app naming it. Anything else that exists is foreign: the template then
references it through its `reuse*` parameter instead of declaring it, so no PUT touches its
properties or tags, and teardown keeps it. What does not exist yet is declared, with the mark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .session import AzureSession, azure_call, missing_ok

OWNER_TAG = "aitk-nb-owner"
SHARE_OWNER_METADATA = "aitk_nb_owner"  # share metadata names are C# identifiers: no '-'
ENV_STORAGE_TAG = "aitk-nb-environment-storage"  # on the app: the environment storage it made


@dataclass(frozen=True)
class Kind:
    """One resource the template declares: its type, the parameter naming it, its reuse switch."""

    type: str
    parameter: str
    reuse: str | None  # None: the app, which is never reused (a foreign app of its name is refused)
    label: str


STORAGE = Kind("Microsoft.Storage/storageAccounts", "storageAccountName", "reuseStorageAccount", "storage account")
SHARE = Kind("Microsoft.Storage/storageAccounts/fileServices/shares", "fileShareName", "reuseFileShare", "file share")
WORKSPACE = Kind("Microsoft.OperationalInsights/workspaces", "acaLogAnalyticsName", "reuseLogAnalytics",
                 "Log Analytics workspace")
ENVIRONMENT = Kind("Microsoft.App/managedEnvironments", "acaEnvironmentName", "reuseEnvironment", "Container Apps environment")
ENV_STORAGE = Kind("Microsoft.App/managedEnvironments/storages", "acaEnvironmentStorageName", "reuseEnvironmentStorage",
                   "environment storage")
APP = Kind("Microsoft.App/containerApps", "acaAppName", None, "container app")
# in dependency order: teardown deletes from the end
KINDS = (STORAGE, SHARE, WORKSPACE, ENVIRONMENT, ENV_STORAGE, APP)
_BY_TYPE = {k.type.lower(): k for k in KINDS}


def kind_of(resource_id: str) -> Kind:
    kind = _BY_TYPE.get(resource_type(resource_id).lower())
    if kind is None:
        raise ValueError(f"not a resource the template declares: {resource_id}")
    return kind


def resource_type(resource_id: str) -> str:
    """'Microsoft.Storage/storageAccounts/fileServices/shares' from a resource id."""
    provider = resource_id.split("/providers/", 1)[-1].strip("/").split("/")
    return "/".join([provider[0], *provider[1::2]])


def short_id(resource_id: str) -> str:
    """'Microsoft.App/containerApps/my-app' (what the user reads)."""
    parts = resource_id.split("/providers/", 1)
    return parts[-1] if len(parts) == 2 else resource_id


def name_of(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Resource:
    """A resource of the template as found in Azure before a deployment (or a teardown)."""

    kind: Kind
    id: str
    exists: bool
    owner: str | None = None  # the owner mark it carries, if any
    record: Any = None        # the resource as GET returned it (None when it does not exist)

    @property
    def name(self) -> str:
        return name_of(self.id)

    @property
    def short(self) -> str:
        return short_id(self.id)

    def ours(self, app: str) -> bool:
        return self.exists and self.owner == app

    def foreign(self, app: str) -> bool:
        return self.exists and self.owner != app

    def why_not_ours(self) -> str:
        """Why a resource that exists is not this app's, in words for a plan."""
        if self.owner:
            return f"created by aitk-nb for another app ({self.owner})"
        return "existed before provision (not created by aitk-nb)"


@dataclass
class Survey:
    """The template's resources by kind, resolved and looked up; `app` names whose they are."""

    app: str
    resources: dict[str, Resource] = field(default_factory=dict)  # kind type (lower) -> resource

    def __getitem__(self, kind: Kind) -> Resource:
        return self.resources[kind.type.lower()]

    def get(self, kind: Kind) -> Resource | None:
        return self.resources.get(kind.type.lower())

    def reuse(self) -> dict[str, bool]:
        """The template's reuse switches: true for each resource that exists and is not ours."""
        return {k.reuse: bool(r.foreign(self.app)) for k in KINDS if k.reuse and (r := self.get(k)) is not None}

    def foreign(self) -> list[Resource]:
        return [r for r in self.resources.values() if r.foreign(self.app)]


def api_versions(template: dict) -> dict[str, str]:
    """Resource type (lower) -> the template's api-version for it (what a GET or DELETE by id uses)."""
    return {r["type"].lower(): r["apiVersion"] for r in template.get("resources", [])}


def survey(session: AzureSession, resource_group: str, template: dict, parameters: dict[str, Any],
           what_if) -> Survey:
    """Resolve the template's resources (a what-if with every reuse switch off: the template as if it
    declared everything; `what_if(values, ids_only=True)` returns (resource id, change type) pairs)
    and read each one that exists, with its owner mark."""
    values = {k: v for k, v in parameters.items() if not (k.startswith("reuse") and k[5:6].isupper())}
    found: dict[str, Resource] = {}
    for rid, change in what_if(values, ids_only=True):
        kind = _BY_TYPE.get(resource_type(rid).lower())
        if kind is None or change == "Ignore":  # another resource of the group
            continue
        found[kind.type.lower()] = Resource(kind, rid, exists=change != "Create")
    app = found.get(APP.type.lower())
    if app is None:
        raise AssertionError("the template declares no container app")  # a bug: test_template checks it
    result = Survey(app.name, found)
    versions = api_versions(template)
    for r in found.values():
        if r.exists:
            r.record = read(session, r.id, versions[r.kind.type.lower()])
            r.exists = r.record is not None
    for r in found.values():
        r.owner = owner_mark(r, result.get(APP))
    return result


def read(session: AzureSession, resource_id: str, api_version: str) -> Any:
    """A resource as GET returns it, or None when it does not exist."""
    with missing_ok(f"reading {short_id(resource_id)}"):
        return session.resources.resources.get_by_id(resource_id, api_version=api_version)
    return None


def owner_mark(resource: Resource, app: Resource | None) -> str | None:
    """The owner a resource's mark names (None: no mark, it was not made by aitk-nb)."""
    if resource.record is None:
        return None
    if resource.kind is SHARE:
        return (share_metadata(resource.record) or {}).get(SHARE_OWNER_METADATA)
    if resource.kind is ENV_STORAGE:
        # an environment storage has no tags: ours when our app records it (and lives in its environment)
        if app is None or app.record is None:
            return None
        tags = app.record.tags or {}
        env_of_app = str(properties(app.record).get("environmentId") or properties(app.record).get("managedEnvironmentId") or "")
        same_env = resource.id.lower().startswith(env_of_app.lower() + "/storages/") if env_of_app else False
        return (tags.get(OWNER_TAG) if same_env and tags.get(ENV_STORAGE_TAG) == resource.name else None)
    return (resource.record.tags or {}).get(OWNER_TAG)


def share_metadata(record: Any) -> dict | None:
    """A share's metadata, from a generic GET (properties.metadata) or the storage SDK's share models."""
    meta = getattr(record, "metadata", None)
    return meta if isinstance(meta, dict) else properties(record).get("metadata")


def properties(record: Any) -> dict:
    props = getattr(record, "properties", None)
    if props is None:
        return {}
    if isinstance(props, dict):
        return props
    return props.as_dict() if hasattr(props, "as_dict") else dict(props)


def tagged(session: AzureSession, resource_group: str, app: str) -> list[Any]:
    """The group's top-level resources that carry this app's owner tag (found by tag, whatever the
    local files say)."""
    query = f"tagName eq '{OWNER_TAG}' and tagValue eq '{app}'"
    with azure_call(f"listing the resources of {resource_group} tagged {OWNER_TAG}={app}"):
        return list(session.resources.resources.list_by_resource_group(resource_group, filter=query))
