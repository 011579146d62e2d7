"""The azure target: the template deployed with ARM, the share in Azure Files, the app in Container Apps.
(The Azure SDKs are imported by `aitk_nb.azure` only when a call needs them.)"""
from __future__ import annotations

import functools
from typing import Any, Iterator

from ..azure import adopt, deployment
from ..azure.app import ContainerApp
from ..azure.files import AzureFilesRemote, share_client
from ..azure.logs import MAX_TAIL
from ..azure.provisioning import Provisioner, config_from, shown_changes
from ..azure.session import AzureError, AzureSession, azure_call, missing_ok, service_value
from ..azure.teardown import Teardown
from ..config import InferenceConfig, Parameters, read_json
from ..deploy_plan import deployed_settings
from ..endpoints import AppState, Readiness
from ..errors import AitkError, NotProvisionedError
from ..finetuning import FineTuning, provision_parameters
from ..invocation import command
from ..operations import Operation
from ..project import Project
from ..results import Status, TeardownStep
from . import Provisioned

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
    @property
    def state_file(self):
        return self.project.state_dir / "azure" / "deployment.json"

    def _group_exists(self) -> bool:
        with azure_call(f"reading resource group {self.resource_group}"):
            return bool(self.session.resources.resource_groups.check_existence(self.resource_group))

    def group_location(self) -> str | None:
        """The resource group's region (the template's default location), or None when it does not exist."""
        with missing_ok(f"reading resource group {self.resource_group}"):
            return self.session.resources.resource_groups.get(self.resource_group).location
        return None

    def _provisioner(self) -> Provisioner:
        return Provisioner(self.session, self.project.template_path, self.resource_group, self.state_file)

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

    def plan(self, params: Parameters, *, sources: dict[str, str] | None = None, finetuning: FineTuning | None = None) -> Provisioned:
        """What provision would do: the what-if of the request it would deploy (what existed before
        shown as reused); changes nothing, reads no key."""
        self._check_storage_name(params)
        if not self._group_exists():
            return Provisioned(self.config, [(f"resource group {self.resource_group}", "Create"),
                                             ("every resource in the template", "Create")])
        provisioner = self._provisioner()
        plan = provisioner.prepare(params, dict(sources or {}), finetuning, None)
        req = plan.request(self.resource_group)
        deployment.validate(self.session, req)
        return Provisioned(self.config, shown_changes(provisioner.changes(plan, req)), plan.shown_values())

    def provision(self, params: Parameters, *, progress: bool = True, operation: Operation,
                  continuation_token: str | None = None, yes: bool = False, rotate_key: bool = False,
                  cancel_previous: bool = False, sources: dict[str, str] | None = None,
                  finetuning: FineTuning | None = None) -> Provisioned:
        op = operation
        op.report("checking the storage account name")
        self._check_storage_name(params)
        op.checkpoint("nothing was made")
        op.report(f"resource group {self.resource_group}")
        location = deployment.ensure_resource_group(self.session, self.resource_group, params.location)
        op.checkpoint(f"resource group {self.resource_group} exists; nothing in it was made")
        plan, changes, outputs = self._provisioner().run(
            params, dict(sources or {}), finetuning, location=location, op=op, progress=progress, yes=yes,
            rotate_key=rotate_key, cancel_previous=cancel_previous, continuation_token=continuation_token)
        return Provisioned(config_from(outputs), shown_changes(changes), plan.shown_values(), plan.notes)

    # -- share and replica -----------------------------------------------------------------------
    def remote(self):
        if not (self.config.STORAGE_ACCOUNT_NAME and self.config.FILE_SHARE_NAME):
            raise NotProvisionedError(f"{self.project.config_path.name} needs STORAGE_ACCOUNT_NAME and FILE_SHARE_NAME; "
                                      f"run {command('provision --target azure')} or fill them in")
        return AzureFilesRemote(share_client(self.session, self.resource_group, self.config.STORAGE_ACCOUNT_NAME,
                                             self.config.FILE_SHARE_NAME))

    def api_key(self) -> str | None:
        return self.app.api_key()

    # -- an app that runs another server (AI Toolkit's): adoption, aitk_nb/azure/adopt.py ---------
    def other_server(self) -> str | None:
        return adopt.other_server(self.app.get())

    def old_layout(self) -> bool:
        return adopt.old_layout(self.app.get())

    def move_to_app_dir(self) -> str:
        return adopt.move(self.session, self.resource_group, self.app.name)

    def adopt(self, remote) -> str:
        template = read_json(self.project.template_path, "the project needs infra/provision/inference.json")
        return adopt.switch(self.session, self.resource_group, self.app.name, template, remote)

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
            settings, _ = deployed_settings(remote, app.name)
        return Status(self.name, self.config.ACA_APP_ENDPOINT, app.name, state, None, settings,
                      str(revision.created_time) if revision.created_time else None, cost=self.cost())

    def cost(self):
        """What the app costs now (issue 18): its replicas up and their price, the idle flag."""
        from ..azure.spend import cost_of

        return cost_of(self.session, self.app)

    def spend(self):
        from ..azure.spend import spend

        return spend(self.session, self.app)

    def log_tail(self, n: int | None) -> str:
        return "\n".join(self.app.log_tail(MAX_TAIL if n is None else n))

    def follow(self, tail: int) -> Iterator[str]:
        return self.app.follow_logs(tail)

    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool, start: bool) -> None:
        self.app.scale(min_replicas=min_replicas, max_replicas=max_replicas, stop=stop, start=start)

    @functools.cached_property
    def app_name(self) -> str:
        """This project's app: the config's, else (a fresh clone) the one the parameters name, as ARM
        resolves it (a what-if: a default name is uniqueString()'s, which only ARM computes)."""
        if self.config.ACA_APP_NAME:
            return self.config.ACA_APP_NAME
        params, sources, ft = provision_parameters(self.project, None, None, self.config)
        return self._provisioner().survey(params, sources, ft)[3].app

    def _teardown(self) -> Teardown:
        template = read_json(self.project.template_path, "the project needs infra/provision/inference.json")
        return Teardown(self.session, self.resource_group, self.app_name, template)

    def teardown_plan(self, *, app_only: bool) -> list[TeardownStep]:
        if not self._group_exists():
            return [TeardownStep(f"resource group {self.resource_group}", False, "does not exist (nothing to delete)")]
        return self._teardown().plan(app_only=app_only)

    def teardown(self, plan: list[TeardownStep]) -> list[str]:
        done = self._teardown().act(plan) if any(step.delete for step in plan) else []
        self.state_file.unlink(missing_ok=True)
        return done
