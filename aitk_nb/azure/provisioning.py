"""Provision on Azure, safe on a shared account (issue 10) and picking up a fine-tuning's resources
(issue 11): the names come from the parameters, the fine-tuning and Azure; what exists is surveyed
and only what this app made is declared again (the rest referenced, `ownership`); the API key of an
existing app is kept; the GPU quota counts what the app holds; a plan that changes what existed is
asked about; an interrupted deployment is resumed only for the same request."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import InferenceConfig, Parameters, read_json
from ..errors import ConfirmationError, OperationCancelledError
from ..finetuning import AZURE, GIVEN, INFERENCE, FineTuning
from ..invocation import command
from ..operations import Operation
from . import deployment, handoff, ownership
from .app import ContainerApp
from .deployment import Change, DeploymentRequest
from .ownership import APP, ENV_STORAGE, ENVIRONMENT, KINDS, SHARE, STORAGE, WORKSPACE, Survey
from .session import AzureError, AzureSession, azure_call

LIST_SECRETS = "Microsoft.App/containerApps/listSecrets/action"
REUSED = "Reuse"  # the change shown for a resource that existed before and is only referenced


@dataclass
class Plan:
    """The request a provision deploys, with what it found."""

    template: dict
    values: dict[str, Any]          # the template's parameter values (no key yet)
    survey: Survey
    sources: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def request(self, rg: str) -> DeploymentRequest:
        return DeploymentRequest(rg, self.template, dict(self.values), app=self.survey.app)

    def shown_values(self) -> list[tuple[str, Any, str]]:
        """(parameter, value, where it came from) for the card; names as resolved in Azure."""
        rows = []
        for kind in KINDS:
            r = self.survey.get(kind)
            value = r.name if r is not None else self.values.get(kind.parameter)
            source = self.sources.get(kind.parameter, "template default")
            if kind is WORKSPACE and self.values.get("reuseEnvironment") and not (r is not None and r.exists):
                value, source = None, "none made: the reused environment logs to its own"
            rows.append((kind.parameter, value, source))
        for name in ("location", "gpuWorkloadProfileName", "gpuWorkloadProfileType", "maximumInstanceCount"):
            if name in self.values or name in self.sources:
                rows.append((name, self.values.get(name), self.sources.get(name, "template default")))
        return rows


class Provisioner:
    def __init__(self, session: AzureSession, project_template: Path, resource_group: str, state_file: Path):
        self.session, self.template_path, self.rg, self.state_file = session, project_template, resource_group, state_file

    # -- what provision will deploy ----------------------------------------------------------------
    def prepare(self, params: Parameters, sources: dict[str, str], ft: FineTuning | None, op: Operation | None) -> Plan:
        """Names from the fine-tuning and Azure, the survey of what exists, and the request's values:
        foreign resources referenced (reuse*), a reused environment's GPU profile and location."""
        params, template, values, survey = self.survey(params, sources, ft, op)
        app = survey[APP]
        if app.foreign(survey.app):
            raise AzureError(f"acaAppName {app.name!r}: a container app of that name exists in {self.rg} and was not made by "
                             f"aitk-nb for it ({app.why_not_ours()}); provision never overwrites it: set acaAppName in "
                             "infra/provision/inference.parameters.json to a new name")
        values.update(survey.reuse())
        env = survey[ENVIRONMENT]
        if env.foreign(survey.app):
            given = {k for k, s in sources.items() if s in (GIVEN, INFERENCE)}
            name, kind = handoff.gpu_profile(env, name=values.get("gpuWorkloadProfileName") if "gpuWorkloadProfileName" in given else None,
                                             type_=values.get("gpuWorkloadProfileType"), rg=self.rg)
            values["gpuWorkloadProfileName"], values["gpuWorkloadProfileType"] = name, kind
            sources["gpuWorkloadProfileName"] = sources["gpuWorkloadProfileType"] = f"{AZURE} (the reused environment's)"
            if params.location is None and handoff.environment_location(env):
                values["location"] = handoff.environment_location(env).lower().replace(" ", "")
                sources["location"] = f"{AZURE} (the reused environment's)"
        link = survey[ENV_STORAGE]
        if link.foreign(survey.app):
            handoff.check_reused_storage(link, survey[STORAGE].name, survey[SHARE].name)
        return Plan(template, values, survey, sources)

    def survey(self, params: Parameters, sources: dict[str, str], ft: FineTuning | None,
               op: Operation | None = None) -> tuple[Parameters, dict, dict[str, Any], Survey]:
        """The names (from the fine-tuning and Azure too) and what exists of the template's resources."""
        say = op.report if op else (lambda *_: None)
        say("looking up the fine-tuning's resources" if ft else "reading the template")
        params = handoff.resolve(self.session, self.rg, params, sources, ft)
        template = read_json(self.template_path, "the project needs infra/provision/inference.json")
        values = params.arm_values()
        say("finding what exists (what-if) and whose it is")
        return params, template, values, ownership.survey(self.session, self.rg, template, values, self._ids)

    def _ids(self, values: dict[str, Any], *, ids_only: bool) -> list[tuple[str, str]]:
        template = read_json(self.template_path, "")
        return [(c.resource_id, c.action) for c in deployment.what_if(self.session, DeploymentRequest(self.rg, template, values),
                                                                          ids_only=ids_only)]

    def changes(self, plan: Plan, req: DeploymentRequest) -> list[Change]:
        """The full what-if of the request: the template's own resources (the group's others left out),
        and each reused one as Reuse."""
        mine = {r.id.lower() for r in plan.survey.resources.values()}
        shown = [c for c in deployment.what_if(self.session, req) if c.resource_id.lower() in mine and c.action != "Ignore"]
        unused = {WORKSPACE} if plan.values.get("reuseEnvironment") else set()  # a reused environment logs to its own
        shown += [Change(r.id, REUSED) for r in plan.survey.foreign() if r.kind not in unused]
        return shown

    # -- checks before deploying -------------------------------------------------------------------
    def check_gpu_quota(self, plan: Plan, location: str, count: int) -> None:
        """Fail before deploying when the location's serverless GPU quota cannot hold `count` replicas;
        the GPUs this app's replicas hold now count as free for it (issue 10, item 7)."""
        profile = str(plan.values.get("gpuWorkloadProfileType") or
                      plan.template["parameters"].get("gpuWorkloadProfileType", {}).get("defaultValue", ""))
        family = next((f for f in ("T4", "A100") if f in profile), None)
        if family is None or not handoff.is_serverless(profile):
            return  # dedicated profiles have node counts of their own, not this quota
        with azure_call(f"reading Container Apps quota in {location}"):
            usages = list(self.session.apps.usages.list(location))
        for u in usages:
            name = (u.name.value or "") if u.name else ""
            if family in name and "Gpu" in name:
                held = self._gpus_held(plan)
                free = (u.limit or 0) - (u.current_value or 0) + held
                if free < count:
                    mine = f" ({held:g} of them held by {plan.survey.app} now)" if held else ""
                    raise AzureError(
                        f"GPU quota short in {location}: {name} has {free:g} of {u.limit:g} free{mine}, maximumInstanceCount is "
                        f"{count}; request more quota in the Azure portal (Container Apps, serverless GPU) or lower "
                        "maximumInstanceCount")
                return

    def _gpus_held(self, plan: Plan) -> float:
        """GPUs the app's running replicas hold (one per replica on a serverless GPU profile)."""
        app = plan.survey[APP]
        if not app.exists:
            return 0
        with azure_call(f"listing the revisions of {app.name}"):
            revisions = list(self.session.apps.container_apps_revisions.list_revisions(self.rg, app.name))
        return sum((r.replicas or 0) for r in revisions if r.active)

    def api_key(self, plan: Plan, rotate: bool) -> str:
        """The key the app keeps (read from the existing app), or a new one: for a new app, or with
        `rotate`. A key that cannot be read stops provision: a new one would lock every client out."""
        app = plan.survey[APP]
        if app.exists and not rotate:
            try:
                key = ContainerApp(self.session, self.rg, app.name).api_key()
            except AzureError as e:
                if e.status == 403:
                    raise AzureError(f"reading the API key of container app {app.name} needs the permission {LIST_SECRETS}, "
                                     "which this sign-in does not have: ask for it (e.g. the Contributor role on the app), or "
                                     "pass --rotate-key to give the app a new key (every client must then use the new one)",
                                     code=e.code, status=e.status, request_id=e.request_id) from e
                raise
            if key:
                return key
        if app.exists:
            plan.notes.append(f"API key of {app.name} {'rotated' if rotate else 'set (it had none)'}: clients holding "
                              "the old key now get 401; give them the new one (`aitk_nb.endpoint().api_key()`)")
        return secrets.token_urlsafe(32)

    def confirm(self, changes: list[Change], plan: Plan, yes: bool, op: Operation) -> None:
        """Ask before a plan that modifies or deletes a resource that existed before provision."""
        existed = {r.id.lower() for r in plan.survey.resources.values() if r.exists}
        touched = [c for c in changes if c.resource_id.lower() in existed and c.action in ("Modify", "Delete")]
        if not touched or yes:
            return
        lines = []
        for c in touched:
            lines.append(f"  {c.action} {c.resource}")
            lines += [f"      {d}" for d in c.delta[:12]] + ([f"      ... {len(c.delta) - 12} more"] if len(c.delta) > 12 else [])
        text = "provision would change resources that exist already:\n" + "\n".join(lines)
        if not op.ask(text + "\nApply these changes? [y/N] "):
            raise ConfirmationError(f"{text.splitlines()[0][:-1]} ({', '.join(f'{c.action} {c.resource}' for c in touched)}); "
                                    "nothing was changed: pass --yes (yes=True) to apply them")

    # -- deploying ---------------------------------------------------------------------------------
    def run(self, params: Parameters, sources: dict[str, str], ft: FineTuning | None, *, location: str,
            op: Operation, progress: bool, yes: bool, rotate_key: bool, cancel_previous: bool,
            continuation_token: str | None) -> tuple[Plan, list[Change], dict[str, Any]]:
        plan = self.prepare(params, sources, ft, op)
        op.checkpoint("nothing was deployed")
        token = deployment.resumable(self.state_file, plan.request(self.rg), continuation_token)
        changes: list[Change] = []
        if token is None:
            if deployment.settle_earlier(self.session, self.rg, plan.request(self.rg).name, cancel=cancel_previous, operation=op, state_file=self.state_file):
                plan = self.prepare(params, sources, ft, op)  # the earlier deployment changed what exists
            op.report(f"checking the GPU quota in {plan.values.get('location') or location}")
            self.check_gpu_quota(plan, plan.values.get("location") or location, params.maximumInstanceCount)
            plan.values["apiKey"] = self.api_key(plan, rotate_key)
            req = plan.request(self.rg)
            op.report("validating the template")
            deployment.validate(self.session, req)
            op.checkpoint("nothing was deployed")
            op.report("previewing the deployment (what-if)")
            changes = self.changes(plan, req)
            self.confirm(changes, plan, yes, op)
            op.checkpoint("nothing was deployed")
        else:
            req = plan.request(self.rg)
            op.report("resuming the interrupted deployment of the same request")
        try:
            outputs = deployment.deploy(self.session, req, state_file=self.state_file, progress=progress,
                                        resources=len([c for c in changes if c.action != REUSED]) or None,
                                        operation=op, continuation_token=token)
        except AzureError as e:
            if op.cancel_requested:
                raise OperationCancelledError(
                    f"provision cancelled through ARM (the deployment ended {deployment.state(self.session, self.rg, req.name)}); "
                    f"what it made before it stopped stays: run {command('provision')} again to finish, or "
                    f"{command('teardown')} to remove it") from e
            raise
        if rotate_key and plan.survey[APP].exists:
            # a changed secret reaches the replicas only when they start again (Container Apps docs, "Manage secrets")
            ContainerApp(self.session, self.rg, plan.survey[APP].name).restart()
        return plan, changes, outputs


def config_from(outputs: dict[str, Any]) -> InferenceConfig:
    known = set(InferenceConfig.__dataclass_fields__)
    return InferenceConfig(TARGET="azure", **{k: v for k, v in outputs.items() if k in known and k != "TARGET"})


def shown_changes(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.resource, c.action if c.action != REUSED else "Reuse (existed before provision: referenced, not changed)")
            for c in changes]
