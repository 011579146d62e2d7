"""Teardown on Azure: delete what aitk-nb made for this app, keep everything else, say why.

Our resources are found in Azure, not only from the local files: the group's resources tagged
`aitk-nb-owner: <app>`, what the app itself points at (its environment, the environment storages it
mounts or its tag records, the share each links) and what the group's last deployment touched when
it was this app's. Each candidate is then judged by its own mark (`ownership.owner_mark`). A resource
of ours that holds something we did not make (a teammate's share in our storage account, another app
or a job in our environment) is kept too, with that reason. Deletion runs in reverse dependency order
(app, environment storages, environments, workspaces, shares, storage accounts); the group stays."""
from __future__ import annotations

from ..results import TeardownStep
from . import ownership
from .app import ContainerApp
from .deployment import DEPLOYMENT_NAME
from .ownership import APP, ENV_STORAGE, ENVIRONMENT, SHARE, STORAGE, WORKSPACE, Resource
from .session import AzureSession, azure_call, missing_ok

APP_API = "2024-03-01"
DELETE_ORDER = (ENV_STORAGE, ENVIRONMENT, WORKSPACE, SHARE, STORAGE)  # after the app: children before parents
KEPT_FOR_LATER = TeardownStep("the share, the environment and the rest", False, "kept (--app-only)")


class Teardown:
    def __init__(self, session: AzureSession, rg: str, app: str, template: dict):
        self.session, self.rg, self.app = session, rg, app
        self.versions = ownership.api_versions(template)
        self.group = f"/subscriptions/{session.subscription}/resourceGroups/{rg}/providers"

    # -- the plan ------------------------------------------------------------------------------------
    def plan(self, *, app_only: bool) -> list[TeardownStep]:
        found = self._find()
        the_app = found.get(f"{self.group}/{APP.type}/{self.app}".lower())
        if the_app is None or not the_app.exists:
            steps = [TeardownStep(f"container app {self.app}", False, "does not exist (nothing to delete)")]
            gone: set[str] = set()
        else:
            steps = [self._judge(the_app, set())]
            gone = {the_app.id.lower()} if steps[0].delete else set()
        if app_only:
            return steps + [KEPT_FOR_LATER]
        for kind in DELETE_ORDER:
            for r in sorted((r for r in found.values() if r.kind is kind and r.exists), key=lambda r: r.id):
                step = self._judge(r, gone)
                steps.append(step)
                if step.delete:
                    gone.add(r.id.lower())
        return steps

    def _find(self) -> dict[str, Resource]:
        """The candidates by id (lower), read, each with its owner mark."""
        app = self._read(f"{self.group}/{APP.type}/{self.app}")
        ids = {r.id for r in ownership.tagged(self.session, self.rg, self.app)} | self._last_deployment()
        if app.exists:
            ids |= self._pointed_at(app)
        found = {app.id.lower(): app}
        for rid in ids:
            if rid.lower() not in found and ownership.resource_type(rid).lower() in self.versions:
                found[rid.lower()] = self._read(rid)
        for r in found.values():
            r.owner = ownership.owner_mark(r, app)
        return found

    def _pointed_at(self, app: Resource) -> set[str]:
        """The app's environment, the environment storages it mounts or records, and their shares."""
        props = ownership.properties(app.record)
        env = str(props.get("environmentId") or props.get("managedEnvironmentId") or "")
        if not env:
            return set()
        names = {v.get("storageName") for v in (props.get("template") or {}).get("volumes") or []}
        names.add((app.record.tags or {}).get(ownership.ENV_STORAGE_TAG))
        ids = {env}
        for name in filter(None, names):
            link = self._read(f"{env}/storages/{name}")
            if link.exists:
                ids.add(link.id)
                af = ownership.properties(link.record).get("azureFile") or {}
                if af.get("accountName") and af.get("shareName"):
                    account = f"{self.group}/{STORAGE.type}/{af['accountName']}"
                    ids |= {account, f"{account}/fileServices/default/shares/{af['shareName']}"}
        return ids

    def _last_deployment(self) -> set[str]:
        """What the group's last aitk-nb deployment touched, when it was this app's (its output names it)."""
        with missing_ok("reading the last deployment"):
            props = self.session.deployments.deployments.get(self.rg, DEPLOYMENT_NAME).properties
            if ((props.outputs or {}).get("ACA_APP_NAME") or {}).get("value") == self.app:
                return {r.id for r in props.output_resources or [] if r.id}
        return set()

    def _read(self, rid: str) -> Resource:
        kind = ownership.kind_of(rid)
        record = ownership.read(self.session, rid, self.versions[kind.type.lower()])
        return Resource(kind, rid, exists=record is not None, record=record)

    def _judge(self, r: Resource, gone: set[str]) -> TeardownStep:
        if not r.ours(self.app):
            return TeardownStep(r.short, False, r.why_not_ours())
        held = self._held_foreign(r, gone)
        if held:
            return TeardownStep(r.short, False, f"made by aitk-nb for {self.app}, but it holds what aitk-nb did not make "
                                                f"for it: {', '.join(held)}")
        return TeardownStep(r.short, True, f"made by aitk-nb for {self.app}", target=r.id)

    def _held_foreign(self, r: Resource, gone: set[str]) -> list[str]:
        """What a resource of ours holds that is not ours: deleting it would delete or break that too."""
        if r.kind is STORAGE:
            with azure_call(f"listing the file shares of {r.name}"):
                shares = list(self.session.storage.file_shares.list(self.rg, r.name))
            return [f"file share {s.name}" for s in shares
                    if (ownership.share_metadata(s) or {}).get(ownership.SHARE_OWNER_METADATA) != self.app]
        if r.kind is ENVIRONMENT:
            users = []
            for rtype, noun in ((APP.type, "container app"), ("Microsoft.App/jobs", "job")):
                with azure_call(f"listing the {noun}s of {self.rg}"):
                    items = list(self.session.resources.resources.list_by_resource_group(
                        self.rg, filter=f"resourceType eq '{rtype}'"))
                for item in items:
                    if item.id.lower() in gone:
                        continue
                    record = ownership.read(self.session, item.id, APP_API)
                    env = str(ownership.properties(record).get("environmentId") or "") if record is not None else ""
                    if env.lower() == r.id.lower():
                        users.append(f"{noun} {item.name}")
            return users
        return []

    # -- acting ------------------------------------------------------------------------------------------
    def act(self, steps: list[TeardownStep]) -> list[str]:
        """Delete what the plan deletes, in its order; one line per deletion."""
        done = []
        for step in steps:
            if not (step.delete and step.target):
                continue
            kind = ownership.kind_of(step.target)
            if kind is APP:
                ContainerApp(self.session, self.rg, ownership.name_of(step.target)).delete()
            else:
                with missing_ok(f"deleting {step.what}"):
                    self.session.resources.resources.begin_delete_by_id(
                        step.target, api_version=self.versions[kind.type.lower()]).result()
            done.append(f"{step.what} deleted")
        # The record is this app's (another project's stays). After --app-only it stays too: it is how a
        # later teardown finds what it made without a tag of its own (a share in a reused account).
        if KEPT_FOR_LATER not in steps and self._last_deployment():
            with missing_ok("deleting the deployment record"):
                self.session.deployments.deployments.begin_delete(self.rg, DEPLOYMENT_NAME).result()
        return done
