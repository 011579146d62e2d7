"""ARM: auth, routing, Microsoft.Resources (subscriptions, resource groups, generic resources,
async operations), Microsoft.Storage (accounts, keys, file shares) and the Microsoft.App routes
(delegated to apps.py). Deployments are in deploy.py."""
from __future__ import annotations

import copy
import json
import re
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable

from .httpserver import Request, Response

if TYPE_CHECKING:
    from .double import AzureDouble

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
PROV = RG + r"/providers"
DEPL = PROV + r"/Microsoft\.Resources/deployments/(?P<name>[^/]+)"
ACCT = PROV + r"/Microsoft\.Storage/storageAccounts/(?P<account>[^/]+)"
APP = PROV + r"/Microsoft\.App/containerApps/(?P<app>[^/]+)"
REV = APP + r"/revisions/(?P<rev>[^/]+)"
LOC = SUB + r"/providers/Microsoft\.App/locations/(?P<loc>[^/]+)"
MSI_PATH = "/msi/token"
STATS_PATH = "/_double/stats"

DEFAULT_USAGES = [
    ("ManagedEnvironmentConsumptionT4Gpus", "Managed Environment Consumption T4 Gpus", 0, 1),
    ("ManagedEnvironmentConsumptionNCA100Gpus", "Managed Environment Consumption NCA100 Gpus", 0, 1),
    ("ManagedEnvironmentGeneralPurposeCores", "Managed Environment General Purpose Cores", 0, 100),
    ("ManagedEnvironmentCount", "Managed Environment Count", 0, 15),
]

DEFAULT_WORKLOAD_PROFILES = [
    ("Consumption", "Consumption", "Consumption", 4, 8, 0),
    ("Consumption-GPU-NC8as-T4", "Consumption GPU NC8as T4", "GPU", 8, 56, 1),
    ("Consumption-GPU-NC24-A100", "Consumption GPU NC24 A100", "GPU", 24, 220, 1),
    ("D4", "Dedicated-D4", "GeneralPurpose", 4, 16, 0),
    ("NC24-A100", "GPU NC24 A100", "GPU", 24, 220, 1),
]


class Management:
    def __init__(self, double: "AzureDouble"):
        from .deploy import Deployments

        self.d = double
        self.deployments = Deployments(double, self)
        self.usages: dict[str, dict[str, list]] = {}   # location ("*" = any) -> name -> [localized, current, limit]
        self.usages["*"] = {n: [loc, cur, lim] for n, loc, cur, lim in DEFAULT_USAGES}
        self.workload_profiles = [dict(zip(("name", "displayName", "category", "cores", "memoryGiB", "gpus"), p))
                                  for p in DEFAULT_WORKLOAD_PROFILES]
        a = double.apps
        dp = self.deployments
        self.routes: list[tuple[str, re.Pattern, Callable]] = []
        r = self._route
        # async operations
        r("GET", SUB + r"/providers/Microsoft\.Resources/operationStatuses/(?P<op>[^/]+)", self.op_status)
        r("GET", SUB + r"/operationresults/(?P<op>[^/]+)", self.op_result)
        r("GET", DEPL + r"/operationStatuses/(?P<op>[^/]+)", lambda req, sub, rg, name, op: self.op_status(req, sub, op))
        # subscriptions
        r("GET", r"/subscriptions", self.list_subscriptions)
        r("GET", SUB, self.get_subscription)
        r("GET", SUB + r"/locations", self.list_locations)
        # resource groups
        r("GET", SUB + r"/resourcegroups", self.list_groups)
        r("PUT", RG, self.put_group)
        r("GET", RG, self.get_group)
        r("HEAD", RG, self.head_group)
        r("PATCH", RG, self.patch_group)
        r("DELETE", RG, self.delete_group)
        r("GET", RG + r"/resources", self.list_group_resources)
        # deployments
        r("GET", PROV + r"/Microsoft\.Resources/deployments/?", dp.list)
        r("PUT", DEPL, dp.put)
        r("GET", DEPL, dp.get)
        r("HEAD", DEPL, dp.head)
        r("DELETE", DEPL, dp.delete)
        r("POST", DEPL + r"/validate", dp.validate)
        r("POST", DEPL + r"/whatIf", dp.what_if)
        r("POST", DEPL + r"/cancel", dp.cancel)
        r("GET", RG + r"/(?:providers/Microsoft\.Resources/)?deployments/(?P<name>[^/]+)/operations", dp.operations)
        r("GET", RG + r"/(?:providers/Microsoft\.Resources/)?deployments/(?P<name>[^/]+)/operations/(?P<opid>[^/]+)", dp.operation)
        # storage
        r("POST", SUB + r"/providers/Microsoft\.Storage/checkNameAvailability", self.check_name)
        r("GET", PROV + r"/Microsoft\.Storage/storageAccounts", self.list_accounts)
        r("POST", ACCT + r"/listKeys", self.list_keys)
        r("POST", ACCT + r"/regenerateKey", self.regenerate_key)
        r("GET", ACCT + r"/fileServices/default/shares", self.list_shares)
        r("PUT", ACCT + r"/fileServices/default/shares/(?P<share>[^/]+)", self.put_share)
        r("DELETE", ACCT + r"/fileServices/default/shares/(?P<share>[^/]+)", self.delete_share)
        r("POST", PROV + r"/Microsoft\.OperationalInsights/workspaces/(?P<ws>[^/]+)/sharedKeys", self.workspace_keys)
        # container apps
        r("GET", LOC + r"/usages", self.list_usages)
        r("GET", LOC + r"/availableManagedEnvironmentsWorkloadProfileTypes", self.list_workload_profiles)
        r("GET", PROV + r"/Microsoft\.App/containerApps", a.list_apps)
        r("GET", APP, a.get_app)
        r("PUT", APP, a.put_app)
        r("PATCH", APP, a.patch_app)
        r("DELETE", APP, a.delete_app)
        r("POST", APP + r"/listSecrets", a.list_secrets)
        r("POST", APP + r"/getAuthtoken", a.get_auth_token)
        r("POST", APP + r"/(?P<action>start|stop)", a.start_stop)
        r("GET", APP + r"/revisions", a.list_revisions)
        r("GET", REV, a.get_revision)
        r("POST", REV + r"/restart", a.restart_revision)
        r("POST", REV + r"/(?P<action>activate|deactivate)", a.activate_revision)
        r("GET", REV + r"/replicas", a.list_replicas)
        r("GET", REV + r"/replicas/(?P<replica>[^/]+)", a.get_replica)
        # generic resources under a group (GET / PUT / DELETE by id)
        r("GET", PROV + r"/(?P<rest>.+)", self.get_resource)
        r("PUT", PROV + r"/(?P<rest>.+)", self.put_resource)
        r("DELETE", PROV + r"/(?P<rest>.+)", self.delete_resource)

    def _route(self, method: str, pattern: str, fn: Callable) -> None:
        self.routes.append((method, re.compile(pattern + r"/?$", re.IGNORECASE), fn))

    # -- plumbing ----------------------------------------------------------------------------------
    def json(self, status: int, body: Any = None, headers: dict | None = None) -> Response:
        h = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        if body is not None:
            h["Content-Type"] = "application/json; charset=utf-8"
        h.update(headers or {})
        return Response(status, h, b"" if body is None else json.dumps(body).encode())

    def error(self, status: int, code: str, message: str, headers: dict | None = None, **extra) -> Response:
        err = {"code": code, "message": message}
        err.update(extra)
        return self.json(status, {"error": err}, headers)

    def not_found(self, what: str, rtype: str = "Resource") -> Response:
        code = "ResourceGroupNotFound" if rtype == "resourceGroup" else "ResourceNotFound"
        return self.error(404, code, f"The {rtype} '{what}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    def handle(self, req: Request) -> Response:
        if req.path.rstrip("/") == MSI_PATH:
            return self.msi_token(req)
        if req.path.rstrip("/") == STATS_PATH:  # for a process that runs the double (python -m azure_double)
            return self.json(200, {"uploaded_bytes": self.d.uploaded_bytes(), "requests": len(self.d.requests)})
        auth = req.header("authorization") or ""
        if not auth.startswith("Bearer ") or auth[7:] != self.d.token:
            why = "The access token is missing." if not auth else "The access token is invalid."
            return self.error(401, "InvalidAuthenticationToken" if auth else "AuthenticationFailed", why, {
                "WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/{self.d.tenant_id}", '
                                    f'error="invalid_token", error_description="{why}"'})
        rule = self.d.faults.take(("throttle", "error"), req.method, req.target)
        if rule is not None:
            return self._fault(rule)
        path = req.path.rstrip("/") or "/"
        matched_path = False
        for method, pattern, fn in self.routes:
            m = pattern.match(path)
            if not m:
                continue
            matched_path = True
            if method != req.method:
                continue
            if not req.q("api-version"):
                return self.error(400, "MissingApiVersionParameter",
                                  "The api-version query parameter (?api-version=) is required for all requests.")
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            if "sub" in groups and groups["sub"].lower() != self.d.subscription_id.lower():
                return self.error(404, "SubscriptionNotFound", f"The subscription '{groups['sub']}' could not be found.")
            if "rg" in groups and not fn.__name__.endswith("group") and self.group(groups["rg"]) is None:
                return self.error(404, "ResourceGroupNotFound", f"Resource group '{groups['rg']}' could not be found.")
            return fn(req, **groups)
        if matched_path:
            return self.error(405, "MethodNotAllowed", f"The requested resource does not support http method '{req.method}'.")
        return self.error(404, "InvalidResourceType", f"The double does not implement {req.method} {req.path}")

    def msi_token(self, req: Request) -> Response:
        """The managed identity endpoint (App Service / Container Apps protocol, api-version 2019-08-01):
        what azure-identity's ManagedIdentityCredential, and so DefaultAzureCredential, asks when
        IDENTITY_ENDPOINT and IDENTITY_HEADER are set. Hands out the double's bearer token."""
        if req.header("x-identity-header") != self.d.identity_header:
            return self.json(401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong"})
        if req.q("api-version") != "2019-08-01" or not req.q("resource"):
            return self.json(400, {"statusCode": 400, "message": "api-version=2019-08-01 and resource are required"})
        return self.json(200, {"access_token": self.d.token, "expires_on": str(int(time.time()) + 3600),
                               "resource": req.q("resource"), "token_type": "Bearer"})

    def _fault(self, rule) -> Response:
        if rule.kind == "throttle":
            ra = rule.args["retry_after"]
            ra_s = str(int(ra)) if float(ra).is_integer() else str(ra)
            return self.error(429, "TooManyRequests", "The request is being throttled.", {"Retry-After": ra_s})
        status = rule.args["status"]
        code = rule.args.get("code") or {500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable",
                                         504: "GatewayTimeout"}.get(status, "ServerError")
        headers = {}
        if rule.args.get("retry_after") is not None:
            headers["Retry-After"] = str(rule.args["retry_after"])
        return self.error(status, code, f"Injected fault: HTTP {status}.", headers)

    def rg_id(self, rg: str) -> str:
        return f"/subscriptions/{self.d.subscription_id}/resourceGroups/{rg}"

    def group(self, rg: str) -> dict | None:
        return self.d.state.get(self.rg_id(rg))

    @staticmethod
    def body(req: Request) -> dict:
        try:
            return json.loads(req.body or b"{}")
        except ValueError:
            return {}

    # -- async operations ----------------------------------------------------------------------------
    def op_status(self, req: Request, sub: str, op: str) -> Response:
        o = self.d.ops.get(op)
        if o is None:
            return self.not_found(op, "operation")
        status, error = o.status_fn()
        status = {"InProgress": "InProgress"}.get(status, status)
        body = {"id": f"/subscriptions/{sub}/providers/Microsoft.Resources/operationStatuses/{op}", "name": op,
                "status": status, "startTime": None}
        if error:
            body["error"] = error
        headers = self.d.retry_headers() if status not in ("Succeeded", "Failed", "Canceled") else {}
        return self.json(200, body, headers)

    def op_result(self, req: Request, sub: str, op: str) -> Response:
        o = self.d.ops.get(op)
        if o is None:
            return self.not_found(op, "operation")
        status, error = o.status_fn()
        if status not in ("Succeeded", "Failed", "Canceled"):
            return self.json(202, None, {"Location": f"{self.d.arm_endpoint}{req.target}", **self.d.retry_headers()})
        if status == "Failed":
            return self.json(400, {"error": error or {"code": "Failed", "message": "The operation failed."}})
        if o.location_body:
            code, body = o.location_body()
            return self.json(code, body)
        return self.json(204)

    # -- subscriptions -------------------------------------------------------------------------------
    def _sub_body(self, s: dict) -> dict:
        return {"id": f"/subscriptions/{s['subscriptionId']}", "authorizationSource": "RoleBased",
                "managedByTenants": [], "subscriptionId": s["subscriptionId"], "tenantId": s["tenantId"],
                "displayName": s["displayName"], "state": s["state"],
                "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01",
                                         "spendingLimit": "Off"}, "tags": {}}

    def list_subscriptions(self, req: Request) -> Response:
        return self.json(200, {"value": [self._sub_body(s) for s in self.d.subscriptions], "nextLink": None})

    def get_subscription(self, req: Request, sub: str) -> Response:
        return self.json(200, self._sub_body(self.d.subscriptions[0]))

    def list_locations(self, req: Request, sub: str) -> Response:
        names = ["eastus", "westus3", "swedencentral", "westeurope", "australiaeast"]
        return self.json(200, {"value": [{"id": f"/subscriptions/{sub}/locations/{n}", "name": n, "type": "Region",
                                          "displayName": n, "regionalDisplayName": n,
                                          "metadata": {"regionType": "Physical", "regionCategory": "Recommended"}}
                                         for n in names]})

    # -- resource groups -------------------------------------------------------------------------------
    def list_groups(self, req: Request, sub: str) -> Response:
        return self.json(200, {"value": self.d.state.of_type("Microsoft.Resources/resourceGroups")})

    def put_group(self, req: Request, sub: str, rg: str) -> Response:
        body = self.body(req)
        if not body.get("location"):
            return self.error(400, "LocationRequired", "The location property is required for this definition.")
        existing = self.group(rg)
        if existing is not None and existing["location"].lower() != body["location"].lower():
            return self.error(409, "InvalidResourceGroupLocation",
                              f"Invalid resource group location '{body['location']}'. The Resource group already exists in location '{existing['location']}'.")
        if existing is not None and existing["properties"]["provisioningState"] == "Deleting":
            return self.error(409, "ResourceGroupBeingDeleted", f"The resource group '{rg}' is in deprovisioning state and cannot perform this operation.")
        name = existing["name"] if existing else rg
        group = {"id": self.rg_id(name), "name": name, "type": "Microsoft.Resources/resourceGroups",
                 "location": body["location"], "tags": body.get("tags") or (existing or {}).get("tags") or {},
                 "properties": {"provisioningState": "Succeeded"}}
        self.d.state.put(group["id"], group)
        return self.json(200 if existing else 201, group)

    def get_group(self, req: Request, sub: str, rg: str) -> Response:
        g = self.group(rg)
        return self.json(200, g) if g else self.error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")

    def head_group(self, req: Request, sub: str, rg: str) -> Response:
        return self.json(204 if self.group(rg) else 404)

    def patch_group(self, req: Request, sub: str, rg: str) -> Response:
        g = self.group(rg)
        if g is None:
            return self.error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        g["tags"] = self.body(req).get("tags", g.get("tags"))
        return self.json(200, g)

    def delete_group(self, req: Request, sub: str, rg: str) -> Response:
        g = self.group(rg)
        if g is None:
            return self.error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        g["properties"]["provisioningState"] = "Deleting"

        def done():
            for body in self.resources_in(rg):
                self.remove_resource(body["id"])
            self.d.state.delete(g["id"])

        op = self.d.timed_op(on_done=done)
        return self.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def resources_in(self, rg: str) -> list[dict]:
        prefix = self.rg_id(rg).lower() + "/providers/"
        with self.d.state.lock:
            return [b for rid, b in self.d.state.resources.items() if rid.lower().startswith(prefix)]

    def list_group_resources(self, req: Request, sub: str, rg: str) -> Response:
        out = []
        for b in self.resources_in(rg):
            if b["type"].count("/") == 1:   # top-level resources only, as ARM lists them
                out.append({k: b[k] for k in ("id", "name", "type", "location", "tags", "sku", "kind") if k in b})
        return self.json(200, {"value": out})

    def remove_resource(self, rid: str) -> None:
        body = self.d.state.get(rid)
        if body is None:
            return
        t = body["type"].lower()
        if t == "microsoft.app/containerapps":
            self.d.apps.forget(body)
        if t == "microsoft.storage/storageaccounts":
            self.d.files.drop_account(body["name"])
            self.d.state.keys.pop(body["name"].lower(), None)
        if t == "microsoft.storage/storageaccounts/fileservices/shares":
            self.d.files.drop_share(rid.split("/")[8], body["name"])
        self.d.state.delete(rid)

    # -- generic resources ----------------------------------------------------------------------------
    def get_resource(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        body = self.d.state.get(f"{self.rg_id(rg)}/providers/{rest}")
        if body is None:
            parts = rest.split("/")
            if len(parts) >= 4 and self.d.state.get(f"{self.rg_id(rg)}/providers/{'/'.join(parts[:3])}") is None \
                    and len(parts) % 2 == 1:
                return self.error(404, "ParentResourceNotFound",
                                  f"Can not perform requested operation on nested resource. Parent resource '{parts[2]}' not found.")
            return self.not_found(f"{parts[0]}/{'/'.join(parts[1::2][:1])}/{'/'.join(parts[2::2])}", "Resource")
        return self.json(200, body)

    def put_resource(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        parts = rest.split("/")
        if len(parts) < 3 or len(parts) % 2 == 0:
            return self.error(400, "InvalidResourceId", f"The resource id '{rest}' is invalid.")
        rtype = "/".join([parts[0]] + parts[1::2])
        name = "/".join(parts[2::2])
        body = self.body(req)
        existed = self.d.state.get(f"{self.rg_id(rg)}/providers/{rest}") is not None
        try:
            created = self.deployments.apply(rg, {"type": rtype, "name": name, **body})
        except ResourceFailure as e:
            return self.error(e.status, e.code, e.message)
        return self.json(200 if existed else 201, created)

    def delete_resource(self, req: Request, sub: str, rg: str, rest: str) -> Response:
        rid = f"{self.rg_id(rg)}/providers/{rest}"
        if self.d.state.get(rid) is None:
            return self.json(204)
        self.remove_resource(rid)
        return self.json(200)

    # -- storage -------------------------------------------------------------------------------------
    def check_name(self, req: Request, sub: str) -> Response:
        name = self.body(req).get("name", "")
        if not re.fullmatch(r"[a-z0-9]{3,24}", name):
            return self.json(200, {"nameAvailable": False, "reason": "AccountNameInvalid",
                                   "message": f"{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."})
        if name.lower() in self.d.state.keys:
            return self.json(200, {"nameAvailable": False, "reason": "AlreadyExists",
                                   "message": f"The storage account named {name} is already taken."})
        return self.json(200, {"nameAvailable": True})

    def list_accounts(self, req: Request, sub: str, rg: str) -> Response:
        return self.json(200, {"value": self.d.state.of_type("Microsoft.Storage/storageAccounts", rg)})

    def _account(self, rg: str, account: str) -> dict | None:
        return self.d.state.get(f"{self.rg_id(rg)}/providers/Microsoft.Storage/storageAccounts/{account}")

    def list_keys(self, req: Request, sub: str, rg: str, account: str) -> Response:
        if self._account(rg, account) is None:
            return self.not_found(f"Microsoft.Storage/storageAccounts/{account}")
        keys = self.d.state.keys[account.lower()]
        return self.json(200, {"keys": [{"creationTime": now_z(), "keyName": f"key{i + 1}", "permissions": "FULL", "value": k}
                                        for i, k in enumerate(keys)]})

    def regenerate_key(self, req: Request, sub: str, rg: str, account: str) -> Response:
        from .double import new_key

        if self._account(rg, account) is None:
            return self.not_found(f"Microsoft.Storage/storageAccounts/{account}")
        which = self.body(req).get("keyName", "key1")
        keys = self.d.state.keys[account.lower()]
        keys[1 if which == "key2" else 0] = new_key()
        return self.list_keys(req, sub, rg, account)

    def list_shares(self, req: Request, sub: str, rg: str, account: str) -> Response:
        if self._account(rg, account) is None:
            return self.not_found(f"Microsoft.Storage/storageAccounts/{account}")
        return self.json(200, {"value": [s for s in self.d.state.of_type("Microsoft.Storage/storageAccounts/fileServices/shares", rg)
                                         if f"/storageaccounts/{account.lower()}/" in s["id"].lower()]})

    def put_share(self, req: Request, sub: str, rg: str, account: str, share: str) -> Response:
        if self._account(rg, account) is None:
            return self.error(404, "ParentResourceNotFound",
                              f"Can not perform requested operation on nested resource. Parent resource '{account}' not found.")
        rid = f"{self.rg_id(rg)}/providers/Microsoft.Storage/storageAccounts/{account}/fileServices/default/shares/{share}"
        existed = self.d.state.get(rid) is not None
        created = self.deployments.apply(rg, {"type": "Microsoft.Storage/storageAccounts/fileServices/shares",
                                              "name": f"{account}/default/{share}", **self.body(req)})
        # FileShares_Create answers with id, name, type only (as the official example)
        return self.json(200 if existed else 201, {k: created[k] for k in ("id", "name", "type")})

    def delete_share(self, req: Request, sub: str, rg: str, account: str, share: str) -> Response:
        rid = f"{self.rg_id(rg)}/providers/Microsoft.Storage/storageAccounts/{account}/fileServices/default/shares/{share}"
        if self.d.state.get(rid) is None:
            return self.json(204)
        self.remove_resource(rid)
        return self.json(200)

    def workspace_keys(self, req: Request, sub: str, rg: str, ws: str) -> Response:
        keys = self.d.state.keys.get(ws.lower())
        if keys is None:
            return self.not_found(f"Microsoft.OperationalInsights/workspaces/{ws}")
        return self.json(200, {"primarySharedKey": keys[0], "secondarySharedKey": keys[1]})

    # -- Microsoft.App location-level ------------------------------------------------------------------
    def set_usage(self, name: str, limit: float, current: float = 0, location: str | None = None) -> None:
        table = self.usages.setdefault((location or "*").lower().replace(" ", ""), {})
        localized = self.usages["*"].get(name, [re.sub(r"(?<!^)(?=[A-Z])", " ", name)])[0]
        table[name] = [localized, current, limit]

    def list_usages(self, req: Request, sub: str, loc: str) -> Response:
        table = dict(self.usages["*"])
        table.update(self.usages.get(loc.lower().replace(" ", ""), {}))
        return self.json(200, {"value": [{"unit": "Count", "currentValue": cur, "limit": lim,
                                          "name": {"value": n, "localizedValue": localized}}
                                         for n, (localized, cur, lim) in table.items()]})

    def list_workload_profiles(self, req: Request, sub: str, loc: str) -> Response:
        return self.json(200, {"value": [
            {"id": f"/subscriptions/{sub}/providers/Microsoft.App/locations/{loc}/availableManagedEnvironmentsWorkloadProfileTypes/{p['name']}",
             "name": p["name"], "type": "Microsoft.App/locations/availableManagedEnvironmentsWorkloadProfileTypes",
             "location": loc,
             "properties": {"displayName": p["displayName"], "category": p["category"], "applicability": "LocationDefault",
                            "cores": p["cores"], "memoryGiB": p["memoryGiB"], "gpus": p["gpus"]}}
            for p in self.workload_profiles]})


class ResourceFailure(Exception):
    """A resource could not be created: becomes a failed deployment operation or an ARM error."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


def now_z() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())


def deep(value: Any) -> Any:
    return copy.deepcopy(value)
