"""ARM deployment of the template: validate, what-if, create-or-update with per-resource progress.

The poller's continuation token is saved beside the project state with a hash of the request, so a
provision interrupted by a kernel restart resumes that deployment, but only when the new request is
the same one (issue 10: a changed parameter must be deployed, not dropped). A different request waits
for the earlier deployment to end (or cancels it) and then deploys."""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import write_json_atomic
from ..invocation import command
from ..operations import Operation
from .ownership import short_id
from .session import AzureError, AzureSession, azure_call, missing_ok, service_value

# One deployment record per app (issue 16): two projects in one resource group never replace, resume or
# cancel each other's. The record made by aitk-nb before it was per app is still found for its app.
DEPLOYMENT_PREFIX = "aitk-inference"
LEGACY_DEPLOYMENT_NAME = DEPLOYMENT_PREFIX
POLL_SECONDS = 2.0


def deployment_name(app: str | None) -> str:
    """The app's ARM deployment record: `aitk-inference-<app>` (an app name has at most 32 characters,
    well within ARM's 64). None (the app not resolved yet: validate and what-if, which keep no record)
    is the plain prefix."""
    return f"{DEPLOYMENT_PREFIX}-{app}" if app else DEPLOYMENT_PREFIX


TERMINAL = ("Succeeded", "Failed", "Canceled")


@dataclass
class DeploymentRequest:
    resource_group: str
    template: dict
    parameters: dict[str, Any]  # plain values; secure ones are never written anywhere
    app: str | None = None  # the app it deploys, as resolved: names the deployment record

    @property
    def name(self) -> str:
        return deployment_name(self.app)

    def body(self, *, ids_only: bool = False) -> dict:
        props: dict[str, Any] = {"mode": "Incremental", "template": self.template,
                                 "parameters": {k: {"value": v} for k, v in self.parameters.items()}}
        if ids_only:  # what-if without comparing properties: Create, or Deploy for what exists
            props["whatIfSettings"] = {"resultFormat": "ResourceIdOnly"}
        return {"properties": props}

    def digest(self) -> str:
        """SHA-256 of the template and the parameter values, secure parameters left out: it is kept on
        disk, and a key generated anew for each attempt must not make the same request look new."""
        declared = self.template.get("parameters", {})
        plain = {k: v for k, v in self.parameters.items()
                 if str(declared.get(k, {}).get("type", "")).lower() not in ("securestring", "secureobject")}
        return hashlib.sha256(json.dumps([self.template, plain], sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Change:
    """One resource in a what-if: its id, ARM's change type, and for a Modify the properties it changes."""

    resource_id: str
    action: str  # Create, Modify, NoChange, Delete, Deploy, Ignore, Unsupported
    delta: tuple[str, ...] = field(default=())

    @property
    def resource(self) -> str:
        return short_id(self.resource_id)


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
        result = session.deployments.deployments.begin_validate(req.resource_group, req.name, req.body()).result()
    error = getattr(result, "error", None)
    if error is not None:
        raise AzureError(f"the template does not validate: {_describe(error)}", code=error.code)


def what_if(session: AzureSession, req: DeploymentRequest, *, ids_only: bool = False) -> list[Change]:
    """Every resource the deployment would touch (and, as Ignore, the group's others), with ARM's
    change type; `ids_only`: resolved ids only (Create, or Deploy for one that exists)."""
    with azure_call("previewing the deployment (what-if)"):
        result = session.deployments.deployments.begin_what_if(req.resource_group, req.name,
                                                               req.body(ids_only=ids_only)).result()
    if getattr(result, "error", None) is not None:
        raise AzureError(f"what-if failed: {_describe(result.error)}", code=result.error.code)
    return [Change(c.resource_id, service_value(c.change_type), tuple(_delta(c.delta or [])))
            for c in result.changes or []]


def _delta(changes, prefix: str = "") -> list[str]:
    """What-if property changes as 'path: before -> after' lines (arrays and objects by their children)."""
    out = []
    for c in changes:
        path = f"{prefix}{c.path}" if not prefix or str(c.path).startswith("[") else f"{prefix}.{c.path}"
        kind = service_value(c.property_change_type)
        if c.children:
            out += _delta(c.children, path)
        elif kind == "Create":
            out.append(f"{path}: + {_value(c.after)}")
        elif kind == "Delete":
            out.append(f"{path}: - {_value(c.before)}")
        elif kind == "Modify":
            out.append(f"{path}: {_value(c.before)} -> {_value(c.after)}")
    return out


def _value(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def resumable(state_file: Path, req: DeploymentRequest, continuation_token: str | None = None) -> str | None:
    """The continuation token of an interrupted deployment of this very request, or None. A token the
    caller passes is theirs to vouch for, unless the saved state says it was for another request."""
    saved = _saved(state_file, req.resource_group)
    if saved.get("deployment", req.name) != req.name:
        saved = {}  # another app's deployment (the project's acaAppName changed): nothing of it is resumed here
    if continuation_token:
        same_token = saved.get("continuation_token") == continuation_token
        return continuation_token if not same_token or saved.get("request") == req.digest() else None
    return saved.get("continuation_token") if saved.get("request") == req.digest() else None


def settle_earlier(session: AzureSession, rg: str, name: str, *, cancel: bool, operation: Operation, state_file: Path) -> bool:
    """Before a new request: an earlier deployment of this app's record `name` still running (an interrupted
    provision of other parameters, or a teammate's of the same app) is waited for, or cancelled through ARM
    with `cancel`; ARM refuses a new one meanwhile (409 DeploymentActive). Another app's deployment has
    another name and is never touched. True when there was one."""
    deployments = session.deployments.deployments
    state_file.unlink(missing_ok=True)  # a saved token resumes nothing now: this is another request
    with missing_ok("reading the earlier deployment"):
        current = deployments.get(rg, name)
        if service_value(current.properties.provisioning_state) in TERMINAL:
            return False
        began = current.properties.timestamp
        if cancel:
            operation.report(f"the earlier deployment {name} (started {began}) is still running: cancelling it")
            _cancel(session, rg, name, operation)
        else:
            operation.report(f"the earlier deployment {name} (started {began}) is still running another "
                             "request: waiting for it to end (--cancel-previous cancels it instead)")
        ended = _wait_until_ended(session, rg, name, operation)
        operation.report(f"the earlier deployment ended {ended}; deploying the new request")
        return True
    return False


def _wait_until_ended(session: AzureSession, rg: str, name: str, operation: Operation) -> str:
    """Poll the deployment's state until it is terminal (no poller exists for a deployment this process
    did not start); an interrupt stops the wait at once, the deployment goes on."""
    while True:
        now = state(session, rg, name)
        if now in TERMINAL:
            return now
        operation.checkpoint("the earlier deployment goes on in Azure; nothing new was deployed")
        time.sleep(POLL_SECONDS)


def deploy(session: AzureSession, req: DeploymentRequest, *, state_file: Path, operation: Operation,
           progress: bool = True, resources: int | None = None, continuation_token: str | None = None) -> dict[str, Any]:
    """Create or update (or, with `continuation_token`, resume the interrupted deployment of this same
    request); live per-resource progress (a bar over `resources`, a line per state change, reported to
    `operation` too); returns the template outputs. The poller's continuation token is the operation's,
    and saved in `state_file` with the request's digest until the deployment ends; cancelling the
    operation cancels the deployment through ARM."""
    from tqdm.auto import tqdm

    deployments = session.deployments.deployments
    token = continuation_token
    with azure_call("starting the deployment"):
        if token:
            poller = deployments.begin_create_or_update(req.resource_group, req.name, req.body(), continuation_token=token)
        else:
            poller = deployments.begin_create_or_update(req.resource_group, req.name, req.body())
    operation.set_continuation_token(poller.continuation_token())
    write_json_atomic(state_file, {"resource_group": req.resource_group, "deployment": req.name,
                                   "continuation_token": poller.continuation_token(), "request": req.digest()})
    operation.on_cancel(lambda: _cancel(session, req.resource_group, req.name, operation))
    with tqdm(total=resources, desc=f"deployment {req.name}", unit="resource", disable=not progress) as bar:
        tracker = _Tracker(bar, progress, operation, resources)
        try:
            with azure_call("deploying the template"):
                while not poller.done():
                    _report_operations(session, req.resource_group, req.name, tracker)
                    # an interrupt stops watching here; the deployment goes on in Azure and the next
                    # provision resumes it from the saved token
                    operation.checkpoint(f"the deployment goes on in Azure; {command('provision')} again resumes it")
                    poller.wait(POLL_SECONDS)
                result = poller.result()
        except AzureError as e:
            state_file.unlink(missing_ok=True)  # finished, if badly: nothing to resume
            _report_operations(session, req.resource_group, req.name, tracker)
            raise AzureError(f"the deployment failed: {_failure(session, req.resource_group, req.name, e)}", code=e.code,
                             status=e.status, request_id=e.request_id) from e
        finally:
            operation.on_cancel(None)
        state_file.unlink(missing_ok=True)
        _report_operations(session, req.resource_group, req.name, tracker)
    props = result.properties
    state = service_value(props.provisioning_state)
    if state != "Succeeded":
        raise AzureError(f"the deployment ended {state}: {_failure(session, req.resource_group, req.name, props.error)}")
    return {k: v.get("value") for k, v in (props.outputs or {}).items()}


def state(session: AzureSession, rg: str, name: str) -> str:
    """The deployment's provisioning state as ARM gives it ("Running", "Succeeded", "Canceled", ...)."""
    with azure_call("reading the deployment"):
        return service_value(session.deployments.deployments.get(rg, name).properties.provisioning_state)


def _cancel(session: AzureSession, rg: str, name: str, operation: Operation) -> None:
    """Cancel the running deployment through ARM (resources it already made stay, as ARM leaves them)."""
    try:
        with azure_call("cancelling the deployment"):
            session.deployments.deployments.cancel(rg, name)
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


def _report_operations(session: AzureSession, rg: str, name: str, tracker: _Tracker) -> None:
    with azure_call("reading deployment progress"):
        ops = list(session.deployments.deployment_operations.list(rg, name))
    for op in reversed(ops):  # ARM lists the newest first
        target = op.properties.target_resource
        if target is not None:
            tracker.update(f"{target.resource_type} {target.resource_name}", service_value(op.properties.provisioning_state))


def _failure(session: AzureSession, rg: str, name: str, error) -> str:
    """The failing resource(s), with ARM's code and message for each, from the deployment's
    operations; the deployment's own error when no operation says more."""
    parts = []
    with azure_call("reading deployment operations"):
        for op in session.deployments.deployment_operations.list(rg, name):
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


def _saved(state_file: Path, rg: str) -> dict:
    try:
        saved = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) and saved.get("resource_group") == rg else {}
