"""ARM itself: authentication and authorization, routing, the async-operation protocol,
subscriptions and resource groups. Each resource provider registers its routes and resource rules:
resources.py (the generic store, resources by id, tags), storage.py, loganalytics.py,
environments.py, apps.py; deployments are in deploy.py, what-if in whatif.py."""
from __future__ import annotations

import json
import re
import uuid
from typing import TYPE_CHECKING, Any, Callable

from .errors import ResourceFailure
from .httpserver import Request, Response

if TYPE_CHECKING:
    from .double import AzureDouble

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
PROV = RG + r"/providers"
DEPL = PROV + r"/Microsoft\.Resources/deployments/(?P<name>[^/]+)"
MSI_PATH = "/msi/token"
STATS_PATH = "/_double/stats"
__all__ = ["Management", "ResourceFailure"]


class Management:
    def __init__(self, double: "AzureDouble"):
        from .deploy import Deployments
        from .environments import Environments
        from .loganalytics import LogAnalytics
        from .resources import Resources
        from .storage import Storage

        self.d = double
        self.resources = Resources(double, self)
        self.storage = Storage(double, self)
        self.loganalytics = LogAnalytics(double, self)
        self.environments = Environments(double, self)
        double.apps.register(self.resources)
        self.deployments = Deployments(double, self)
        self.routes: list[tuple[str, re.Pattern, Callable]] = []
        r, dp = self._route, self.deployments
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
        self.resources.routes(r, RG)
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
        # resource providers
        self.storage.routes(r, SUB, PROV)
        self.loganalytics.routes(r, PROV)
        self.environments.routes(r, SUB, PROV)
        double.apps.routes(r, PROV)
        self.resources.generic_routes(r, PROV)       # last: any other resource by id

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
        refused = self.d.access.authenticate(req.header("authorization") or "")
        if refused is not None:
            return self.error(refused.status, refused.code, refused.message, self.d.access.challenge(refused))
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
            try:
                if not _exempt(path):
                    self.d.access.check_request(req.method, path)
                return fn(req, **groups)
            except ResourceFailure as e:
                return self.error(e.status, e.code, e.message)
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
        token = self.d.access.current()
        return self.json(200, {"access_token": token.value, "expires_on": str(int(token.expires)),
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
            for body in self.resources.in_group(rg, top_level=True):
                self.resources.remove(body["id"])
            self.d.state.delete(g["id"])

        op = self.d.timed_op(on_done=done)
        return self.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

def _exempt(path: str) -> bool:
    """Requests that are not actions on a resource: polling an operation of one already allowed."""
    return bool(re.search(r"/operation(Statuses|results)/", path, re.IGNORECASE))
