"""A classic (languageVersion 1.0) ARM template bound to a deployment: parameters checked as ARM
checks them, variables, the resources to deploy (condition, copy loops, nested child resources,
dependsOn with implicit dependencies from reference(name)), each resource's body and the outputs.

Written from learn.microsoft.com: "Template syntax and expressions", "Parameters in ARM templates",
"Conditional deployment", "Define the order for deploying resources", "Resource iteration",
"Property iteration", "Variable iteration", "Set name and type for child resources" and the
function reference pages. Runtime functions (reference, list*) ask a `Runtime` for live state; in
a preview (validate, what-if) one whose resource does not exist yet leaves its expression as
written, as ARM's what-if shows it.

Not supported (an InvalidTemplate error says so): languageVersion 2.0 (symbolic resource names,
`existing`), user-defined functions, nested deployments, resources at another scope, Key Vault
parameter references."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

from .errors import TemplateError
from .expressions import Call, Member, Scope, Unresolved, evaluate_node, is_expression, parse, type_name, unescape
from .functions import BUILTINS, LAZY, arity, expect, text

MAX_COPY = 800
_TEMPLATE_ONLY = ("condition", "copy", "dependsOn", "resources", "comments", "metadata")
_PARAM_TYPES = {"string": "String", "securestring": "String", "int": "Integer", "bool": "Boolean",
                "array": "Array", "object": "Object", "secureobject": "Object"}
_EXPECTED = {"String": "String, Uri", "Integer": "Integer", "Boolean": "Boolean", "Array": "Array", "Object": "Object"}
_PARAMETER_HELP = "Please see https://aka.ms/arm-create-parameter-file for usage details."
_RUNTIME_ONLY = "Runtime functions (reference, list*) can only be used in resource properties and outputs."
_DEFAULTS_ONLY = "The function can only be used with parameter default values."


class Runtime(Protocol):
    """Live state the runtime functions read: `get` returns a resource as GET returns it (None when it
    does not exist); `list` runs a POST action (listKeys, listSecrets, ...) on an existing resource."""

    def get(self, resource_id: str) -> dict | None: ...

    def list(self, resource_id: str, action: str, api_version: str, body: Any) -> Any: ...


@dataclass
class DeploymentScope:
    subscription_id: str
    resource_group: str
    location: str
    tenant_id: str = "00000000-0000-0000-0000-000000000000"
    deployment_name: str = "deployment"
    group_tags: dict = field(default_factory=dict)

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def resource_id(self, rtype: str, names: list[str], *, subscription_id: str | None = None,
                    resource_group: str | None = None) -> str:
        namespace, *types = rtype.split("/")
        path = "/".join(f"{t}/{n}" for t, n in zip(types, names))
        sub = subscription_id or self.subscription_id
        return f"/subscriptions/{sub}/resourceGroups/{resource_group or self.resource_group}/providers/{namespace}/{path}"


@dataclass
class PlannedResource:
    """One resource instance the deployment PUTs (or would, when `deploy` is false: condition false)."""

    raw: dict
    type: str
    name: str
    id: str
    api_version: str
    deploy: bool
    copy: dict[str, int] = field(default_factory=dict)     # loop name (lower) -> index, for copyIndex()
    loop: str | None = None                                # the resource's own copy loop
    depends: list[str] = field(default_factory=list)       # ids of deployed resources this one waits for
    after: list[str] = field(default_factory=list)         # ids a serial copy loop adds to dependsOn

    @property
    def label(self) -> str:
        return f"{self.type}/{self.name}"


class Template:
    def __init__(self, body: Any, parameters: dict | None, scope: DeploymentScope, *, runtime: Runtime | None = None,
                 preview: bool = False):
        if not isinstance(body, dict):
            raise TemplateError("The template is not valid: it must be a JSON object.")
        self.body, self.scope, self.runtime, self.preview = body, scope, runtime, preview
        self._check_shape()
        self._given = self._given_parameters(parameters or {})
        self._params: dict[str, Any] = {}
        self._params_busy: set[str] = set()
        self._vars: dict[str, Any] = {}
        self._vars_busy: set[str] = set()
        self._plan: list[PlannedResource] | None = None
        self._loops: set[str] = set()                   # copy loop names, even those of zero instances
        base = Scope(dict(BUILTINS), dict(LAZY), fallback=self._list_function)
        base.functions.update({
            "parameters": self._fn_parameters, "variables": self._fn_variables, "resourcegroup": self._fn_resource_group,
            "subscription": self._fn_subscription, "tenant": lambda _: {"tenantId": scope.tenant_id},
            "deployment": self._fn_deployment, "environment": _fn_environment, "resourceid": self._fn_resource_id,
            "subscriptionresourceid": self._fn_subscription_resource_id, "tenantresourceid": _fn_tenant_resource_id,
            "extensionresourceid": _fn_extension_resource_id, "reference": self._fn_reference,
            "copyindex": _fn_copy_index_outside, "managementgroup": _fn_management_group})
        not_here = {"reference": _RUNTIME_ONLY, "list*": _RUNTIME_ONLY}
        self._defaults_scope = base.child(disallowed={**not_here, "variables": "Parameter default values cannot use variables."})
        self._variables_scope = base.child(disallowed={**not_here, "newguid": _DEFAULTS_ONLY, "utcnow": _DEFAULTS_ONLY})
        self._static_scope = self._variables_scope                      # names, types, conditions, dependsOn
        self._runtime_scope = base.child(disallowed={"newguid": _DEFAULTS_ONLY, "utcnow": _DEFAULTS_ONLY})

    def go_live(self, runtime: Runtime) -> None:
        """From preview to deployment: the same bound parameters (a newGuid() default is drawn once)
        and plan, runtime functions now reading `runtime` and failing where a resource is missing."""
        self.runtime, self.preview = runtime, False

    # -- shape ---------------------------------------------------------------------------------------------
    def _check_shape(self) -> None:
        resources = self.body.get("resources", [])
        if isinstance(resources, dict) or str(self.body.get("languageVersion", "1.0")) not in ("1.0", "1"):
            raise TemplateError("The template uses languageVersion 2.0 (symbolic resource names); the test double evaluates "
                                "classic templates (languageVersion 1.0, resources as an array).")
        if not isinstance(resources, list):
            raise TemplateError("The template 'resources' property must be an array.")
        if self.body.get("functions"):
            raise TemplateError("The template declares user-defined functions, which the test double does not evaluate.")
        for name, key in (("parameters", "parameters"), ("variables", "variables"), ("outputs", "outputs")):
            if not isinstance(self.body.get(key, {}), dict):
                raise TemplateError(f"The template '{name}' property must be an object.")

    # -- parameters ---------------------------------------------------------------------------------------
    def _given_parameters(self, given: dict) -> dict[str, Any]:
        declared = {k.lower(): k for k in self.body.get("parameters", {})}
        unknown = [k for k in given if k.lower() not in declared]
        if unknown:
            raise TemplateError(f"The template parameters '{', '.join(unknown)}' in the parameters file are not valid; they are not "
                                "present in the original template and can therefore not be provided at deployment time. The only "
                                f"supported parameters for this template are '{', '.join(declared.values())}'. Please see "
                                "https://aka.ms/arm-pass-parameter-values for usage details.")
        values = {}
        for key, entry in given.items():
            if isinstance(entry, dict) and "reference" in entry:
                raise TemplateError(f"The template parameter '{key}' is a Key Vault reference, which the test double does not resolve.")
            if not isinstance(entry, dict) or "value" not in entry:
                raise TemplateError(f"The value for the template parameter '{key}' is not provided: a deployment parameter is "
                                    f"written {{\"value\": ...}}. {_PARAMETER_HELP}")
            if entry["value"] is not None:           # a null value leaves the parameter to its default
                values[declared[key.lower()]] = entry["value"]
        return values

    @property
    def parameters(self) -> dict[str, Any]:
        return {name: self.parameter(name) for name in self.body.get("parameters", {})}

    def parameter_type(self, name: str) -> str:
        return str(self.body["parameters"][name].get("type", ""))

    def parameter(self, name: str) -> Any:
        declared = self.body.get("parameters", {})
        key = name if name in declared else next((k for k in declared if k.lower() == name.lower()), None)
        if key is None:
            raise TemplateError(f"The template parameter '{name}' is not found. Please see https://aka.ms/arm-template/#parameters for usage details.",
                                located=True)
        if key in self._params:
            return self._params[key]
        spec = declared[key]
        if not isinstance(spec, dict) or str(spec.get("type", "")).lower() not in _PARAM_TYPES:
            raise TemplateError(f"The template parameter '{key}' is not valid: its 'type' must be one of "
                                f"{', '.join(sorted(set(_PARAM_TYPES)))}.", located=True)
        if key in self._given:
            value = self._given[key]
        elif "defaultValue" in spec:
            if key in self._params_busy:
                raise TemplateError(f"The template parameter '{key}' is not valid: its default value refers to itself.", located=True)
            self._params_busy.add(key)
            try:
                value = self._evaluate(spec["defaultValue"], self._defaults_scope, f"The template parameter '{key}' is not valid")
            finally:
                self._params_busy.discard(key)
        else:
            raise TemplateError(f"The value for the template parameter '{key}' is not provided. {_PARAMETER_HELP}", located=True)
        self._params[key] = _check_parameter(key, spec, value)
        return self._params[key]

    # -- variables ------------------------------------------------------------------------------------------
    def variable(self, name: str) -> Any:
        variables = self.body.get("variables", {})
        loops = {str(c.get("name", "")).lower(): c for c in variables.get("copy", []) if isinstance(c, dict)}
        key = next((k for k in variables if k.lower() == name.lower() and k != "copy"), None)
        if key is None and name.lower() not in loops:
            raise TemplateError(f"The template variable '{name}' is not found. Please see https://aka.ms/arm-template/#variables for usage details.")
        cache_key = (key or name).lower()
        if cache_key in self._vars:
            return self._vars[cache_key]
        if cache_key in self._vars_busy:
            raise TemplateError(f"The template variable '{name}' is not valid: its value refers to itself.")
        self._vars_busy.add(cache_key)
        where = f"The template variable '{name}' is not valid"
        try:
            if key is not None:
                value = self._evaluate(variables[key], self._variables_scope, where)
            else:
                value = self._copy_array(loops[cache_key], self._variables_scope, {}, where)
        finally:
            self._vars_busy.discard(cache_key)
        self._vars[cache_key] = value
        return value

    # -- resources -------------------------------------------------------------------------------------------
    def plan(self) -> list[PlannedResource]:
        """Every resource instance in template order, with `deploy` false where the condition is;
        dependencies resolved to ids of deployed resources."""
        if self._plan is None:
            plan = [r for raw, parent in self._flatten(self.body.get("resources", []), None) for r in self._instances(raw, parent)]
            self._check_duplicates(plan)
            self._resolve_dependencies(plan)
            self._plan = plan
        return self._plan

    def _flatten(self, resources: list, parent: dict | None) -> Iterator[tuple[dict, dict | None]]:
        for raw in resources:
            if not isinstance(raw, dict):
                raise TemplateError("The template resource must be a JSON object.")
            yield raw, parent
            yield from self._flatten(raw.get("resources", []), {"raw": raw, "parent": parent})

    def _instances(self, raw: dict, parent: dict | None) -> list[PlannedResource]:
        for key in ("type", "name", "apiVersion"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise TemplateError(f"The template resource '{raw.get('name', '?')}' is not valid: the '{key}' property is required "
                                    "and must be a string.")
        if "existing" in raw:
            raise TemplateError(f"The template resource '{raw['name']}' is not valid: 'existing' resources are a languageVersion 2.0 "
                                "feature; a classic template refers to an existing resource with resourceId() and reference().")
        for key in ("scope", "resourceGroup", "subscriptionId"):
            if key in raw:
                raise TemplateError(f"The template resource '{raw['name']}' deploys to another scope ('{key}'), which the test double does not support.")
        if raw["type"].lower() == "microsoft.resources/deployments":
            raise TemplateError("Nested deployments (Microsoft.Resources/deployments) are not supported by the test double.")
        if "copy" not in raw:
            return [self._instance(raw, parent, {}, None)]
        spec = raw["copy"]
        where = f"The template resource '{raw['name']}' is not valid"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TemplateError(f"{where}: the 'copy' property must be an object with a 'name'.")
        count = self._evaluate(spec.get("count"), self._static_scope, where)
        _check_count(count)
        loop = spec["name"].lower()
        self._loops.add(loop)
        out = [self._instance(raw, parent, {loop: i}, loop) for i in range(count)]
        if str(spec.get("mode", "Parallel")).lower() == "serial":
            batch = max(1, int(self._evaluate(spec.get("batchSize", 1), self._static_scope, where)))
            for i, inst in enumerate(out):           # each batch waits for the one before it
                first = (i // batch) * batch
                inst.after = [p.id for p in out[max(0, first - batch):first]]
        return out

    def _instance(self, raw: dict, parent: dict | None, copy: dict[str, int], loop: str | None) -> PlannedResource:
        where = f"The template resource '{raw['name']}' is not valid"
        scope = self._static_scope.child(functions={"copyindex": _copy_index(copy, loop)})
        rtype = self._evaluate(raw["type"], scope, where)
        name = self._evaluate(raw["name"], scope, where)
        if parent is not None and "/" not in rtype:                    # a child declared inside its parent
            ptype, pname = self._parent_type_name(parent, copy)
            rtype, name = f"{ptype}/{rtype}", f"{pname}/{name}"
        names = name.split("/")
        if len(rtype.split("/")) != len(names) + 1:
            raise TemplateError(f"The template resource '{name}' for type '{rtype}' has incorrect segment lengths. A nested resource "
                                "type must have identical number of segments as its resource name. A root resource type must have "
                                "segment length one greater than its resource name. Please see https://aka.ms/arm-template/#resources for usage details.")
        deploy = True
        if "condition" in raw:
            deploy = self._evaluate(raw["condition"], scope, where)
            if not isinstance(deploy, bool):
                raise TemplateError(f"{where}: the condition must be a boolean, not '{type_name(deploy)}'.")
        api = self._evaluate(raw["apiVersion"], scope, where)
        return PlannedResource(raw, rtype, name, self.scope.resource_id(rtype, names), api, deploy, copy, loop)

    def _parent_type_name(self, parent: dict, copy: dict[str, int]) -> tuple[str, str]:
        scope = self._static_scope.child(functions={"copyindex": _copy_index(copy, None)})
        rtype = self._evaluate(parent["raw"]["type"], scope, "The template resource is not valid")
        name = self._evaluate(parent["raw"]["name"], scope, "The template resource is not valid")
        if parent["parent"] is not None and "/" not in rtype:
            ptype, pname = self._parent_type_name(parent["parent"], copy)
            return f"{ptype}/{rtype}", f"{pname}/{name}"
        return rtype, name

    @staticmethod
    def _check_duplicates(plan: list[PlannedResource]) -> None:
        """One resource twice is an error, unless conditions leave only one of them deployed."""
        seen: set[str] = set()
        for r in (r for r in plan if r.deploy):
            if r.id.lower() in seen:
                raise TemplateError(f"The resource '{r.id}' is defined multiple times in a template. Please see "
                                    "https://aka.ms/arm-template/#resources for usage details.")
            seen.add(r.id.lower())

    def _resolve_dependencies(self, plan: list[PlannedResource]) -> None:
        for r in plan:
            where = f"The template resource '{r.name}' is not valid"
            scope = self._static_scope.child(functions={"copyindex": _copy_index(r.copy, r.loop)})
            targets: list[PlannedResource] = []
            for dep in r.raw.get("dependsOn", []) or []:
                targets += self._dependency_targets(self._evaluate(dep, scope, where), plan)
            targets += [p for p in plan if p.id in r.after]
            targets += self._implicit_dependencies(r, plan)
            # a resource whose condition is false is left out of the dependencies (conditional deployment docs)
            r.depends = list(dict.fromkeys(t.id for t in targets if t.deploy and t is not r))
        _check_cycles([r for r in plan if r.deploy])

    def _dependency_targets(self, ref: Any, plan: list[PlannedResource]) -> list[PlannedResource]:
        if not isinstance(ref, str):
            raise TemplateError(f"The template dependsOn entry '{ref}' must be a string.")
        key = ref.lower()
        if key.startswith("/subscriptions/") or "/providers/" in key:
            found = [r for r in plan if r.id.lower() == key]
        elif key in self._loops:
            return [r for r in plan if r.loop == key]
        else:
            found = [r for r in plan if r.label.lower() == key] or [r for r in plan if r.name.lower() == key]
        if not found:
            raise TemplateError(f"The resource '{ref}' is not defined in the template. Please see https://aka.ms/arm-template/#resources for usage details.")
        return found

    def _implicit_dependencies(self, r: PlannedResource, plan: list[PlannedResource]) -> list[PlannedResource]:
        """reference('name') / list*('name', ...) on a resource of this template makes it a dependency
        (the reference function's docs); a reference by resource id does not."""
        out = []
        scope = self._static_scope.child(functions={"copyindex": _copy_index(r.copy, r.loop)})
        for call in _runtime_calls(r.raw.get("properties")):
            try:
                target = evaluate_node(call.args[0], scope) if call.args else None
            except (TemplateError, Unresolved):
                continue
            if isinstance(target, str) and not target.startswith("/"):
                out += [p for p in plan if p.name.lower() == target.lower() or p.label.lower() == target.lower()]
        return out

    def resource_body(self, r: PlannedResource) -> dict:
        """The resource as the deployment sends it to its provider: every expression evaluated, the
        template-only keys (condition, copy, dependsOn, nested resources, comments) left out."""
        scope = self._runtime_scope.child(functions={"copyindex": _copy_index(r.copy, r.loop)})
        where = f"The template resource '{r.name}' is not valid"
        body = {k: v for k, v in r.raw.items() if k not in _TEMPLATE_ONLY}
        out = self._evaluate(body, scope, where, property_loops=True)
        out.update({"type": r.type, "name": r.name, "apiVersion": r.api_version})
        return out

    # -- outputs -----------------------------------------------------------------------------------------------
    def outputs(self) -> dict[str, dict]:
        out = {}
        for name, spec in self.body.get("outputs", {}).items():
            where = f"Unable to evaluate template outputs: '{name}'"
            if not isinstance(spec, dict) or str(spec.get("type", "")).lower() not in _PARAM_TYPES:
                raise TemplateError(f"{where}: the output must have a 'type' ({', '.join(sorted(set(_PARAM_TYPES)))}).")
            if "condition" in spec and not self._evaluate(spec["condition"], self._runtime_scope, where):
                continue
            if "copy" in spec:
                value = self._copy_array({**spec["copy"], "name": spec["copy"].get("name", name)}, self._runtime_scope, {}, where)
            else:
                value = self._evaluate(spec.get("value"), self._runtime_scope, where)
            declared = str(spec["type"])
            if type_name(value) != _PARAM_TYPES[declared.lower()] and value is not None:
                raise TemplateError(f"{where}: the value is of type '{type_name(value)}', not the declared '{declared}'.")
            out[name] = {"type": _output_type(declared), "value": value}
        return out

    # -- evaluation -----------------------------------------------------------------------------------------
    def evaluate(self, value: Any) -> Any:
        """Any JSON value with expressions in it, where resource properties are evaluated."""
        return self._evaluate(value, self._runtime_scope, "The template is not valid")

    def _evaluate(self, value: Any, scope: Scope, where: str, *, property_loops: bool = False) -> Any:
        """Evaluate, naming the place in the template (`where`) in an error, once."""
        try:
            return self._value(value, scope, property_loops)
        except TemplateError as e:
            if e.located:
                raise
            raise TemplateError(f"{where}: {e.message}", e.code, located=True) from None

    def _value(self, value: Any, scope: Scope, property_loops: bool) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if property_loops and k == "copy" and isinstance(v, list):
                    for loop in v:
                        out[loop["name"]] = self._copy_array(loop, scope, {}, "")
                    continue
                out[self._value(k, scope, False)] = self._value(v, scope, property_loops)
            return out
        if isinstance(value, list):
            return [self._value(v, scope, property_loops) for v in value]
        if is_expression(value):
            try:
                return evaluate_node(parse(value[1:-1]), scope)
            except Unresolved:
                if self.preview:
                    return value                        # as written: what-if shows it so
                raise
        if isinstance(value, str):
            return unescape(value)
        return value

    def _copy_array(self, loop: dict, scope: Scope, copy: dict[str, int], where: str) -> list:
        if not isinstance(loop, dict) or "count" not in loop or "input" not in loop:
            raise TemplateError(f"{where}: a 'copy' loop needs 'name', 'count' and 'input'.")
        count = self._value(loop["count"], scope, False)
        _check_count(count)
        name = str(loop.get("name", "")).lower()
        return [self._value(loop["input"], scope.child(functions={"copyindex": _copy_index({**copy, name: i}, name)}), True)
                for i in range(count)]

    # -- functions bound to this deployment ---------------------------------------------------------------------
    def _fn_parameters(self, _, name=None):
        return self.parameter(expect("parameters", name, "String"))

    def _fn_variables(self, _, name=None):
        return self.variable(expect("variables", name, "String"))

    def _fn_resource_group(self, _):
        s = self.scope
        return {"id": s.group_id, "name": s.resource_group, "type": "Microsoft.Resources/resourceGroups", "location": s.location,
                "tags": dict(s.group_tags), "properties": {"provisioningState": "Succeeded"}}

    def _fn_subscription(self, _):
        s = self.scope
        return {"id": f"/subscriptions/{s.subscription_id}", "subscriptionId": s.subscription_id, "tenantId": s.tenant_id,
                "displayName": "Azure test double"}

    def _fn_deployment(self, _):
        return {"name": self.scope.deployment_name, "properties": {
            "template": {"contentVersion": self.body.get("contentVersion", "1.0.0.0")}, "parameters": {},
            "mode": "Incremental", "provisioningState": "Accepted"}}

    def _fn_resource_id(self, _, *args):
        for a in args:
            expect("resourceId", a, "String")
        typed = [i for i, a in enumerate(args) if "/" in a]
        if not typed or typed[0] > 2:
            raise TemplateError("Unable to evaluate template language function 'resourceId': function requires exactly one "
                                "multi-segmented argument which must be resource type including resource provider namespace. "
                                f"Current function arguments '{','.join(args)}'. Please see https://aka.ms/arm-template-expressions/#resourceid for usage details.")
        at = typed[0]
        sub, rg = (None, None) if at == 0 else ((None, args[0]) if at == 1 else (args[0], args[1]))
        rtype, names = args[at], _names("resourceId", args[at], args[at + 1:])
        return self.scope.resource_id(rtype, names, subscription_id=sub, resource_group=rg)

    def _fn_subscription_resource_id(self, _, *args):
        for a in args:
            expect("subscriptionResourceId", a, "String")
        at = 0 if args and "/" in args[0] else 1
        sub = args[0] if at == 1 else self.scope.subscription_id
        rtype = args[at] if len(args) > at else ""
        names = _names("subscriptionResourceId", rtype, args[at + 1:])
        namespace, *types = rtype.split("/")
        return f"/subscriptions/{sub}/providers/{namespace}/" + "/".join(f"{t}/{n}" for t, n in zip(types, names))

    def _fn_reference(self, _, target=None, api_version=None, full=None):
        arity("reference", tuple(a for a in (target, api_version, full) if a is not None), 1, 3)
        expect("reference", target, "String")
        rid = target if target.startswith("/") else self._template_resource(target).id
        body = self._live(rid)
        body = {**body, "apiVersion": api_version or body.get("apiVersion")}
        if isinstance(full, str) and full.lower() == "full":
            return body
        return body.get("properties", {})

    def _template_resource(self, name: str) -> PlannedResource:
        for r in self.plan():
            if r.name.lower() == name.lower() or r.label.lower() == name.lower():
                return r
        raise TemplateError(f"The template reference '{name}' is not valid: could not find template resource or resource copy "
                            "with this name. Please see https://aka.ms/arm-template-expressions/#reference for usage details.")

    def _live(self, resource_id: str) -> dict:
        body = self.runtime.get(resource_id) if self.runtime else None
        if body is None:
            if self.preview:
                raise Unresolved(resource_id)
            raise TemplateError(_not_found(resource_id), "ResourceNotFound")
        return json.loads(json.dumps(body))

    def _list_function(self, name: str):
        if not name.lower().startswith("list"):
            return None

        def call(_, target=None, api_version=None, body=None):
            expect(name, target, "String")
            rid = target if target.startswith("/") else self._template_resource(target).id
            self._live(rid)
            return self.runtime.list(rid, name, api_version or "", body)
        return call


# -- helpers ----------------------------------------------------------------------------------------------
def _check_parameter(name: str, spec: dict, value: Any) -> Any:
    try:
        return _check_parameter_value(name, spec, value)
    except TemplateError as e:
        raise TemplateError(e.message, e.code, located=True) from None


def _check_parameter_value(name: str, spec: dict, value: Any) -> Any:
    declared = _PARAM_TYPES[str(spec["type"]).lower()]
    bad = f"The provided value for the template parameter '{name}' is not valid."
    if type_name(value) != declared:
        raise TemplateError(f"{bad} Expected a value of type '{_EXPECTED[declared]}', but received a value of type "
                            f"'{type_name(value)}'. {_PARAMETER_HELP}")
    allowed = spec.get("allowedValues")
    if isinstance(allowed, list):
        from .functions import equal

        items = value if isinstance(value, list) else [value]   # an array parameter: each element must be allowed
        if not all(any(equal(v, a) for a in allowed) for v in items):
            raise TemplateError(f"{bad} The parameter value is not part of the allowed value(s): "
                                f"'{','.join(text(a) for a in allowed)}'. {_PARAMETER_HELP}")
    if isinstance(value, int) and not isinstance(value, bool):
        if "minValue" in spec and value < spec["minValue"]:
            raise TemplateError(f"{bad} Value should be greater than or equal to '{spec['minValue']}'. {_PARAMETER_HELP}")
        if "maxValue" in spec and value > spec["maxValue"]:
            raise TemplateError(f"{bad} Value should be less than or equal to '{spec['maxValue']}'. {_PARAMETER_HELP}")
    if isinstance(value, (str, list)):
        if "minLength" in spec and len(value) < spec["minLength"]:
            raise TemplateError(f"{bad} Length of the value should be greater than or equal to '{spec['minLength']}'. {_PARAMETER_HELP}")
        if "maxLength" in spec and len(value) > spec["maxLength"]:
            raise TemplateError(f"{bad} Length of the value should be less than or equal to '{spec['maxLength']}'. {_PARAMETER_HELP}")
    return value


def _output_type(declared: str) -> str:
    return {"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool", "array": "Array",
            "object": "Object", "secureobject": "SecureObject"}[declared.lower()]


def _check_count(count: Any) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COPY:
        raise TemplateError(f"The template 'copy' definition has an invalid copy count. The copy count must be a positive integer "
                            f"value and cannot exceed '{MAX_COPY}'. Please see https://aka.ms/arm-copy for usage details.")


def _names(fn: str, rtype: str, names: tuple) -> list[str]:
    parts = [p for n in names for p in n.split("/")]
    if len(parts) != len(rtype.split("/")) - 1:
        raise TemplateError(f"Unable to evaluate template language function '{fn}': the type '{rtype}' requires "
                            f"'{len(rtype.split('/')) - 1}' resource name argument(s). Please see "
                            "https://aka.ms/arm-template-expressions/#resourceid for usage details.")
    return parts


def _not_found(resource_id: str) -> str:
    parts = resource_id.split("/")
    rg = parts[4] if len(parts) > 4 else ""
    provider = resource_id.split("/providers/", 1)[-1].split("/")
    short = "/".join([provider[0]] + provider[1::2][:1] + provider[2::2]) if len(provider) > 2 else resource_id
    return (f"The Resource '{short}' under resource group '{rg}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix")


def _copy_index(bindings: dict[str, int], own: str | None):
    def fn(_, *args):
        arity("copyIndex", args, 0, 2)
        loop = next((a for a in args if isinstance(a, str)), None)
        offset = next((a for a in args if isinstance(a, int) and not isinstance(a, bool)), 0)
        key = (loop or own or "").lower()
        if key not in bindings:
            if loop is not None:
                raise TemplateError(f"The template function 'copyIndex' refers to the loop '{loop}', which does not enclose it.")
            return _fn_copy_index_outside(_)
        return bindings[key] + offset
    return fn


def _fn_copy_index_outside(_, *args):
    raise TemplateError("The template function 'copyIndex' is not expected at this location. The function can only be used "
                        "in a resource with copy specified. Please see https://aka.ms/arm-copy for usage details.")


def _fn_management_group(_, *args):
    raise TemplateError("The template function 'managementGroup' is not expected at this location: this is a resource group deployment.")


def _fn_tenant_resource_id(_, *args):
    for a in args:
        expect("tenantResourceId", a, "String")
    rtype = args[0] if args else ""
    names = _names("tenantResourceId", rtype, args[1:])
    namespace, *types = rtype.split("/")
    return f"/providers/{namespace}/" + "/".join(f"{t}/{n}" for t, n in zip(types, names))


def _fn_extension_resource_id(_, base=None, rtype=None, *names):
    for a in (base, rtype, *names):
        expect("extensionResourceId", a, "String")
    parts = _names("extensionResourceId", rtype, names)
    namespace, *types = rtype.split("/")
    return f"{base}/providers/{namespace}/" + "/".join(f"{t}/{n}" for t, n in zip(types, parts))


def _fn_environment(_):
    return {"name": "AzureCloud", "gallery": "https://gallery.azure.com/", "graph": "https://graph.windows.net/",
            "portal": "https://portal.azure.com", "resourceManager": "https://management.azure.com/",
            "authentication": {"loginEndpoint": "https://login.microsoftonline.com/", "audiences": ["https://management.core.windows.net/",
                                                                                                  "https://management.azure.com/"]},
            "suffixes": {"acrLoginServer": ".azurecr.io", "keyvaultDns": ".vault.azure.net", "storage": "core.windows.net"}}


def _runtime_calls(value: Any) -> Iterator[Call]:
    """The reference()/list*() calls in a JSON value's expressions."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _runtime_calls(k)
            yield from _runtime_calls(v)
    elif isinstance(value, list):
        for v in value:
            yield from _runtime_calls(v)
    elif is_expression(value):
        try:
            yield from _calls(parse(value[1:-1]))
        except TemplateError:
            return


def _calls(node: Any) -> Iterator[Call]:
    if isinstance(node, Member):
        yield from _calls(node.target)
        if not node.dotted:
            yield from _calls(node.key)
    elif isinstance(node, Call):
        if node.name.lower() == "reference" or node.name.lower().startswith("list"):
            yield node
        for a in node.args:
            yield from _calls(a)


def _check_cycles(plan: list[PlannedResource]) -> None:
    by_id = {r.id.lower(): r for r in plan}
    state: dict[str, int] = {}

    def visit(r: PlannedResource, path: list[str]) -> None:
        key = r.id.lower()
        if state.get(key) == 2:
            return
        if state.get(key) == 1:
            cycle = path[path.index(key):] if key in path else [key]
            raise TemplateError("Circular dependency detected on resource: '" + "', '".join(by_id[c].id for c in cycle) +
                                "'. Please see https://aka.ms/arm-template/#resources for usage details.")
        state[key] = 1
        for dep in r.depends:
            if dep.lower() in by_id:
                visit(by_id[dep.lower()], path + [key])
        state[key] = 2

    for r in plan:
        visit(r, [])


__all__ = ["DeploymentScope", "PlannedResource", "Runtime", "Template", "TemplateError"]
