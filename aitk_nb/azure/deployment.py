"""ARM deployment of the template: validate, what-if, create-or-update with per-resource progress.

The poller's continuation token is saved beside the project state, so a provision interrupted by a
kernel restart can be resumed rather than started over."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import write_json_atomic
from ..invocation import command
from ..operations import Operation
from .session import AzureError, AzureSession, azure_call, service_value

DEPLOYMENT_NAME = "aitk-inference"
POLL_SECONDS = 2.0


@dataclass
class DeploymentRequest:
    resource_group: str
    template: dict
    parameters: dict[str, Any]  # plain values; secure ones are never written anywhere

    def body(self) -> dict:
        return {"properties": {"mode": "Incremental", "template": self.template,
                               "parameters": {k: {"value": v} for k, v in self.parameters.items()}}}


def ensure_resource_group(session: AzureSession, name: str, location: str | None) -> str:
    """The group's location; creates the group when it does not exist (needs a location)."""
    rgs = session.resources.resource_groups
    with azure_call(f"reading resource group {name}"):
        if rgs.check_existence(name):
            return rgs.get(name).location
    if not location:
        raise AzureError(f"resource group {name} does not exist; pass --location to create it")
    with azure_call(f"creating resource group {name}"):
        return rgs.create_or_update(name, {"location": location}).location


def validate(session: AzureSession, req: DeploymentRequest) -> None:
    with azure_call("validating the template"):
        result = session.deployments.deployments.begin_validate(req.resource_group, DEPLOYMENT_NAME, req.body()).result()
    error = getattr(result, "error", None)
    if error is not None:
        raise AzureError(f"the template does not validate: {_describe(error)}", code=error.code)


def what_if(session: AzureSession, req: DeploymentRequest) -> list[tuple[str, str]]:
    """(resource, change type) for every resource the deployment would touch."""
    with azure_call("previewing the deployment (what-if)"):
        result = session.deployments.deployments.begin_what_if(req.resource_group, DEPLOYMENT_NAME, req.body()).result()
    if getattr(result, "error", None) is not None:
        raise AzureError(f"what-if failed: {_describe(result.error)}", code=result.error.code)
    return [(_short(c.resource_id), str(getattr(c.change_type, "value", c.change_type))) for c in result.changes or []]


def deploy(session: AzureSession, req: DeploymentRequest, *, state_file: Path, operation: Operation,
           progress: bool = True, resources: int | None = None, continuation_token: str | None = None) -> dict[str, Any]:
    """Create or update; live per-resource progress (a bar over `resources`, a line per state change,
    reported to `operation` too); returns the template outputs. The poller's continuation token is the
    operation's, and saved in `state_file` until the deployment ends; cancelling the operation cancels
    the deployment through ARM."""
    from tqdm.auto import tqdm

    deployments = session.deployments.deployments
    token = continuation_token or _saved_token(state_file, req.resource_group)
    with azure_call("starting the deployment"):
        if token:
            poller = deployments.begin_create_or_update(req.resource_group, DEPLOYMENT_NAME, req.body(), continuation_token=token)
        else:
            poller = deployments.begin_create_or_update(req.resource_group, DEPLOYMENT_NAME, req.body())
    operation.set_continuation_token(poller.continuation_token())
    write_json_atomic(state_file, {"resource_group": req.resource_group, "deployment": DEPLOYMENT_NAME,
                                   "continuation_token": poller.continuation_token()})
    operation.on_cancel(lambda: _cancel(session, req.resource_group, operation))
    with tqdm(total=resources, desc=f"deployment {DEPLOYMENT_NAME}", unit="resource", disable=not progress) as bar:
        tracker = _Tracker(bar, progress, operation, resources)
        try:
            with azure_call("deploying the template"):
                while not poller.done():
                    _report_operations(session, req.resource_group, tracker)
                    # an interrupt stops watching here; the deployment goes on in Azure and the next
                    # provision resumes it from the saved token
                    operation.checkpoint(f"the deployment goes on in Azure; {command('provision')} again resumes it")
                    poller.wait(POLL_SECONDS)
                result = poller.result()
        except AzureError as e:
            state_file.unlink(missing_ok=True)  # finished, if badly: nothing to resume
            _report_operations(session, req.resource_group, tracker)
            raise AzureError(f"the deployment failed: {_failure(session, req.resource_group, e)}", code=e.code,
                             status=e.status, request_id=e.request_id) from e
        finally:
            operation.on_cancel(None)
        state_file.unlink(missing_ok=True)
        _report_operations(session, req.resource_group, tracker)
    props = result.properties
    state = service_value(props.provisioning_state)
    if state != "Succeeded":
        raise AzureError(f"the deployment ended {state}: {_failure(session, req.resource_group, props.error)}")
    return {k: v.get("value") for k, v in (props.outputs or {}).items()}


def state(session: AzureSession, rg: str) -> str:
    """The deployment's provisioning state as ARM gives it ("Running", "Succeeded", "Canceled", ...)."""
    with azure_call("reading the deployment"):
        return service_value(session.deployments.deployments.get(rg, DEPLOYMENT_NAME).properties.provisioning_state)


def _cancel(session: AzureSession, rg: str, operation: Operation) -> None:
    """Cancel the running deployment through ARM (resources it already made stay, as ARM leaves them)."""
    try:
        with azure_call("cancelling the deployment"):
            session.deployments.deployments.cancel(rg, DEPLOYMENT_NAME)
    except AzureError as e:  # e.g. it has just finished: the operation ends as the deployment did
        operation.report(str(e))
        return
    operation.report("cancel sent to ARM; waiting for the deployment to stop")


class _Tracker:
    """Each resource's last state: a line when it changes, the bar advanced when it is done."""

    DONE = ("Succeeded", "Failed", "Canceled")

    def __init__(self, bar, progress: bool, operation: Operation, total: int | None):
        self.bar, self.progress, self.operation, self.total, self.seen = bar, progress, operation, total, {}

    def update(self, name: str, state: str) -> None:
        if self.seen.get(name) == state:
            return
        was_done = self.seen.get(name) in self.DONE
        self.seen[name] = state
        done = sum(s in self.DONE for s in self.seen.values())
        self.operation.report(f"{state} {name}", done / self.total if self.total else None)
        if not self.progress:
            return
        self.bar.write(f"  {state:<10} {name}")
        if state in self.DONE and not was_done:
            self.bar.update(1)
        self.bar.set_postfix_str(f"{state} {name.rsplit(' ', 1)[-1]}")


def _report_operations(session: AzureSession, rg: str, tracker: _Tracker) -> None:
    with azure_call("reading deployment progress"):
        ops = list(session.deployments.deployment_operations.list(rg, DEPLOYMENT_NAME))
    for op in reversed(ops):  # ARM lists the newest first
        target = op.properties.target_resource
        if target is not None:
            tracker.update(f"{target.resource_type} {target.resource_name}", service_value(op.properties.provisioning_state))


def _failure(session: AzureSession, rg: str, error) -> str:
    """The failing resource(s), with ARM's code and message for each, from the deployment's
    operations; the deployment's own error when no operation says more."""
    parts = []
    with azure_call("reading deployment operations"):
        for op in session.deployments.deployment_operations.list(rg, DEPLOYMENT_NAME):
            p = op.properties
            if service_value(p.provisioning_state) == "Failed" and p.target_resource is not None:
                parts.append(f"{p.target_resource.resource_type} {p.target_resource.resource_name}: "
                             f"{_status_message(p.status_message)}")
    if not parts and error is not None:
        parts.append(str(error) if isinstance(error, Exception) else _describe(error))
    return "; ".join(parts) or "no error details"


def _status_message(message) -> str:
    """An operation's statusMessage (the SDK's StatusMessage, a dict or text) as 'code: message'."""
    if message is None or isinstance(message, str):
        return message or "no details"
    error = message.get("error", message) if isinstance(message, dict) else getattr(message, "error", None)
    code = error.get("code") if isinstance(error, dict) else getattr(error, "code", None)
    text = error.get("message") if isinstance(error, dict) else getattr(error, "message", None)
    return f"{code}: {text}" if code else json.dumps(message, default=str)


def _describe(error) -> str:
    details = [d for d in (getattr(error, "details", None) or [])]
    inner = "; ".join(f"{d.code}: {d.message}" + (f" ({d.target})" if getattr(d, "target", None) else "") for d in details)
    target = f" ({error.target})" if getattr(error, "target", None) else ""
    return f"{error.code}: {error.message}{target}" + (f" [{inner}]" if inner else "")


def _short(resource_id: str) -> str:
    parts = resource_id.split("/providers/", 1)
    return parts[-1] if len(parts) == 2 else resource_id


def _saved_token(state_file: Path, rg: str) -> str | None:
    try:
        saved = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    return saved.get("continuation_token") if saved.get("resource_group") == rg else None
