"""Microsoft.OperationalInsights workspaces: a stable customerId and two shared keys (POST
sharedKeys; templates read them with listKeys())."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Callable

from .errors import ResourceFailure
from .httpserver import Request, Response
from .resources import Put, TypeRules

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management

WORKSPACE = "Microsoft.OperationalInsights/workspaces"


class LogAnalytics:
    def __init__(self, double: "AzureDouble", mgmt: "Management"):
        self.d, self.m = double, mgmt
        keys = {"sharedkeys": self._keys, "listkeys": self._keys}
        mgmt.resources.register(WORKSPACE, TypeRules(put=self._put, deleting=self._deleting, actions=keys))

    def routes(self, r: Callable, prov: str) -> None:
        r("POST", prov + r"/Microsoft\.OperationalInsights/workspaces/(?P<ws>[^/]+)/sharedKeys", self.shared_keys)

    def _put(self, p: Put) -> None:
        from .double import new_key

        self.d.state.keys.setdefault(p.name.lower(), [new_key(), new_key()])
        p.props["customerId"] = (p.existing or {}).get("properties", {}).get("customerId") or str(uuid.uuid4())
        p.props.setdefault("sku", {"name": "PerGB2018"})
        p.props.setdefault("retentionInDays", 30)

    def _deleting(self, body: dict) -> None:
        self.d.state.keys.pop(body["name"].lower(), None)

    def _keys(self, body: dict, payload=None) -> dict:
        keys = self.d.state.keys[body["name"].lower()]
        return {"primarySharedKey": keys[0], "secondarySharedKey": keys[1]}

    def shared_keys(self, req: Request, sub: str, rg: str, ws: str) -> Response:
        rid = f"{self.m.rg_id(rg)}/providers/{WORKSPACE}/{ws}"
        if self.d.state.get(rid) is None:
            raise ResourceFailure("ResourceNotFound", f"The Resource '{WORKSPACE}/{ws}' under resource group '{rg}' was not found.", 404)
        return self.m.json(200, self.m.resources.action(rid, "sharedKeys"))
