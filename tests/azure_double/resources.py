"""Resources as ARM keeps them, whoever PUTs them (a direct PUT or a deployment): one store, with
each resource type's rules (validation, read-only properties, what a delete takes with it)
registered by its provider module. Also the generic Microsoft.Resources routes over the store:
a resource by id (GET/HEAD/PUT/PATCH/DELETE, as `resources.get_by_id` / `begin_delete_by_id` use
them), the resource list of a group with `$filter` on tags and type, and the Tags API at any scope.

ARM semantics kept here: a PUT replaces the resource's properties and its tags (a PUT without
`tags` leaves none, the Tags API being the way to change tags alone); tracked resources (those with
a location) always carry `tags`, proxy resources (shares, environment storages) have none."""
from __future__ import annotations

import copy
import fnmatch
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .errors import ResourceFailure
from .httpserver import Request, Response

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def split_id(resource_id: str) -> tuple[str, str, str, list[str]]:
    """(resource group, full type, resource id as given, names) of a resource id in a group."""
    parts = resource_id.strip("/").split("/")
    if len(parts) < 8 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers" \
            or len(parts) % 2:
        raise ResourceFailure("InvalidResourceId", f"The resource id '{resource_id}' is invalid.")
    rest = parts[5:]
    return parts[3], "/".join([rest[0]] + rest[1::2]), resource_id, rest[2::2]


@dataclass
class Put:
    """A resource PUT being applied: `request` as sent (expressions evaluated), `body` what GET
    will return (the type's rules fill its read-only parts), `existing` the resource before."""

    d: "AzureDouble"
    rg: str
    group: dict
    type: str
    names: list[str]
    id: str
    request: dict
    body: dict
    existing: dict | None

    @property
    def props(self) -> dict:
        return self.body["properties"]

    @property
    def name(self) -> str:
        return self.names[-1]


@dataclass
class TypeRules:
    """What a resource type adds to the generic store. `put` validates and fills read-only
    properties (raising ResourceFailure to refuse); `deleting` cleans up what the resource held;
    `refuse_delete` returns the failure when the resource cannot go; `actions` are its POST
    actions by lower-case name (listkeys, listsecrets, ...), as template functions call them too."""

    put: Callable[[Put], None] = lambda p: None
    deleting: Callable[[dict], None] = lambda body: None
    refuse_delete: Callable[[dict], ResourceFailure | None] = lambda body: None
    actions: dict[str, Callable[[dict, Any], Any]] = field(default_factory=dict)
    tracked: bool = True          # has a location and tags
    view: Callable[[dict], dict] = lambda body: body   # refresh live parts before a GET
    settable: tuple[str, ...] = ()  # property paths a PUT resets when it does not set them (what-if shows them deleted)


class Resources:
    def __init__(self, double: "AzureDouble", mgmt: "Management"):
        self.d, self.m = double, mgmt
        self.rules: dict[str, TypeRules] = {}

    def register(self, rtype: str, rules: TypeRules) -> None:
        self.rules[rtype.lower()] = rules

    def rules_for(self, rtype: str) -> TypeRules:
        return self.rules.get(rtype.lower()) or TypeRules()

    # -- the store ------------------------------------------------------------------------------------------
    def get(self, resource_id: str) -> dict | None:
        """The resource as GET returns it (None if absent)."""
        body = self.d.state.get(resource_id)
        return None if body is None else self.rules_for(body["type"]).view(body)

    def apply(self, rg: str, request: dict, *, caller: str = "") -> dict:
        """Create or update one resource from an evaluated PUT body (with `type` and `name`, as a
        template declares it); returns its GET body."""
        rtype, name = request["type"], request["name"]
        group = self.m.group(rg)
        if group is None:
            raise ResourceFailure("ResourceGroupNotFound", f"Resource group '{rg}' could not be found.", 404)
        names = name.split("/")
        rid = self.m.rg_id(group["name"]) + "/providers/" + rtype.split("/")[0] + "/" + \
            "/".join(f"{t}/{n}" for t, n in zip(rtype.split("/")[1:], names))
        self.d.access.check_write(rid, rtype)
        if len(names) > 1 and self.d.state.get(rid.rsplit("/", 2)[0]) is None and not self._implicit_parent(rid):
            raise ResourceFailure("ParentResourceNotFound", f"Can not perform requested operation on nested resource. Parent "
                                  f"resource '{'/'.join(names[:-1])}' not found.", 404)
        existing = self.d.state.get(rid)
        rules = self.rules_for(rtype)
        body: dict = {"id": rid, "name": names[-1], "type": rtype}
        if rules.tracked:
            body["location"] = request.get("location") or (existing or {}).get("location") or group["location"]
            body["tags"] = copy.deepcopy(request.get("tags") or {})     # PUT replaces the tags: none given, none kept
        for k in ("sku", "kind", "identity", "extendedLocation", "zones"):
            if k in request:
                body[k] = copy.deepcopy(request[k])
        body["properties"] = copy.deepcopy(request.get("properties") or {})
        put = Put(self.d, group["name"], group, rtype, names, rid, request, body, existing)
        rules.put(put)
        body["properties"].setdefault("provisioningState", "Succeeded")
        stamp = now_iso()
        body["systemData"] = {**(existing or {}).get("systemData", {"createdBy": "test@example.com", "createdByType": "User",
                                                                     "createdAt": stamp}),
                              "lastModifiedBy": "test@example.com", "lastModifiedByType": "User", "lastModifiedAt": stamp}
        self.d.state.put(rid, redact(body))
        self.d.state.specs[rid.lower()] = {k: copy.deepcopy(v) for k, v in request.items() if k not in ("apiVersion",)}
        return self.d.state.get(rid)

    def _implicit_parent(self, rid: str) -> bool:
        """A parent that exists with its own parent: a storage account's fileServices/default."""
        parent = rid.rsplit("/", 2)[0]
        return parent.lower().endswith("/fileservices/default") and self.d.state.get(parent.rsplit("/", 2)[0]) is not None

    def remove(self, resource_id: str) -> None:
        """Delete a resource and its children (each type cleaning up what it held)."""
        body = self.d.state.get(resource_id)
        if body is None:
            return
        prefix = body["id"].lower() + "/"
        with self.d.state.lock:
            children = [b for rid, b in self.d.state.resources.items() if rid.lower().startswith(prefix)]
        for child in sorted(children, key=lambda b: -len(b["id"])):
            self.rules_for(child["type"]).deleting(child)
        self.rules_for(body["type"]).deleting(body)
        self.d.state.delete(body["id"])

    def check_delete(self, body: dict) -> None:
        self.d.access.check(f"{body['type']}/delete", body["id"])
        failure = self.rules_for(body["type"]).refuse_delete(body)
        if failure is not None:
            raise failure

    def action(self, resource_id: str, action: str, payload: Any = None) -> Any:
        """A POST action (listKeys, listSecrets, ...) on an existing resource."""
        body = self.d.state.get(resource_id)
        if body is None:
            raise ResourceFailure("ResourceNotFound", f"The Resource '{resource_id}' was not found.", 404)
        self.d.access.check(f"{body['type']}/{action}/action", body["id"])
        fn = self.rules_for(body["type"]).actions.get(action.lower())
        if fn is None:
            raise ResourceFailure("InvalidResourceOperation", f"The resource type '{body['type']}' does not support the action '{action}'.")
        return fn(body, payload)

    def in_group(self, rg: str, *, top_level: bool = False) -> list[dict]:
        prefix = self.m.rg_id(rg).lower() + "/providers/"
        with self.d.state.lock:
            found = [b for rid, b in self.d.state.resources.items() if rid.lower().startswith(prefix)]
        return [b for b in found if not top_level or b["type"].count("/") == 1]

    # -- generic routes ----------------------------------------------------------------------------------------------
    def routes(self, r: Callable, rg: str) -> None:
        tags = r"(?:/providers/(?P<rest>.+?))?/providers/Microsoft\.Resources/tags/default"
        r("GET", rg + tags, self.get_tags)
        r("PUT", rg + tags, self.put_tags)
        r("PATCH", rg + tags, self.patch_tags)
        r("DELETE", rg + tags, self.delete_tags)
        r("GET", rg + r"/resources", self.list_in_group)

    def generic_routes(self, r: Callable, prov: str) -> None:
        """Registered last: any resource by id, for the types without routes of their own."""
        r("GET", prov + r"/(?P<rest>.+)", self.get_route)
        r("HEAD", prov + r"/(?P<rest>.+)", self.head_route)
        r("PUT", prov + r"/(?P<rest>.+)", self.put_route)
        r("PATCH", prov + r"/(?P<rest>.+)", self.patch_route)
        r("DELETE", prov + r"/(?P<rest>.+)", self.delete_route)

    def _rid(self, rg: str, rest: str) -> str:
        return f"{self.m.rg_id(rg)}/providers/{rest}"

    def _type_name(self, rest: str) -> tuple[str, str]:
        parts = rest.split("/")
        if len(parts) < 3 or len(parts) % 2 == 0:
            raise ResourceFailure("InvalidResourceId", f"The resource id '{rest}' is invalid.")
        return "/".join([parts[0]] + parts[1::2]), "/".join(parts[2::2])

    def not_found(self, rg: str, rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) >= 5 and self.d.state.get(self._rid(rg, "/".join(parts[:3]))) is None:
            return self.m.error(404, "ParentResourceNotFound",
                                f"Can not perform requested operation on nested resource. Parent resource '{parts[2]}' not found.")
        rtype, name = self._type_name(rest)
        return self.m.error(404, "ResourceNotFound", f"The Resource '{rtype}/{name}' under resource group '{rg}' was not found. "
                            "For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    def get_route(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        body = self.get(self._rid(rg, rest))
        return self.m.json(200, body) if body is not None else self.not_found(rg, rest)

    def head_route(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        return self.m.json(204 if self.d.state.get(self._rid(rg, rest)) is not None else 404)

    def put_route(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        rtype, name = self._type_name(rest)
        existed = self.d.state.get(self._rid(rg, rest)) is not None
        created = self.apply(rg, {**self.m.body(req), "type": rtype, "name": name})
        return self.m.json(200 if existed else 201, created)

    def patch_route(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        rid = self._rid(rg, rest)
        if self.d.state.get(rid) is None:
            return self.not_found(rg, rest)
        rtype, name = self._type_name(rest)
        merged = merge(self.d.state.specs.get(rid.lower()) or {}, self.m.body(req))
        return self.m.json(200, self.apply(rg, {**merged, "type": rtype, "name": name}))

    def delete_route(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        body = self.d.state.get(self._rid(rg, rest))
        if body is None:
            return self.m.json(204)
        self.check_delete(body)
        self.remove(body["id"])
        return self.m.json(200)

    # -- listing -------------------------------------------------------------------------------------------------------
    def list_in_group(self, req: Request, sub: str, rg: str) -> Response:
        """`GET .../resourceGroups/{rg}/resources[?$filter=...]`: the group's top-level resources;
        the filter takes tagName/tagValue, resourceType and name with `eq`, joined by `and`."""
        tests = _parse_filter(req.q("$filter") or "")
        out = []
        for b in self.in_group(rg, top_level=True):
            if all(t(b) for t in tests):
                out.append({k: b[k] for k in ("id", "name", "type", "location", "tags", "sku", "kind", "identity") if k in b})
        top = req.q("$top")
        return self.m.json(200, {"value": out[:int(top)] if top else out})

    # -- Tags API (Microsoft.Resources/tags/default at a scope) ----------------------------------------------
    def _tag_target(self, rg: str, rest: str | None) -> dict:
        target = self.m.group(rg) if rest is None else self.d.state.get(self._rid(rg, rest))
        if target is None:
            raise ResourceFailure("ResourceNotFound", f"The scope '{self._rid(rg, rest or '')}' was not found.", 404)
        if "tags" not in target and target["type"] != "Microsoft.Resources/resourceGroups":
            raise ResourceFailure("InvalidRequestContent", f"The resource type '{target['type']}' does not support tags: it is a "
                                  "proxy resource (no location).")
        return target

    def _tags_view(self, target: dict) -> dict:
        return {"id": f"{target['id']}/providers/Microsoft.Resources/tags/default", "name": "default",
                "type": "Microsoft.Resources/tags", "properties": {"tags": dict(target.get("tags") or {})}}

    def _set_tags(self, target: dict, tags: dict) -> None:
        self.d.access.check("Microsoft.Resources/tags/write", target["id"])
        _check_tags(tags)
        with self.d.state.lock:
            target["tags"] = dict(tags)

    def get_tags(self, req: Request, sub: str, rg: str, rest: str | None = None) -> Response:
        return self.m.json(200, self._tags_view(self._tag_target(rg, rest)))

    def put_tags(self, req: Request, sub: str, rg: str, rest: str | None = None) -> Response:
        target = self._tag_target(rg, rest)
        self._set_tags(target, (self.m.body(req).get("properties") or {}).get("tags") or {})
        return self.m.json(200, self._tags_view(target))

    def patch_tags(self, req: Request, sub: str, rg: str, rest: str | None = None) -> Response:
        """operation Merge (add or replace the given tags), Replace (exactly the given tags) or
        Delete (remove the given tags; a given value must match)."""
        target = self._tag_target(rg, rest)
        body = self.m.body(req)
        given = (body.get("properties") or {}).get("tags") or {}
        operation = str(body.get("operation", "")).lower()
        current = dict(target.get("tags") or {})
        if operation == "merge":
            current.update(given)
        elif operation == "replace":
            current = dict(given)
        elif operation == "delete":
            current = {k: v for k, v in current.items() if not (k in given and given[k] in ("", None, v))}
        else:
            raise ResourceFailure("InvalidRequestContent", f"The tags operation '{body.get('operation')}' is not valid: use Merge, "
                                  "Replace or Delete.")
        self._set_tags(target, current)
        return self.m.json(200, self._tags_view(target))

    def delete_tags(self, req: Request, sub: str, rg: str, rest: str | None = None) -> Response:
        self._set_tags(self._tag_target(rg, rest), {})
        return self.m.json(200)


# -- helpers ---------------------------------------------------------------------------------------------------------
SECRET_PATHS = ("properties.azureFile.accountKey", "properties.appLogsConfiguration.logAnalyticsConfiguration.sharedKey",
                "properties.configuration.secrets[].value", "properties.configuration.registries[].password")


def redact(resource: dict) -> dict:
    """A resource as GET returns it: secret values removed (account keys, shared keys, secrets)."""
    r = copy.deepcopy(resource)
    for path in SECRET_PATHS:
        _drop(r, path.split("."))
    return r


def _drop(node: Any, path: list[str]) -> None:
    if not path or node is None:
        return
    key, rest = path[0], path[1:]
    if key.endswith("[]"):
        items = node.get(key[:-2]) if isinstance(node, dict) else None
        for item in items if isinstance(items, list) else []:
            _drop(item, rest)
    elif isinstance(node, dict) and key in node:
        if rest:
            _drop(node[key], rest)
        else:
            del node[key]


def is_secret_path(path: str) -> bool:
    """A what-if delta path (properties.configuration.secrets[0].value) that names a secret."""
    generic = re.sub(r"\[\d+\]", "[]", path)
    return any(generic.lower() == p.lower() for p in SECRET_PATHS)


def merge(base: dict, patch: dict) -> dict:
    """A PATCH applied to what was PUT: objects merged key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for k, v in patch.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _check_tags(tags: Any) -> None:
    """The limits of tags (docs "Use tags to organize your Azure resources"): at most 50; names up
    to 512 characters, values up to 256; no '<>%&\\?/' in names."""
    if not isinstance(tags, dict) or any(not isinstance(v, str) for v in tags.values()):
        raise ResourceFailure("InvalidTag", "Tags must be an object of string values.")
    if len(tags) > 50:
        raise ResourceFailure("InvalidTag", f"The number of tags ({len(tags)}) exceeds the limit of 50 tags per resource.")
    for k, v in tags.items():
        if len(k) > 512 or len(v) > 256 or re.search(r"[<>%&\\?/]", k):
            raise ResourceFailure("InvalidTagNameCharacters" if re.search(r"[<>%&\\?/]", k) else "InvalidTag",
                                  f"The tag '{k}' is not valid: names up to 512 characters without <>%&\\?/, values up to 256.")


_FILTER_TERM = re.compile(r"\s*(tagName|tagValue|resourceType|name)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)


def _parse_filter(text: str) -> list[Callable[[dict], bool]]:
    if not text.strip():
        return []
    terms = {}
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        m = _FILTER_TERM.fullmatch(part)
        if not m:
            raise ResourceFailure("InvalidFilterInQueryString", f"The filter '{text}' is not valid: use tagName eq 'k' [and tagValue eq 'v'], "
                                  "resourceType eq 'T' or name eq 'N'.")
        terms[m[1].lower()] = m[2].replace("''", "'")
    tests: list[Callable[[dict], bool]] = []
    if "tagname" in terms:
        name, value = terms["tagname"], terms.get("tagvalue")
        tests.append(lambda b: any(k.lower() == name.lower() and (value is None or v == value) for k, v in (b.get("tags") or {}).items()))
    if "resourcetype" in terms:
        tests.append(lambda b: b["type"].lower() == terms["resourcetype"].lower())
    if "name" in terms:
        tests.append(lambda b: b["name"].lower() == terms["name"].lower())
    return tests


def matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatch(value.lower(), pattern.lower())


def new_etag() -> str:
    return f'"0x{uuid.uuid4().hex[:15].upper()}"'


def plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
