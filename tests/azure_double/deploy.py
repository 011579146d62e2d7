"""Microsoft.Resources deployments: validate, what-if, create-or-update (ARM's async-operation
protocol, resources created one by one in dependency order by a background thread), get, list,
delete, cancel, deployment operations. Templates are evaluated with the project's own evaluator
(aitk_nb.arm). Also `apply()`: create or update one resource of any supported type."""
from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from aitk_nb.arm import DeploymentScope, Template, TemplateError

from .double import new_key, now_iso
from .httpserver import Request, Response
from .mgmt import ResourceFailure

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management

TERMINAL = ("Succeeded", "Failed", "Canceled")
SECURE = ("securestring", "secureobject")
FAILED_MESSAGE = ("At least one resource deployment operation failed. Please list deployment operations for "
                  "details. Please see https://aka.ms/arm-deployment-operations for usage details.")


class _Deferred:
    """The value of reference()/listKeys() on a resource that does not exist yet (what-if, validate)."""

    def __init__(self, text: str):
        self.text = text

    def __getitem__(self, key):
        return _Deferred(f"{self.text}.{key}" if isinstance(key, str) else f"{self.text}[{key}]")

    def __str__(self) -> str:
        return f"[{self.text}]"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _arm_type(value: Any, declared: str | None = None) -> str:
    if declared:
        return {"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool", "array": "Array",
                "object": "Object", "secureobject": "SecureObject"}.get(declared.lower(), declared)
    return {str: "String", bool: "Bool", int: "Int", list: "Array", dict: "Object"}.get(type(value), "String")


def split_type_name(spec: str) -> tuple[str, str | None]:
    parts = spec.strip("/").split("/")
    if len(parts) <= 2:
        return spec, None
    return parts[0] + "/" + "/".join(parts[1::2]), "/".join(parts[2::2])


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
        self.lock = threading.Lock()

    def view(self) -> dict:
        with self.lock:
            end = self.finished or time.time()
            p = {"templateHash": self.template_hash, "parameters": self.parameters_view,
                 "mode": self.props.get("mode", "Incremental"), "provisioningState": self.state,
                 "timestamp": now_iso(self.finished or self.started), "duration": f"PT{end - self.started:.7f}S",
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
    def _scope(self, rg: str) -> DeploymentScope:
        group = self.m.group(rg)
        return DeploymentScope(self.d.subscription_id, group["name"], group["location"])

    def _template(self, rg: str, props: dict, *, deferred: bool) -> Template:
        if "template" not in props:
            if "templateLink" in props:
                raise ResourceFailure("InvalidTemplateDeployment", "The test double supports inline templates only (properties.template).")
            raise ResourceFailure("InvalidRequestContent", "The request content was invalid: properties.template is required.")
        values = {}
        for k, v in (props.get("parameters") or {}).items():
            if not isinstance(v, dict) or "value" not in v:
                if isinstance(v, dict) and "reference" in v:
                    raise ResourceFailure("InvalidTemplate", f"Key Vault references (parameter '{k}') are not supported by the double.")
                raise ResourceFailure("InvalidRequestContent", f"The value of deployment parameter '{k}' is null or missing.")
            if v["value"] is not None:
                values[k] = v["value"]
        scope = self._scope(rg)

        def reference(rid, api_version=None, full=None):
            body = self.d.state.get(str(rid))
            if body is None:
                if deferred:
                    return _Deferred(f"reference('{rid}')")
                raise ResourceFailure("ResourceNotFound", f"The Resource '{rid}' was not found.", 404)
            body = self.d.apps.internal_view(body)
            return copy.deepcopy(body if str(full or "").lower() == "full" else body.get("properties", {}))

        def list_keys(rid, api_version=None):
            body = self.d.state.get(str(rid))
            if body is None:
                if deferred:
                    return _Deferred(f"listKeys('{rid}')")
                raise ResourceFailure("ResourceNotFound", f"The Resource '{rid}' was not found.", 404)
            keys = self.d.state.keys.get(body["name"].lower(), [])
            if body["type"].lower() == "microsoft.storage/storageaccounts":
                return {"keys": [{"keyName": f"key{i + 1}", "permissions": "FULL", "value": k} for i, k in enumerate(keys)]}
            if body["type"].lower() == "microsoft.operationalinsights/workspaces":
                return {"primarySharedKey": keys[0], "secondarySharedKey": keys[1]}
            if body["type"].lower() == "microsoft.app/containerapps":
                return {"value": [{"name": k, "value": v} for k, v in self.d.state.app_secrets.get(body["id"].lower(), {}).items()]}
            raise ResourceFailure("InvalidTemplate", f"listKeys() is not supported by the double for {body['type']}.")

        try:
            tpl = Template(props["template"], values, scope=scope,
                           functions={"reference": reference, "listKeys": list_keys, "listkeys": list_keys,
                                      "listSecrets": list_keys, "deployment": lambda: {"name": "deployment"},
                                      "newGuid": lambda: str(uuid.uuid4()),
                                      "utcNow": lambda fmt=None: time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                                      "environment": lambda: {"name": "AzureCloud", "suffixes": {"storage": "core.windows.net"}}})
            tpl.parameters()
        except TemplateError as e:
            raise ResourceFailure("InvalidTemplate", f"Deployment template validation failed: '{e}'.")
        return tpl

    def _plan(self, rg: str, tpl: Template) -> list[dict]:
        """Resources to create, in dependency order: {raw, type, name, id, depends}."""
        scope = tpl.scope
        items = []
        for raw in tpl.body.get("resources", []):
            if isinstance(tpl.body.get("resources"), dict):
                raise ResourceFailure("InvalidTemplate", "symbolic-name templates (languageVersion 2.0) are not supported by the double")
            if "copy" in raw:
                raise ResourceFailure("InvalidTemplate", "copy loops are not supported by the double")
            try:
                if "condition" in raw and not tpl.evaluate(raw["condition"]):
                    continue
                rtype, name = tpl.evaluate(raw["type"]), tpl.evaluate(raw["name"])
                deps = [str(tpl.evaluate(x)) for x in raw.get("dependsOn", [])]
            except (TemplateError, KeyError, IndexError, TypeError, ValueError) as e:
                raise ResourceFailure("InvalidTemplate", f"Deployment template validation failed: '{e}'.")
            items.append({"raw": raw, "type": rtype, "name": name, "id": scope.resource_id(rtype, *name.split("/")),
                          "depends": deps})
        by_id = {i["id"].lower(): i for i in items}
        for i in items:
            resolved = []
            for dep in i["depends"]:
                if "/providers/" in dep:
                    target = by_id.get(dep.lower())
                else:
                    target = next((x for x in items if dep.lower() in (x["name"].lower(), f"{x['type']}/{x['name']}".lower())), None)
                if target is None:
                    raise ResourceFailure("InvalidTemplate", f"Deployment template validation failed: 'The resource '{dep}' is not defined in the template.'")
                resolved.append(target)
            i["after"] = resolved
        ordered, done = [], set()
        while len(ordered) < len(items):
            ready = [i for i in items if id(i) not in done and all(id(a) in done for a in i["after"])]
            if not ready:
                raise ResourceFailure("InvalidTemplate", "Deployment template validation failed: circular dependency.")
            ordered.append(ready[0])
            done.add(id(ready[0]))
        return ordered

    def _params_view(self, tpl: Template) -> dict:
        out = {}
        for name, spec in tpl.body.get("parameters", {}).items():
            declared = str(spec.get("type", ""))
            if declared.lower() in SECURE:
                out[name] = {"type": _arm_type(None, declared)}
            else:
                value = tpl.parameter(name)
                out[name] = {"type": _arm_type(value, declared), "value": _plain(value)}
        return out

    def _find(self, rg: str, name: str) -> Deployment | None:
        return self.items.get((rg.lower(), name.lower()))

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
            return self.m.error(409, "DeploymentActive", f"The deployment '{name}' is already in progress; wait for it to finish.")
        rg = self.m.group(rg)["name"]
        dep = Deployment(self.d, rg, name, body)
        try:
            tpl = self._template(rg, dep.props, deferred=True)
            plan = self._plan(rg, tpl)
            dep.parameters_view = self._params_view(tpl)
        except ResourceFailure as e:
            return self.m.error(400, e.code, e.message)
        dep.dependencies = [{"id": p["id"], "resourceType": p["type"], "resourceName": p["name"],
                             "dependsOn": [{"id": a["id"], "resourceType": a["type"], "resourceName": a["name"]} for a in p["after"]]}
                            for p in plan if p["after"]]
        namespaces: dict[str, dict[str, set]] = {}
        for p in plan:
            ns, _, rt = p["type"].partition("/")
            namespaces.setdefault(ns, {}).setdefault(rt, set()).add(tpl.scope.location)
        dep.providers = [{"namespace": ns, "resourceTypes": [{"resourceType": rt, "locations": sorted(locs)} for rt, locs in types.items()]}
                         for ns, types in namespaces.items()]
        self.items[(rg.lower(), name.lower())] = dep
        failure = self.d.faults.take_deployment_failure()
        threading.Thread(target=self._run, args=(dep, plan, failure), daemon=True, name=f"deployment-{name}").start()

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

    def _run(self, dep: Deployment, plan: list[dict], failure: dict | None) -> None:
        step = self.d.resource_seconds
        fail_at = None
        if failure:
            ftype, fname = split_type_name(failure["resource"]) if failure.get("resource") else (None, None)
            candidates = [p for p in plan if ftype and p["type"].lower() == ftype.lower()]
            fail_at = next((p for p in candidates if fname and p["name"].lower() == fname.lower()), None) \
                or (candidates[0] if candidates else (plan[-1] if plan else None))
        try:
            time.sleep(step)
            with dep.lock:
                dep.state = "Running"
            tpl = self._template(dep.rg, dep.props, deferred=False)
            for p in plan:
                if self.d.stopped.is_set() or dep.cancel.is_set():
                    with dep.lock:
                        dep.state = "Canceled"
                    return
                op = self._add_op(dep, p)
                time.sleep(step)
                try:
                    if p is fail_at:
                        raise ResourceFailure(failure["code"], failure["message"])
                    try:
                        resource = tpl.evaluate(p["raw"])
                    except (TemplateError, KeyError, IndexError, TypeError, ValueError) as e:
                        raise ResourceFailure("InvalidTemplate", f"Unable to evaluate template language function: {e}")
                    self.apply(dep.rg, resource)
                except ResourceFailure as e:
                    with dep.lock:
                        op["properties"].update({"provisioningState": "Failed", "statusCode": "BadRequest",
                                                 "statusMessage": {"status": "Failed", "error": {"code": e.code, "message": e.message}},
                                                 "timestamp": now_iso()})
                        dep.state = "Failed"
                        dep.error = {"code": "DeploymentFailed", "target": dep.id, "message": FAILED_MESSAGE,
                                     "details": [{"code": e.code, "target": p["id"], "message": e.message}]}
                        dep.finished = time.time()
                    return
                with dep.lock:
                    op["properties"].update({"provisioningState": "Succeeded", "statusCode": op.pop("_code"),
                                             "timestamp": now_iso(), "duration": f"PT{step:.7f}S"})
                    dep.output_resources.append(p["id"])
            try:
                outputs = {k: {"type": _arm_type(None, v.get("type")), "value": _plain(tpl.evaluate(v["value"]))}
                           for k, v in tpl.body.get("outputs", {}).items()}
            except (TemplateError, ResourceFailure, KeyError, IndexError, TypeError) as e:
                with dep.lock:
                    dep.state, dep.finished = "Failed", time.time()
                    dep.error = {"code": "DeploymentOutputEvaluationFailed", "target": dep.id,
                                 "message": f"Unable to evaluate template outputs: {e}"}
                return
            with dep.lock:
                dep.ops.append({"id": f"{dep.id}/operations/{uuid.uuid4().hex[:16].upper()}",
                                "operationId": uuid.uuid4().hex[:16].upper(),
                                "properties": {"provisioningOperation": "EvaluateDeploymentOutput", "provisioningState": "Succeeded",
                                               "timestamp": now_iso(), "duration": "PT0.1S", "trackingId": str(uuid.uuid4()),
                                               "statusCode": "OK", "statusMessage": {}}})
                dep.outputs = outputs
                dep.state, dep.finished = "Succeeded", time.time()
        except ResourceFailure as e:
            with dep.lock:
                dep.state, dep.finished = "Failed", time.time()
                dep.error = {"code": e.code, "target": dep.id, "message": e.message}
        except Exception as e:  # a bug in the double must not hang the client
            import traceback

            traceback.print_exc()
            with dep.lock:
                dep.state, dep.finished = "Failed", time.time()
                dep.error = {"code": "InternalServerError", "message": f"test double error: {e}"}

    def _add_op(self, dep: Deployment, p: dict) -> dict:
        existed = self.d.state.get(p["id"]) is not None
        opid = uuid.uuid4().hex[:16].upper()
        op = {"id": f"{dep.id}/operations/{opid}", "operationId": opid,
              "_code": "OK" if existed else "Created",
              "properties": {"provisioningOperation": "Create", "provisioningState": "Running", "timestamp": now_iso(),
                             "duration": "PT0S", "trackingId": str(uuid.uuid4()), "serviceRequestId": str(uuid.uuid4()),
                             "targetResource": {"id": p["id"], "resourceType": p["type"], "resourceName": p["name"],
                                                "apiVersion": p["raw"].get("apiVersion")}}}
        with dep.lock:
            dep.ops.append(op)
        return op

    def operations(self, req: Request, sub: str, rg: str, name: str) -> Response:
        dep = self._find(rg, name)
        if dep is None:
            return self.m.error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        with dep.lock:
            ops = [{k: copy.deepcopy(v) for k, v in o.items() if not k.startswith("_")} for o in reversed(dep.ops)]
        top = req.q("$top")
        if top:
            ops = ops[:int(top)]
        return self.m.json(200, {"value": ops})

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
            return self.m.error(409, "DeploymentCannotBeCancelled", f"The deployment '{name}' has already finished.")
        dep.cancel.set()
        return self.m.json(204)

    def validate(self, req: Request, sub: str, rg: str, name: str) -> Response:
        body = self.m.body(req)
        props = body.get("properties", {})
        try:
            tpl = self._template(rg, props, deferred=True)
            plan = self._plan(rg, tpl)
            for p in plan:
                tpl.evaluate(p["raw"])
            params = self._params_view(tpl)
        except ResourceFailure as e:
            return self._invalid(e)
        except (TemplateError, KeyError, IndexError, TypeError, ValueError) as e:
            return self._invalid(ResourceFailure("InvalidTemplate", f"Deployment template validation failed: '{e}'."))
        group = self.m.group(rg)
        result = {"id": f"{group['id']}/providers/Microsoft.Resources/deployments/{name}", "name": name,
                  "type": "Microsoft.Resources/deployments",
                  "properties": {"templateHash": "0", "parameters": params, "mode": props.get("mode", "Incremental"),
                                 "provisioningState": "Succeeded", "timestamp": now_iso(), "duration": "PT0S",
                                 "correlationId": str(uuid.uuid4()), "providers": [], "dependencies": [],
                                 "validatedResources": [{"id": p["id"]} for p in plan], "diagnostics": []}}
        return self.m.json(200, result)

    def _invalid(self, e: ResourceFailure) -> Response:
        return self.m.error(400, "InvalidTemplateDeployment",
                            "The template deployment is not valid according to the validation procedure. See inner errors for details.",
                            details=[{"code": e.code, "message": e.message, "details": []}])

    def what_if(self, req: Request, sub: str, rg: str, name: str) -> Response:
        props = self.m.body(req).get("properties", {})
        try:
            tpl = self._template(rg, props, deferred=True)
            plan = self._plan(rg, tpl)
            changes = [self._change(tpl, p) for p in plan]
        except ResourceFailure as e:
            return self._invalid(e)
        except (TemplateError, KeyError, IndexError, TypeError, ValueError) as e:
            return self._invalid(ResourceFailure("InvalidTemplate", f"Deployment template validation failed: '{e}'."))
        planned = {p["id"].lower() for p in plan}
        for body in self.m.resources_in(rg):
            if body["id"].lower() not in planned and body["type"].count("/") == 1:
                changes.append({"resourceId": body["id"], "changeType": "Ignore"})
        result = {"status": "Succeeded", "properties": {"changes": changes, "potentialChanges": [], "diagnostics": []}}
        op = self.d.timed_op(result=lambda: (200, result))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def _change(self, tpl: Template, p: dict) -> dict:
        after_spec = _plain(tpl.evaluate(p["raw"]))
        after_spec.pop("dependsOn", None)
        after_spec.pop("condition", None)
        after = {"id": p["id"], "name": p["name"].split("/")[-1], "type": p["type"], **after_spec}
        after["name"] = p["name"].split("/")[-1]
        after = self.redact(after)
        before_body = self.d.state.get(p["id"])
        if before_body is None:
            return {"resourceId": p["id"], "changeType": "Create", "after": after}
        before = {"apiVersion": after_spec.get("apiVersion"), **copy.deepcopy(before_body)}
        old_spec = self.d.state.specs.get(p["id"].lower())
        new_spec = {k: v for k, v in after_spec.items() if k != "apiVersion"}
        delta = _diff("", _plain(old_spec) if old_spec is not None else {}, new_spec)
        if old_spec is not None and not delta:
            return {"resourceId": p["id"], "changeType": "NoChange", "before": before, "after": before}
        return {"resourceId": p["id"], "changeType": "Modify", "before": before, "after": after,
                "delta": [self.redact_delta(x) for x in delta]}

    @staticmethod
    def redact(resource: dict) -> dict:
        """Remove secret values as ARM's GET would (account keys, shared keys, secret values)."""
        r = copy.deepcopy(resource)
        props = r.get("properties") or {}
        af = props.get("azureFile")
        if isinstance(af, dict):
            af.pop("accountKey", None)
        la = (props.get("appLogsConfiguration") or {}).get("logAnalyticsConfiguration")
        if isinstance(la, dict):
            la.pop("sharedKey", None)
        secrets_ = (props.get("configuration") or {}).get("secrets")
        if isinstance(secrets_, list):
            props["configuration"]["secrets"] = [{k: v for k, v in s.items() if k != "value"} for s in secrets_]
        return r

    @staticmethod
    def redact_delta(change: dict) -> dict:
        path = change["path"].lower()
        if path.endswith("accountkey") or path.endswith("sharedkey") or ".secrets" in path:
            return {k: ("(secret)" if k in ("before", "after") else v) for k, v in change.items()}
        return change

    # -- creating one resource ---------------------------------------------------------------------------
    def apply(self, rg: str, resource: dict) -> dict:
        """Create or update one (evaluated) resource; returns its GET body."""
        rtype, name = resource["type"], resource["name"]
        group = self.m.group(rg)
        if group is None:
            raise ResourceFailure("ResourceGroupNotFound", f"Resource group '{rg}' could not be found.", 404)
        scope = DeploymentScope(self.d.subscription_id, group["name"], group["location"])
        names = name.split("/")
        rid = scope.resource_id(rtype, *names)
        if len(names) > 1:
            parent = scope.resource_id("/".join(rtype.split("/")[:2]), names[0])
            if self.d.state.get(parent) is None:
                raise ResourceFailure("ParentResourceNotFound",
                                      f"Can not perform requested operation on nested resource. Parent resource '{names[0]}' not found.", 404)
        existing = self.d.state.get(rid)
        spec = {k: v for k, v in _plain(resource).items() if k not in ("apiVersion", "dependsOn", "condition", "comments", "copy")}
        body: dict = {"id": rid, "name": names[-1], "type": rtype}
        if "location" in resource or len(names) == 1:
            body["location"] = resource.get("location") or (existing or {}).get("location") or group["location"]
        for k in ("sku", "kind", "tags", "identity", "extendedLocation", "zones"):
            if k in resource:
                body[k] = copy.deepcopy(resource[k])
        if "location" in body:
            body.setdefault("tags", {})
        props = copy.deepcopy(resource.get("properties") or {})
        t = rtype.lower()
        if t == "microsoft.storage/storageaccounts":
            self._storage_account(body, props, existing)
        elif t == "microsoft.storage/storageaccounts/fileservices":
            pass
        elif t == "microsoft.storage/storageaccounts/fileservices/shares":
            self._share(body, props, names)
        elif t == "microsoft.operationalinsights/workspaces":
            self._workspace(body, props, existing)
        elif t == "microsoft.app/managedenvironments":
            self._environment(body, props, existing)
        elif t == "microsoft.app/managedenvironments/storages":
            self._env_storage(body, props, rg, names)
        elif t == "microsoft.app/containerapps":
            self.d.apps.apply_app(rg, body, props, existing, spec)
        props.setdefault("provisioningState", "Succeeded")
        body["properties"] = props
        body.setdefault("systemData", {"createdBy": "test@example.com", "createdByType": "User", "createdAt": now_iso(),
                                       "lastModifiedBy": "test@example.com", "lastModifiedByType": "User", "lastModifiedAt": now_iso()})
        if existing and "systemData" in existing:
            body["systemData"] = {**existing["systemData"], "lastModifiedAt": now_iso()}
        body = self.redact(body)
        self.d.state.put(rid, body)
        self.d.state.specs[rid.lower()] = spec
        return body

    def _storage_account(self, body: dict, props: dict, existing: dict | None) -> None:
        import re

        name = body["name"]
        if not re.fullmatch(r"[a-z0-9]{3,24}", name):
            raise ResourceFailure("AccountNameInvalid", f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")
        if name.lower() in self.d.state.keys and existing is None:
            raise ResourceFailure("StorageAccountAlreadyTaken", f"The storage account named {name} is already taken.", 409)
        self.d.state.keys.setdefault(name.lower(), [new_key(), new_key()])
        self.d.files.ensure_account(name)
        ep = self.d.arm_endpoint
        props.update({"provisioningState": "Succeeded", "creationTime": (existing or {}).get("properties", {}).get("creationTime", now_iso()),
                      "primaryLocation": body.get("location"), "statusOfPrimary": "available",
                      "primaryEndpoints": {"blob": f"{ep}/{name}-blob/", "queue": f"{ep}/{name}-queue/", "table": f"{ep}/{name}-table/",
                                           "file": f"{ep}/{name}/", "web": f"{ep}/{name}-web/", "dfs": f"{ep}/{name}-dfs/"},
                      "encryption": {"keySource": "Microsoft.Storage", "services": {"file": {"enabled": True, "keyType": "Account"}}},
                      "accessTier": props.get("accessTier", "Hot")})
        body.setdefault("sku", {"name": "Standard_LRS"})
        body["sku"].setdefault("tier", "Standard")
        body.setdefault("kind", "StorageV2")

    def _share(self, body: dict, props: dict, names: list[str]) -> None:
        account, share = names[0], names[-1]
        self.d.files.ensure_share(account, share)
        body.pop("location", None)
        body["etag"] = f'"0x{uuid.uuid4().hex[:15].upper()}"'
        props.update({"lastModifiedTime": now_iso(), "shareQuota": props.get("shareQuota", 5120),
                      "accessTier": props.get("accessTier", "TransactionOptimized"), "enabledProtocols": props.get("enabledProtocols", "SMB"),
                      "leaseStatus": "unlocked", "leaseState": "available"})

    def _workspace(self, body: dict, props: dict, existing: dict | None) -> None:
        self.d.state.keys.setdefault(body["name"].lower(), [new_key(), new_key()])
        props["customerId"] = (existing or {}).get("properties", {}).get("customerId") or str(uuid.uuid4())
        props.setdefault("sku", {"name": "PerGB2018"})

    def _environment(self, body: dict, props: dict, existing: dict | None) -> None:
        old = (existing or {}).get("properties", {})
        props["defaultDomain"] = old.get("defaultDomain") or f"{uuid.uuid4().hex[:10]}.{body.get('location', 'eastus')}.azurecontainerapps.io"
        props["staticIp"] = "127.0.0.1"
        props.setdefault("workloadProfiles", [{"name": "Consumption", "workloadProfileType": "Consumption"}])
        props["eventStreamEndpoint"] = f"{self.d.arm_endpoint}/logstream{body['id']}/eventstream"

    def _env_storage(self, body: dict, props: dict, rg: str, names: list[str]) -> None:
        af = props.get("azureFile") or {}
        account = af.get("accountName", "")
        keys = self.d.state.keys.get(account.lower())
        if keys is None:
            raise ResourceFailure("StorageAccountNotFound", f"Storage account '{account}' was not found.")
        if af.get("accountKey") not in keys:
            raise ResourceFailure("ManagedEnvironmentStorageAccountKeyInvalid", f"The account key for storage account '{account}' is invalid.")
        if not self.d.files.share_exists(account, af.get("shareName", "")):
            raise ResourceFailure("StorageShareNotFound", f"The file share '{af.get('shareName')}' was not found in storage account '{account}'.")
        body.pop("location", None)


def _diff(path: str, before: Any, after: Any) -> list[dict]:
    """What-if delta: only properties the template sets are compared (ARM ignores read-only ones)."""
    if isinstance(after, dict) and isinstance(before, dict):
        out = []
        for k, v in after.items():
            p = f"{path}.{k}" if path else k
            if k not in before:
                out.append({"path": p, "propertyChangeType": "Create", "after": v})
            else:
                out += _diff(p, before[k], v)
        return out
    if before != after:
        return [{"path": path, "propertyChangeType": "Modify", "before": before, "after": after}]
    return []
