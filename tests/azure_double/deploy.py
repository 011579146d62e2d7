"""Microsoft.Resources deployments at resource group scope: validate, what-if (whatif.py),
create-or-update, get, list, delete, cancel and deployment operations. Templates are evaluated by
the double's own template language (arm/).

As ARM does it (docs "Deployments - Create Or Update", "Define the order for deploying
resources", "Deployments - Cancel"):
- A PUT checks the template and the parameters at once (400 InvalidTemplate), answers 201 with
  provisioningState Accepted and an Azure-AsyncOperation URL, then deploys in the background.
- Resources deploy in waves: every resource whose dependencies are done starts together, and its
  expressions are evaluated before any of the wave is created, so a reference() to a resource it
  does not depend on fails (ResourceNotFound) as it would in Azure's parallel deployment.
- A failed resource fails what depends on it; independent ones still deploy; the deployment ends
  Failed with one detail per failed resource.
- Operations list what the deployment PUT, existing resources it only updated included (ARM does
  not tell created from reused); resources whose condition is false are not operations.
- A PUT with the name of a deployment that is still running is refused: 409 DeploymentActive,
  "Unable to edit or replace deployment '<name>': previous deployment from '<start>' is still
  active (expiration time is '<start + 7 days>')". Cancel stops a running deployment (Canceled);
  a finished one cannot be canceled (409)."""
from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from .arm import DeploymentScope, PlannedResource, Template, TemplateError, Unresolved
from .errors import ResourceFailure
from .httpserver import Request, Response
from .resources import now_iso, plain
from .whatif import what_if

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management

TERMINAL = ("Succeeded", "Failed", "Canceled")
SECURE = ("securestring", "secureobject")
FAILED_MESSAGE = ("At least one resource deployment operation failed. Please list deployment operations for "
                  "details. Please see https://aka.ms/arm-deployment-operations for usage details.")
RETENTION_DAYS = 7   # how long ARM keeps a deployment "active" at most (the expiration in DeploymentActive)


def _net_time(t: float) -> str:
    """A time as .NET writes it in ARM's messages: 2/2/2018 4:56:34 PM."""
    g = time.gmtime(t)
    return f"{g.tm_mon}/{g.tm_mday}/{g.tm_year} {(g.tm_hour % 12) or 12}:{g.tm_min:02d}:{g.tm_sec:02d} {'AM' if g.tm_hour < 12 else 'PM'}"


class LiveState:
    """What the template's runtime functions read: the double's resources, with the caller's rights."""

    def __init__(self, d: "AzureDouble", preview: bool):
        self.d, self.preview = d, preview

    def get(self, resource_id: str) -> dict | None:
        body = self.d.mgmt.resources.get(resource_id)
        if body is not None:
            self.d.access.check(f"{body['type']}/read", body["id"])
        return body

    def list(self, resource_id: str, action: str, api_version: str, body: Any) -> Any:
        if self.preview:
            raise Unresolved(resource_id)   # validate and what-if never hand out keys
        return self.d.mgmt.resources.action(resource_id, action, body)


class Deployment:
    def __init__(self, d: "AzureDouble", rg: str, name: str, body: dict):
        self.d, self.rg, self.name, self.body = d, rg, name, body
        self.id = f"/subscriptions/{d.subscription_id}/resourceGroups/{rg}/providers/Microsoft.Resources/deployments/{name}"
        self.props = body.get("properties", {})
        self.state = "Accepted"
        self.error: dict | None = None
        self.outputs: dict | None = None
        self.ops: list[dict] = []
        self.output_resources: list[str] = []
        self.correlation_id = str(uuid.uuid4())
        self.started = time.time()
        self.finished: float | None = None
        self.cancel = threading.Event()
        self.parameters_view: dict = {}
        self.template_hash = str(int(hashlib.sha256(json.dumps(self.props.get("template"), sort_keys=True).encode()).hexdigest()[:15], 16))
        self.dependencies: list[dict] = []
        self.providers: list[dict] = []
        self.template: Template | None = None     # bound once: a newGuid() default is drawn once per deployment
        self.lock = threading.Lock()

    def finish(self, state: str, error: dict | None = None) -> None:
        with self.lock:
            self.state, self.error, self.finished = state, error, time.time()

    def view(self) -> dict:
        with self.lock:
            end = self.finished or time.time()
            p = {"templateHash": self.template_hash, "parameters": self.parameters_view,
                 "mode": self.props.get("mode", "Incremental"), "provisioningState": self.state,
                 "timestamp": now_iso(), "duration": f"PT{end - self.started:.7f}S",
                 "correlationId": self.correlation_id, "providers": self.providers, "dependencies": self.dependencies}
            if self.state == "Succeeded":
                p["outputs"] = self.outputs or {}
                p["outputResources"] = [{"id": i} for i in self.output_resources]
            if self.error:
                p["error"] = self.error
            return {"id": self.id, "name": self.name, "type": "Microsoft.Resources/deployments", "tags": self.body.get("tags", {}),
                    "properties": p}


class Deployments:
    def __init__(self, d: "AzureDouble", mgmt: "Management"):
        self.d, self.m = d, mgmt
        self.items: dict[tuple[str, str], Deployment] = {}

    # -- template plumbing -------------------------------------------------------------------------
    def template(self, rg: str, name: str, props: dict, *, preview: bool) -> Template:
        if "template" not in props:
            if "templateLink" in props:
                raise TemplateError("The test double supports inline templates only (properties.template).", "InvalidTemplateDeployment")
            raise TemplateError("The request content was invalid: properties.template is required.", "InvalidRequestContent")
        if str(props.get("mode", "Incremental")).lower() != "incremental":
            raise TemplateError("The test double deploys in Incremental mode only.", "InvalidDeploymentMode")
        group = self.m.group(rg)
        scope = DeploymentScope(self.d.subscription_id, group["name"], group["location"], tenant_id=self.d.tenant_id,
                                deployment_name=name, group_tags=dict(group.get("tags") or {}))
        tpl = Template(props["template"], props.get("parameters") or {}, scope, runtime=LiveState(self.d, preview), preview=preview)
        tpl.parameters          # every parameter checked now, as ARM does before it starts
        tpl.plan()
        return tpl

    @staticmethod
    def _params_view(tpl: Template) -> dict:
        out = {}
        for name, value in tpl.parameters.items():
            declared = tpl.parameter_type(name)
            if declared.lower() in SECURE:
                out[name] = {"type": {"securestring": "SecureString", "secureobject": "SecureObject"}[declared.lower()]}
            else:
                out[name] = {"type": {"string": "String", "int": "Int", "bool": "Bool", "array": "Array", "object": "Object"}[declared.lower()],
                             "value": plain(value)}
        return out

    def _find(self, rg: str, name: str) -> Deployment | None:
        return self.items.get((rg.lower(), name.lower()))

    @staticmethod
    def _refused(e: TemplateError) -> ResourceFailure:
        """A template error as ARM answers it (400, the message wrapped as its validation says)."""
        return ResourceFailure(e.code, f"Deployment template validation failed: '{e.message}'." if e.code == "InvalidTemplate" else e.message)

    # -- routes --------------------------------------------------------------------------------------
    def list(self, req: Request, sub: str, rg: str) -> Response:
        return self.m.json(200, {"value": [dep.view() for (g, _), dep in self.items.items() if g == rg.lower()]})

    def get(self, req: Request, sub: str, rg: str, name: str) -> Response:
        dep = self._find(rg, name)
        if dep is None:
            return self.m.error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        return self.m.json(200, dep.view())

    def head(self, req: Request, sub: str, rg: str, name: str) -> Response:
        return self.m.json(204 if self._find(rg, name) else 404)

    def put(self, req: Request, sub: str, rg: str, name: str) -> Response:
        body = self.m.body(req)
        old = self._find(rg, name)
        if old is not None and old.state not in TERMINAL:
            return self.m.error(409, "DeploymentActive", f"Unable to edit or replace deployment '{name}': previous deployment from "
                                f"'{_net_time(old.started)}' is still active (expiration time is "
                                f"'{_net_time(old.started + RETENTION_DAYS * 86400 - 1)}'). Please see https://aka.ms/arm-deploy for usage details.")
        rg = self.m.group(rg)["name"]
        dep = Deployment(self.d, rg, name, body)
        try:
            tpl = self.template(rg, name, dep.props, preview=True)
        except TemplateError as e:
            raise self._refused(e) from None
        plan = [p for p in tpl.plan() if p.deploy]
        dep.template = tpl
        dep.parameters_view = self._params_view(tpl)
        by_id = {p.id.lower(): p for p in plan}
        dep.dependencies = [{"id": p.id, "resourceType": p.type, "resourceName": p.name,
                             "dependsOn": [{"id": by_id[x.lower()].id, "resourceType": by_id[x.lower()].type,
                                            "resourceName": by_id[x.lower()].name} for x in p.depends]}
                            for p in plan if p.depends]
        namespaces: dict[str, dict[str, set]] = {}
        for p in plan:
            ns, _, rt = p.type.partition("/")
            namespaces.setdefault(ns, {}).setdefault(rt, set()).add(tpl.scope.location)
        dep.providers = [{"namespace": ns, "resourceTypes": [{"resourceType": rt, "locations": sorted(locs)} for rt, locs in types.items()]}
                         for ns, types in namespaces.items()]
        self.items[(rg.lower(), name.lower())] = dep
        failure = self.d.faults.take_deployment_failure()
        threading.Thread(target=self._run, args=(dep, failure), daemon=True, name=f"deployment-{name}").start()

        def status():
            with dep.lock:
                if dep.state in TERMINAL:
                    return dep.state, dep.error
                return "Running" if dep.state == "Running" else "Accepted", None

        op = self.d.new_op(status)
        base = f"{self.d.arm_endpoint}{dep.id}"
        return self.m.json(200 if old else 201, dep.view(), {
            "Azure-AsyncOperation": f"{base}/operationStatuses/{op.id}?api-version={req.q('api-version')}",
            **self.d.retry_headers()})

    # -- running -----------------------------------------------------------------------------------------------
    def _run(self, dep: Deployment, failure: dict | None) -> None:
        try:
            time.sleep(self.d.resource_seconds)
            with dep.lock:
                dep.state = "Running"
            tpl = dep.template
            tpl.go_live(LiveState(self.d, preview=False))
            failed = self._deploy_waves(dep, tpl, [p for p in tpl.plan() if p.deploy], failure)
            if dep.state in TERMINAL:
                return
            if failed:
                dep.finish("Failed", {"code": "DeploymentFailed", "target": dep.id, "message": FAILED_MESSAGE,
                                      "details": [{"code": code, "target": rid, "message": message} for rid, code, message in failed]})
                return
            try:
                outputs = tpl.outputs()
            except (TemplateError, ResourceFailure) as e:
                dep.finish("Failed", {"code": "DeploymentOutputEvaluationFailed", "target": dep.id,
                                      "message": f"Unable to evaluate template outputs. {e.message}",
                                      "details": [{"code": e.code, "message": e.message}]})
                return
            with dep.lock:
                op_id = uuid.uuid4().hex[:16].upper()
                dep.ops.append({"id": f"{dep.id}/operations/{op_id}", "operationId": op_id,
                                "properties": {"provisioningOperation": "EvaluateDeploymentOutput", "provisioningState": "Succeeded",
                                               "timestamp": now_iso(), "duration": "PT0.1S", "trackingId": str(uuid.uuid4()),
                                               "statusCode": "OK", "statusMessage": {}}})
                dep.outputs = {k: {"type": v["type"], **({"value": plain(v["value"])} if not v["type"].startswith("Secure") else {})}
                               for k, v in outputs.items()}
            dep.finish("Succeeded")
        except (TemplateError, ResourceFailure) as e:
            dep.finish("Failed", {"code": e.code, "target": dep.id, "message": e.message})
        except Exception as e:  # a bug in the double must not hang the client
            import traceback

            traceback.print_exc()
            dep.finish("Failed", {"code": "InternalServerError", "message": f"test double error: {e}"})

    def _deploy_waves(self, dep: Deployment, tpl: Template, plan: list[PlannedResource], failure: dict | None) -> list:
        step = self.d.resource_seconds
        fail_at = _injected_target(plan, failure)
        done: set[str] = set()
        blocked: set[str] = set()
        failed: list[tuple[str, str, str]] = []
        pending = list(plan)
        while pending:
            ready = [p for p in pending if all(d.lower() in done for d in p.depends)]
            stuck = [p for p in pending if any(d.lower() in blocked for d in p.depends)]
            for p in stuck:                              # a dependency failed: this one never starts
                blocked.add(p.id.lower())
                pending.remove(p)
            if not ready:
                break
            if self.d.stopped.is_set() or dep.cancel.is_set():
                dep.finish("Canceled")
                return failed
            ops = {p.id: self._add_op(dep, p) for p in ready}
            time.sleep(step)
            bodies: dict[str, Any] = {}
            for p in ready:                              # a wave evaluates before it creates: ARM runs it in parallel
                try:
                    if p is fail_at:
                        raise ResourceFailure(failure["code"], failure["message"])
                    bodies[p.id] = tpl.resource_body(p)
                except (TemplateError, ResourceFailure) as e:
                    bodies[p.id] = e
            for p in ready:
                pending.remove(p)
                result = bodies[p.id]
                try:
                    if isinstance(result, Exception):
                        raise result
                    self.m.resources.apply(dep.rg, result)
                except (TemplateError, ResourceFailure) as e:
                    self._op_failed(ops[p.id], e)
                    failed.append((p.id, e.code, e.message))
                    blocked.add(p.id.lower())
                    continue
                with dep.lock:
                    ops[p.id]["properties"].update({"provisioningState": "Succeeded", "statusCode": ops[p.id].pop("_code"),
                                                    "timestamp": now_iso(), "duration": f"PT{step:.7f}S"})
                    dep.output_resources.append(p.id)
                done.add(p.id.lower())
        return failed

    def _op_failed(self, op: dict, e: Exception) -> None:
        status = getattr(e, "status", 400)
        op["properties"].update({"provisioningState": "Failed",
                                 "statusCode": {403: "Forbidden", 404: "NotFound", 409: "Conflict"}.get(status, "BadRequest"),
                                 "statusMessage": {"status": "Failed", "error": {"code": e.code, "message": e.message}},
                                 "timestamp": now_iso()})
        op.pop("_code", None)

    def _add_op(self, dep: Deployment, p: PlannedResource) -> dict:
        existed = self.d.state.get(p.id) is not None
        opid = uuid.uuid4().hex[:16].upper()
        op = {"id": f"{dep.id}/operations/{opid}", "operationId": opid,
              "_code": "OK" if existed else "Created",
              "properties": {"provisioningOperation": "Create", "provisioningState": "Running", "timestamp": now_iso(),
                             "duration": "PT0S", "trackingId": str(uuid.uuid4()), "serviceRequestId": str(uuid.uuid4()),
                             "targetResource": {"id": p.id, "resourceType": p.type, "resourceName": p.name, "apiVersion": p.api_version}}}
        with dep.lock:
            dep.ops.append(op)
        return op

    # -- the other routes ---------------------------------------------------------------------------------------------
    def operations(self, req: Request, sub: str, rg: str, name: str) -> Response:
        dep = self._find(rg, name)
        if dep is None:
            return self.m.error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        with dep.lock:
            ops = [{k: copy.deepcopy(v) for k, v in o.items() if not k.startswith("_")} for o in reversed(dep.ops)]
        top = req.q("$top")
        return self.m.json(200, {"value": ops[:int(top)] if top else ops})

    def operation(self, req: Request, sub: str, rg: str, name: str, opid: str) -> Response:
        dep = self._find(rg, name)
        op = next((o for o in (dep.ops if dep else []) if o["operationId"].lower() == opid.lower()), None)
        if op is None:
            return self.m.error(404, "DeploymentOperationNotFound", f"Operation '{opid}' could not be found.")
        return self.m.json(200, {k: v for k, v in op.items() if not k.startswith("_")})

    def delete(self, req: Request, sub: str, rg: str, name: str) -> Response:
        dep = self._find(rg, name)
        if dep is None:
            return self.m.json(204)
        if dep.state not in TERMINAL:
            return self.m.error(409, "DeploymentActive", f"The deployment '{name}' is in progress and cannot be deleted.")
        op = self.d.timed_op(on_done=lambda: self.items.pop((rg.lower(), name.lower()), None))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def cancel(self, req: Request, sub: str, rg: str, name: str) -> Response:
        dep = self._find(rg, name)
        if dep is None:
            return self.m.error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        if dep.state in TERMINAL:
            return self.m.error(409, "DeploymentCannotBeCancelled", f"The deployment '{name}' cannot be canceled: it is {dep.state}; "
                                "only a deployment that is Accepted or Running can be canceled.")
        dep.cancel.set()
        return self.m.json(204)

    def validate(self, req: Request, sub: str, rg: str, name: str) -> Response:
        props = self.m.body(req).get("properties", {})
        try:
            tpl = self.template(rg, name, props, preview=True)
            plan = [p for p in tpl.plan() if p.deploy]
            for p in plan:
                tpl.resource_body(p)
            params = self._params_view(tpl)
        except TemplateError as e:
            raise self._refused(e) from None
        preflight = self._preflight(plan)
        if preflight:
            return self.m.error(400, "InvalidTemplateDeployment", f"The template deployment '{name}' is not valid according to the "
                                "validation procedure. The tracking id is '" + str(uuid.uuid4()) + "'. See inner errors for details.",
                                details=[{"code": "PreflightValidationCheckFailed", "message": "Preflight validation failed. Please "
                                          "refer to the details for the specific errors.", "details": preflight}])
        group = self.m.group(rg)
        result = {"id": f"{group['id']}/providers/Microsoft.Resources/deployments/{name}", "name": name,
                  "type": "Microsoft.Resources/deployments",
                  "properties": {"templateHash": "0", "parameters": params, "mode": props.get("mode", "Incremental"),
                                 "provisioningState": "Succeeded", "timestamp": now_iso(), "duration": "PT0S",
                                 "correlationId": str(uuid.uuid4()), "providers": [], "dependencies": [],
                                 "validatedResources": [{"id": p.id} for p in plan], "diagnostics": []}}
        return self.m.json(200, result)

    def _preflight(self, plan: list[PlannedResource]) -> list[dict]:
        """What ARM's preflight asks before any resource is made: write permission on each, and
        the providers' name checks (a storage account name)."""
        problems = []
        for p in plan:
            try:
                self.d.access.check_write(p.id, p.type)
            except ResourceFailure as e:
                problems.append({"code": e.code, "target": p.id, "message": e.message})
            if p.type.lower() == "microsoft.storage/storageaccounts" and not _valid_account_name(p.name):
                problems.append({"code": "AccountNameInvalid", "target": p.name,
                                 "message": f"{p.name} is not a valid storage account name. Storage account name must be between 3 "
                                            "and 24 characters in length and use numbers and lower-case letters only."})
        return problems

    def what_if(self, req: Request, sub: str, rg: str, name: str) -> Response:
        props = self.m.body(req).get("properties", {})
        try:
            tpl = self.template(rg, name, props, preview=True)
            result = what_if(self.d, tpl, rg, (props.get("whatIfSettings") or {}).get("resultFormat"))
        except TemplateError as e:
            raise self._refused(e) from None
        op = self.d.timed_op(result=lambda: (200, result))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})


def _injected_target(plan: list[PlannedResource], failure: dict | None) -> PlannedResource | None:
    """Where faults.fail_deployment strikes: "Type/name", the first resource of "Type", or the last."""
    if not failure:
        return None
    spec = failure.get("resource")
    if spec:
        parts = spec.strip("/").split("/")
        ftype = parts[0] + "/" + "/".join(parts[1::2]) if len(parts) > 2 else spec
        fname = "/".join(parts[2::2]) if len(parts) > 2 else None
        candidates = [p for p in plan if p.type.lower() == ftype.lower()]
        named = next((p for p in candidates if fname and p.name.lower() == fname.lower()), None)
        if named or candidates:
            return named or candidates[0]
    return plan[-1] if plan else None


def _valid_account_name(name: str) -> bool:
    import re

    return re.fullmatch(r"[a-z0-9]{3,24}", name) is not None
