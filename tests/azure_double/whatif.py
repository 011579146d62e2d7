"""Deployments - What If, computed against the double's real state (docs "ARM template deployment
what-if operation"):

- Create: the resource does not exist; Modify / NoChange: it exists, and the template's properties
  differ / do not (only what the template sets is compared, as the provider's read-only properties
  are not the template's business; secrets are never compared, GET does not return them; a value
  that needs a runtime function on a resource not yet made is unknown, so not compared); Deploy:
  it exists but `whatIfSettings.resultFormat` is ResourceIdOnly, so ARM does not compare;
  Ignore: a top-level resource of the group that the template does not deploy, which includes one
  whose condition is false (a false condition means "not in this deployment"; a resource not
  deployed and not existing is not listed at all).
- A PUT replaces the tags: a template without tags on a resource that has some shows them deleted
  in the delta, as the deployment would clear them."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from .arm import PlannedResource, Template, is_expression
from .resources import is_secret_path, redact

if TYPE_CHECKING:
    from .double import AzureDouble


def what_if(d: "AzureDouble", tpl: Template, rg: str, result_format: str | None) -> dict:
    plan = tpl.plan()
    changes = []
    deployed = set()
    for r in plan:
        if not r.deploy:
            continue
        deployed.add(r.id.lower())
        changes.append(_change(d, tpl, r, (result_format or "").lower() == "resourceidonly"))
    for body in d.mgmt.resources.in_group(rg, top_level=True):
        if body["id"].lower() not in deployed:
            changes.append({"resourceId": body["id"], "changeType": "Ignore"})
    return {"status": "Succeeded", "properties": {"changes": changes, "potentialChanges": [], "diagnostics": []}}


def _change(d: "AzureDouble", tpl: Template, r: PlannedResource, ids_only: bool) -> dict:
    before = d.mgmt.resources.get(r.id)
    if ids_only:
        return {"resourceId": r.id, "changeType": "Create" if before is None else "Deploy"}
    request = tpl.resource_body(r)
    after = redact({"id": r.id, **request, "name": r.name.split("/")[-1]})
    if before is None:
        return {"resourceId": r.id, "changeType": "Create", "after": after}
    before = {"apiVersion": r.api_version, **copy.deepcopy(before)}
    rules = d.mgmt.resources.rules_for(r.type)
    delta = []
    for key in ("location", "sku", "kind", "identity", "properties"):
        if key in request:
            delta += diff(key, before.get(key), request[key])
    if rules.tracked and (before.get("tags") or {}) != (request.get("tags") or {}):
        delta += diff("tags", before.get("tags") or {}, request.get("tags") or {}, whole=True)
    for path in rules.settable:
        if _at(request, path) is None and _at(before, path) not in (None, {}, []):
            delta.append({"path": path, "propertyChangeType": "Delete", "before": _at(before, path)})
    if not delta:
        return {"resourceId": r.id, "changeType": "NoChange", "before": before, "after": before}
    return {"resourceId": r.id, "changeType": "Modify", "before": before, "after": after, "delta": delta}


def diff(path: str, before: Any, after: Any, *, whole: bool = False) -> list[dict]:
    """Property changes from `before` to `after`, over what `after` sets (`whole`: keys that only
    `before` has are deleted too)."""
    if is_secret_path(path) or is_expression(after):
        return []
    if isinstance(after, dict) and isinstance(before, dict):
        out = []
        for k, v in after.items():
            p = f"{path}.{k}"
            if is_secret_path(p) or is_expression(v):
                continue
            if k not in before:
                out.append({"path": p, "propertyChangeType": "Create", "after": v})
            else:
                out += diff(p, before[k], v, whole=whole)
        if whole:
            out += [{"path": f"{path}.{k}", "propertyChangeType": "Delete", "before": v} for k, v in before.items() if k not in after]
        return out
    if isinstance(after, list) and isinstance(before, list) and len(after) == len(before):
        children = [c for i, (b, a) in enumerate(zip(before, after)) for c in diff(f"{path}[{i}]", b, a)]
        return children
    if path.lower() == "location" and isinstance(before, str) and isinstance(after, str):
        if before.lower().replace(" ", "") == after.lower().replace(" ", ""):
            return []
    if before != after or type(before) is not type(after):
        return [{"path": path, "propertyChangeType": "Modify", "before": before, "after": after}]
    return []


def _at(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value
