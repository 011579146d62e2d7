"""The azure target: the template deployed with ARM, the share in Azure Files, the app in Container Apps.
(The Azure SDKs are imported by `aitk_nb.azure` only when a call needs them.)"""
from __future__ import annotations

import functools
import secrets
from typing import Any, Iterator

from ..azure import deployment
from ..azure.app import ContainerApp
from ..azure.deployment import DEPLOYMENT_NAME, DeploymentRequest
from ..azure.files import AzureFilesRemote, share_client
from ..azure.logs import MAX_TAIL
from ..azure.session import AzureError, AzureSession, azure_call, missing_ok, service_value
from ..config import InferenceConfig, Parameters, read_json
from ..deploy_plan import deployed_settings
from ..endpoints import AppState, Readiness
from ..errors import AitkError, NotProvisionedError, OperationCancelledError
from ..invocation import command
from ..operations import Operation
from ..project import Project
from ..results import Status

DEFAULT_READY_TIMEOUT = 1200.0  # first start on a GPU replica installs the server's venv on the share


class AzureTarget:
    name = "azure"

    def __init__(self, project: Project, config: InferenceConfig, *, credential: Any = None):
        self.project, self.config, self._credential = project, config, credential

    @functools.cached_property
    def session(self):
        return AzureSession(self.config.SUBSCRIPTION_ID, self._credential)

    @property
    def resource_group(self) -> str:
        if not self.config.RESOURCE_GROUP_NAME:
            raise AitkError("no resource group; pass --resource-group RG (an existing group, or a new one with --location)")
        return self.config.RESOURCE_GROUP_NAME

    @functools.cached_property
    def app(self):
        """The container app named in the config (`ContainerApp`)."""
        if not self.config.ACA_APP_NAME:
            raise NotProvisionedError(f"{self.project.config_path.name} names no ACA_APP_NAME; run {command('provision --target azure')}")
        return ContainerApp(self.session, self.resource_group, self.config.ACA_APP_NAME)

    # -- provision -------------------------------------------------------------------------------
    def _request(self, params: Parameters):
        template = read_json(self.project.template_path, "the project needs infra/provision/inference.json")
        values = params.arm_values()
        if "apiKey" in template.get("parameters", {}) and "apiKey" not in values:
            values["apiKey"] = self._existing_api_key() or secrets.token_urlsafe(32)
        return DeploymentRequest(self.resource_group, template, values)

    def _existing_api_key(self) -> str | None:
        """Re-provisioning keeps the endpoint's key: read it from the app named in the current config."""
        try:
            previous = InferenceConfig.load(self.project.config_path)
        except AitkError:
            return None
        if previous.TARGET != "azure" or not previous.ACA_APP_NAME or previous.RESOURCE_GROUP_NAME != self.resource_group:
            return None
        try:
            return ContainerApp(self.session, self.resource_group, previous.ACA_APP_NAME).api_key()
        except AitkError:
            return None

    def _check_storage_name(self, params: Parameters) -> None:
        """A storage account named in the parameters is reused when it is in this resource group; taken
        anywhere else (the names are global), it would fail the deployment half-way: say so first."""
        name = params.storageAccountName
        if not name:
            return  # the template's default: unique to the resource group
        accounts = self.session.storage.storage_accounts
        with missing_ok(f"reading storage account {name}"):
            accounts.get_properties(self.resource_group, name)
            return  # exists here: reused
        with azure_call(f"checking the storage account name {name}"):
            result = accounts.check_name_availability({"name": name, "type": "Microsoft.Storage/storageAccounts"})
        if not result.name_available:
            raise AitkError(f"storageAccountName {name!r}: {result.message or result.reason}; storage account names "
                            f"are global across Azure: pick another in {self.project.parameters_path.name} (or leave it "
                            "null for a unique default), or name an account of this resource group to reuse it")

    def plan(self, params: Parameters) -> tuple[InferenceConfig, list[tuple[str, str]]]:
        self._check_storage_name(params)
        rgs = self.session.resources.resource_groups
        if not rgs.check_existence(self.resource_group):
            return self.config, [(f"resource group {self.resource_group}", "Create"), ("every resource in the template", "Create")]
        req = self._request(params)
        deployment.validate(self.session, req)
        return self.config, deployment.what_if(self.session, req)

    def provision(self, params: Parameters, *, progress: bool = True, operation: Operation,
                  continuation_token: str | None = None) -> tuple[InferenceConfig, list[tuple[str, str]]]:
        op = operation
        op.report("checking the storage account name")
        self._check_storage_name(params)
        op.checkpoint("nothing was made")
        op.report(f"resource group {self.resource_group}")
        location = deployment.ensure_resource_group(self.session, self.resource_group, params.location)
        made = f"resource group {self.resource_group} exists; nothing in it was made"
        op.checkpoint(made)
        op.report(f"checking the GPU quota in {params.location or location}")
        self._check_gpu_quota(params.location or location, params)
        req = self._request(params)
        op.report("validating the template")
        deployment.validate(self.session, req)
        op.checkpoint(made)
        op.report("previewing the deployment (what-if)")
        changes = deployment.what_if(self.session, req)
        op.checkpoint(made)
        try:
            outputs = deployment.deploy(self.session, req, state_file=self.project.state_dir / "azure" / "deployment.json",
                                        progress=progress, resources=len(changes) or None, operation=op,
                                        continuation_token=continuation_token)
        except AzureError as e:
            if op.cancel_requested:
                raise OperationCancelledError(
                    f"provision cancelled through ARM (the deployment ended {deployment.state(self.session, self.resource_group)}); "
                    f"what it made before it stopped stays: run {command('provision')} again to finish, or {command('teardown')} "
                    "to remove it") from e
            raise
        known = set(InferenceConfig.__dataclass_fields__)
        config = InferenceConfig(TARGET="azure", **{k: v for k, v in outputs.items() if k in known and k != "TARGET"})
        return config, changes

    def _check_gpu_quota(self, location: str, params: Parameters) -> None:
        """Fail before deploying when the location's GPU quota cannot hold maximumInstanceCount replicas."""
        template = read_json(self.project.template_path, "")
        profile = params.extra.get("gpuWorkloadProfileType") or template["parameters"].get("gpuWorkloadProfileType", {}).get("defaultValue", "")
        family = next((f for f in ("T4", "A100") if f in str(profile)), None)
        if family is None:
            return
        with azure_call(f"reading Container Apps quota in {location}"):
            usages = list(self.session.apps.usages.list(location))
        for u in usages:
            name = (u.name.value or "") if u.name else ""
            if family in name and "Gpu" in name:
                free = (u.limit or 0) - (u.current_value or 0)
                if free < params.maximumInstanceCount:
                    raise AitkError(
                        f"GPU quota short in {location}: {name} has {free:g} of {u.limit:g} free, maximumInstanceCount is "
                        f"{params.maximumInstanceCount}; request more quota in the Azure portal (Container Apps, "
                        "serverless GPU) or lower maximumInstanceCount")
                return

    # -- share and replica -----------------------------------------------------------------------
    def remote(self):
        if not (self.config.STORAGE_ACCOUNT_NAME and self.config.FILE_SHARE_NAME):
            raise NotProvisionedError(f"{self.project.config_path.name} needs STORAGE_ACCOUNT_NAME and FILE_SHARE_NAME; "
                                      f"run {command('provision --target azure')} or fill them in")
        return AzureFilesRemote(share_client(self.session, self.resource_group, self.config.STORAGE_ACCOUNT_NAME,
                                             self.config.FILE_SHARE_NAME))

    def api_key(self) -> str | None:
        return self.app.api_key()

    # -- the app (what the endpoint object asks) -------------------------------------------------
    readiness = Readiness(timeout=DEFAULT_READY_TIMEOUT, health_every=2.0, state_every=10.0)

    @property
    def http_verify(self):
        return self.session.httpx_verify

    def app_state(self) -> AppState:
        return self.app.state()

    def failure(self, endpoint) -> AitkError:
        return AzureError(f"{endpoint.detail}; fix the cause and run {command('deploy')} again (more: {command('logs')})"
                          f"{self.app.log_tail_note()}")

    def restart(self) -> str:
        return self.app.restart()

    def status(self) -> Status:
        app = self.app
        revision = app.latest_revision()
        count = len(app.replicas(revision.name))
        state = (f"{service_value(revision.running_state)} ({service_value(revision.health_state)}), "
                 f"{count} replica{'s' * (count != 1)}")
        try:
            remote = self.remote()
        except NotProvisionedError:  # a hand-filled config without the share: the rest of the status still shows
            settings = None
        else:
            settings, _ = deployed_settings(remote)
        return Status(self.name, self.config.ACA_APP_ENDPOINT, app.name, state, None, settings,
                      str(revision.created_time) if revision.created_time else None)

    def log_tail(self, n: int | None) -> str:
        return "\n".join(self.app.log_tail(MAX_TAIL if n is None else n))

    def follow(self, tail: int) -> Iterator[str]:
        return self.app.follow_logs(tail)

    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool, start: bool) -> None:
        self.app.scale(min_replicas=min_replicas, max_replicas=max_replicas, stop=stop, start=start)

    def teardown(self, *, app_only: bool) -> list[str]:
        self.app.delete()
        done = [f"container app {self.app.name} deleted"]
        if not app_only:
            done += self._delete_deployment_resources()
        return done

    def _delete_deployment_resources(self) -> list[str]:
        """Delete what the deployment created (top-level resources, newest first), then its record."""
        template = read_json(self.project.template_path, "")
        versions = {r["type"].lower(): r["apiVersion"] for r in template.get("resources", [])}
        done = []
        with azure_call("reading the deployment's resources"):
            ops = list(self.session.deployments.deployment_operations.list(self.resource_group, DEPLOYMENT_NAME))
        targets = [op.properties.target_resource for op in ops if op.properties.target_resource is not None]
        for target in reversed(targets):
            rtype = target.resource_type.lower()
            if rtype.count("/") != 1 or rtype == "microsoft.app/containerapps" or rtype not in versions:
                continue  # child resources go with their parent; the app is already gone
            with azure_call(f"deleting {target.resource_name}"):
                self.session.resources.resources.begin_delete_by_id(target.id, api_version=versions[rtype]).result()
            done.append(f"{target.resource_type} {target.resource_name} deleted")
        with azure_call("deleting the deployment record"):
            self.session.deployments.deployments.begin_delete(self.resource_group, DEPLOYMENT_NAME).result()
        return done
