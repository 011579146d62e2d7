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
from inference_app.contract import CODE_PACKAGE, DEPLOY_LOCK, SETTINGS_FILE, app_dir

from ..deploy_plan import restart_pending
from ..sync import OWNED_MARK

from .adopt import ADOPTED_RECORD, ADOPTED_TAG
from .app import ContainerApp
from .files import AzureFilesRemote, share_client
from .deployment import LEGACY_DEPLOYMENT_NAME, deployment_name
from .ownership import APP, ENV_STORAGE, ENVIRONMENT, SHARE, STORAGE, WORKSPACE, Resource
from .session import AzureSession, azure_call, missing_ok

APP_API = "2024-03-01"
JOB_TYPE = "Microsoft.App/jobs"
FOLDER = "folder:"  # a step's target that is a folder on a share: folder:<account>/<share>/<path>
DELETE_ORDER = (ENV_STORAGE, ENVIRONMENT, WORKSPACE, SHARE, STORAGE)  # after the app: children before parents
KEPT_FOR_LATER = TeardownStep("the share, the environment and the rest", False, "kept (--app-only)")


class Teardown:
    def __init__(self, session: AzureSession, rg: str, app: str, template: dict):
        self.session, self.rg, self.app = session, rg, app
        self.versions = ownership.api_versions(template)
        self.group = f"/subscriptions/{session.subscription}/resourceGroups/{rg}/providers"
        self._seen: dict[str, list] = {}  # resource type -> the group's resources of it (_listed)
        self._links: dict[str, str] = {}  # environment storage id (lower) -> the share it links

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
        if the_app is not None and the_app.id.lower() in gone:
            steps += self._app_folders(found, gone)
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

    def _records(self) -> dict[str, set[str]]:
        """This app's deployment records, each with what it touched: `aitk-inference-<app>`, and the
        `aitk-inference` an earlier aitk-nb made for one app per group when its output names this app
        (another app's record, of either name, is never read as ours)."""
        found = {}
        for name in (deployment_name(self.app), LEGACY_DEPLOYMENT_NAME):
            with missing_ok(f"reading the deployment record {name}"):
                props = self.session.deployments.deployments.get(self.rg, name).properties
                if ((props.outputs or {}).get("ACA_APP_NAME") or {}).get("value") == self.app:
                    found[name] = {r.id for r in props.output_resources or [] if r.id}
        return found

    def _last_deployment(self) -> set[str]:
        """What this app's deployment records touched."""
        return set().union(*self._records().values())

    def _read(self, rid: str) -> Resource:
        kind = ownership.kind_of(rid)
        record = ownership.read(self.session, rid, self.versions[kind.type.lower()])
        return Resource(kind, rid, exists=record is not None, record=record)

    def _app_folders(self, found: dict[str, Resource], gone: set[str]) -> list[TeardownStep]:
        """The app's own folder (`aitk-nb/<app>/`, deploy's by the share layout) on each share that stays:
        it goes with the app. Nothing else on the share is touched (models, model-cache, another app's folder)."""
        steps = []
        for r in sorted((r for r in found.values() if r.kind is SHARE and r.exists and r.id.lower() not in gone),
                        key=lambda r: r.id):
            account, share = r.id.split("/storageAccounts/", 1)[1].split("/")[0], r.name
            folder = app_dir(self.app)
            names = self._share(account, share).list_names(folder, None)
            if not names:
                continue
            if foreign := self._not_written_by_deploy(names):
                shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
                steps.append(TeardownStep(f"folder {folder}/ on file share {share}", False,
                                          f"kept: it holds files aitk-nb did not write ({shown}); delete them, or the "
                                          "folder, yourself"))
                continue
            steps.append(TeardownStep(f"folder {folder}/ on file share {share}", True,
                                      f"{self.app}'s own code and settings (deploy wrote them)",
                                      target=f"{FOLDER}{account}/{share}/{folder}"))
        return steps

    def _not_written_by_deploy(self, names: list[str]) -> list[str]:
        """Of the files in the app's folder (relative paths), those deploy did not write: its settings, marks,
        lock and adoption record, and the server code it synced (which carries sync's mark)."""
        ours = {SETTINGS_FILE, restart_pending(self.app).rsplit("/", 1)[-1], DEPLOY_LOCK, ADOPTED_RECORD}
        code_ours = f"{CODE_PACKAGE}/{OWNED_MARK}" in names
        return [n for n in names if n not in ours and not (code_ours and n.startswith(f"{CODE_PACKAGE}/"))]

    def _share(self, account: str, share: str):
        return AzureFilesRemote(share_client(self.session, self.rg, account, share))

    def _judge(self, r: Resource, gone: set[str]) -> TeardownStep:
        users = self._users(r, gone)
        using = f"{', '.join(users)} still use{'s' * (len(users) == 1)} it" if users else ""
        if not r.ours(self.app):
            return TeardownStep(r.short, False, r.why_not_ours() + (f"; {using}" if using else ""))
        if using:
            return TeardownStep(r.short, False, f"made by aitk-nb for {self.app}, kept: {using} (a teardown here once "
                                                "nothing uses it removes it)")
        held = self._held_foreign(r)
        if held:
            return TeardownStep(r.short, False, f"made by aitk-nb for {self.app}, but it holds what aitk-nb did not make "
                                                f"for it: {', '.join(held)}")
        adopted = (r.record.tags or {}).get(ADOPTED_TAG) if r.kind is APP else None
        if adopted:  # the app AI Toolkit made, switched to aitk-nb's server (aitk_nb/azure/adopt.py)
            return TeardownStep(r.short, True, f"adopted by aitk-nb on {adopted} (switched to its server from another's); "
                                               "nothing else it did not make is deleted", target=r.id)
        return TeardownStep(r.short, True, f"made by aitk-nb for {self.app}", target=r.id)

    def _held_foreign(self, r: Resource) -> list[str]:
        """What a storage account of ours holds that is not ours: deleting it would delete that too."""
        if r.kind is STORAGE:
            with azure_call(f"listing the file shares of {r.name}"):
                shares = list(self.session.storage.file_shares.list(self.rg, r.name))
            return [f"file share {s.name}" for s in shares
                    if (ownership.share_metadata(s) or {}).get(ownership.SHARE_OWNER_METADATA) != self.app]
        return []

    def _users(self, r: Resource, gone: set[str]) -> list[str]:
        """The container apps and jobs of the group (other than those this plan deletes) that use `r`,
        whoever made them: an environment they run in, an environment storage their volumes name, a share
        (or a storage account holding one) that such a storage links; for a workspace, the environments
        that log to it."""
        if r.kind is WORKSPACE:
            customer = ownership.properties(r.record).get("customerId")
            return [f"environment {name}" for rid, name, record in self._listed(ENVIRONMENT.type)
                    if rid.lower() not in gone and customer and customer == _log_customer(record)]
        users = []
        for rtype, noun in ((APP.type, "container app"), (JOB_TYPE, "job")):
            for rid, name, record in self._listed(rtype):
                if rid.lower() in gone:
                    continue
                props = ownership.properties(record)
                env = str(props.get("environmentId") or props.get("managedEnvironmentId") or "")
                links = [f"{env}/storages/{v['storageName']}" for v in (props.get("template") or {}).get("volumes") or []
                         if env and v.get("storageName")]
                if r.kind is ENVIRONMENT:
                    uses = env.lower() == r.id.lower()
                elif r.kind is ENV_STORAGE:
                    uses = r.id.lower() in {link.lower() for link in links}
                else:  # a share, or the storage account holding it
                    shares = [self._share_of(link).lower() for link in links]
                    uses = any(s == r.id.lower() or s.startswith(r.id.lower() + "/") for s in shares if s)
                if uses:
                    users.append(f"{noun} {name}")
        return users

    def _listed(self, rtype: str) -> list[tuple[str, str, object]]:
        """(id, name, record) of the group's resources of a type, read once per teardown."""
        if rtype not in self._seen:
            with azure_call(f"listing the {rtype} resources of {self.rg}"):
                items = list(self.session.resources.resources.list_by_resource_group(self.rg, filter=f"resourceType eq '{rtype}'"))
            records = [(item.id, item.name, ownership.read(self.session, item.id, APP_API)) for item in items]
            self._seen[rtype] = [(rid, name, record) for rid, name, record in records if record is not None]
        return self._seen[rtype]

    def _share_of(self, link_id: str) -> str:
        """The id of the share an environment storage links ('' when it does not exist)."""
        if link_id.lower() not in self._links:
            record = ownership.read(self.session, link_id, APP_API)
            af = ownership.properties(record).get("azureFile") or {} if record is not None else {}
            self._links[link_id.lower()] = (f"{self.group}/{STORAGE.type}/{af['accountName']}/fileServices/default/shares/"
                                            f"{af['shareName']}" if af.get("accountName") and af.get("shareName") else "")
        return self._links[link_id.lower()]

    # -- acting ------------------------------------------------------------------------------------------
    def act(self, steps: list[TeardownStep]) -> list[str]:
        """Delete what the plan deletes, in its order; one line per deletion."""
        done = []
        for step in steps:
            if not (step.delete and step.target):
                continue
            if step.target.startswith(FOLDER):
                account, share, folder = step.target[len(FOLDER):].split("/", 2)
                self._share(account, share).delete_tree(folder)
                done.append(f"{step.what} deleted")
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
        if KEPT_FOR_LATER not in steps:
            for name in self._records():
                with missing_ok(f"deleting the deployment record {name}"):
                    self.session.deployments.deployments.begin_delete(self.rg, name).result()
        return done


def _log_customer(environment) -> str | None:
    """The Log Analytics workspace (its customer id) an environment sends its logs to."""
    logs = ownership.properties(environment).get("appLogsConfiguration") or {}
    return (logs.get("logAnalyticsConfiguration") or {}).get("customerId")
