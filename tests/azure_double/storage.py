"""Microsoft.Storage: storage accounts (global names, keys, path-style endpoints on the double) and
file shares (FileShares_Create/Update/Get/Delete: synchronous; `metadata` on the share, the same
metadata the data plane's x-ms-meta-* headers read and write; shares are proxy resources with no
ARM tags)."""
from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Callable

from .errors import ResourceFailure
from .httpserver import Request, Response
from .resources import Put, TypeRules, new_etag, now_iso

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management

ACCOUNT = "Microsoft.Storage/storageAccounts"
SHARE = "Microsoft.Storage/storageAccounts/fileServices/shares"
_NAME = re.compile(r"[a-z0-9]{3,24}")
_METADATA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def now_z() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime())


class Storage:
    def __init__(self, double: "AzureDouble", mgmt: "Management"):
        self.d, self.m = double, mgmt
        mgmt.resources.register(ACCOUNT, TypeRules(put=self._put_account, deleting=self._deleting_account,
                                                   actions={"listkeys": self._list_keys}))
        mgmt.resources.register(SHARE, TypeRules(put=self._put_share, deleting=self._deleting_share, tracked=False,
                                                 view=self._share_view, settable=("properties.metadata",)))
        mgmt.resources.register("Microsoft.Storage/storageAccounts/fileServices", TypeRules(tracked=False))

    def routes(self, r: Callable, sub: str, prov: str) -> None:
        acct = prov + r"/Microsoft\.Storage/storageAccounts/(?P<account>[^/]+)"
        share = acct + r"/fileServices/default/shares/(?P<share>[^/]+)"
        r("POST", sub + r"/providers/Microsoft\.Storage/checkNameAvailability", self.check_name)
        r("GET", prov + r"/Microsoft\.Storage/storageAccounts", self.list_accounts)
        r("PUT", acct, self.put_account)
        r("POST", acct + r"/listKeys", self.list_keys)
        r("POST", acct + r"/regenerateKey", self.regenerate_key)
        r("GET", acct + r"/fileServices/default/shares", self.list_shares)
        r("PUT", share, self.put_share)
        r("PATCH", share, self.patch_share)
        r("DELETE", share, self.delete_share)

    # -- resource rules ---------------------------------------------------------------------------------------------
    def _put_account(self, p: Put) -> None:
        name = p.name
        if not _NAME.fullmatch(name):
            raise ResourceFailure("AccountNameInvalid", f"{name} is not a valid storage account name. Storage account name must be "
                                  "between 3 and 24 characters in length and use numbers and lower-case letters only.")
        if name.lower() in self.d.state.keys and p.existing is None:
            raise ResourceFailure("StorageAccountAlreadyTaken", f"The storage account named {name} is already taken.", 409)
        from .double import new_key

        self.d.state.keys.setdefault(name.lower(), [new_key(), new_key()])
        self.d.files.ensure_account(name)
        ep = self.d.arm_endpoint
        p.props.update({"provisioningState": "Succeeded",
                        "creationTime": (p.existing or {}).get("properties", {}).get("creationTime", now_iso()),
                        "primaryLocation": p.body.get("location"), "statusOfPrimary": "available",
                        "primaryEndpoints": {"blob": f"{ep}/{name}-blob/", "queue": f"{ep}/{name}-queue/", "table": f"{ep}/{name}-table/",
                                             "file": f"{ep}/{name}/", "web": f"{ep}/{name}-web/", "dfs": f"{ep}/{name}-dfs/"},
                        "encryption": {"keySource": "Microsoft.Storage", "services": {"file": {"enabled": True, "keyType": "Account"}}},
                        "accessTier": p.props.get("accessTier", "Hot")})
        p.body.setdefault("sku", {"name": "Standard_LRS"})
        p.body["sku"].setdefault("tier", "Premium" if str(p.body["sku"].get("name", "")).startswith("Premium") else "Standard")
        p.body.setdefault("kind", "StorageV2")

    def _deleting_account(self, body: dict) -> None:
        self.d.files.drop_account(body["name"])
        self.d.state.keys.pop(body["name"].lower(), None)

    def _list_keys(self, body: dict, payload=None) -> dict:
        keys = self.d.state.keys[body["name"].lower()]
        return {"keys": [{"creationTime": now_z(), "keyName": f"key{i + 1}", "permissions": "FULL", "value": k}
                         for i, k in enumerate(keys)]}

    def _put_share(self, p: Put) -> None:
        account, share = p.names[0], p.name
        metadata = p.props.get("metadata") or {}
        _check_metadata(metadata)
        self.d.files.ensure_share(account, share, int(p.props.get("shareQuota", 5120)))
        self.d.files.set_share_metadata(account, share, metadata)
        p.body["etag"] = new_etag()
        p.props.update({"lastModifiedTime": now_iso(), "shareQuota": p.props.get("shareQuota", 5120),
                        "accessTier": p.props.get("accessTier", "TransactionOptimized"),
                        "enabledProtocols": p.props.get("enabledProtocols", "SMB"), "leaseStatus": "unlocked",
                        "leaseState": "available", "metadata": dict(metadata)})

    def _share_view(self, body: dict) -> dict:
        """Metadata set through the data plane shows in ARM too: one store for both."""
        account = body["id"].split("/")[8]
        meta = self.d.files.share_metadata(account, body["name"])
        if meta is not None:
            body["properties"]["metadata"] = meta
        return body

    def _deleting_share(self, body: dict) -> None:
        self.d.files.drop_share(body["id"].split("/")[8], body["name"])

    # -- routes ---------------------------------------------------------------------------------------------------------
    def _account(self, rg: str, account: str) -> dict:
        body = self.d.state.get(f"{self.m.rg_id(rg)}/providers/{ACCOUNT}/{account}")
        if body is None:
            raise ResourceFailure("ResourceNotFound", f"The Resource '{ACCOUNT}/{account}' under resource group '{rg}' was not "
                                  "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", 404)
        return body

    def check_name(self, req: Request, sub: str) -> Response:
        name = self.m.body(req).get("name", "")
        if not _NAME.fullmatch(name):
            return self.m.json(200, {"nameAvailable": False, "reason": "AccountNameInvalid",
                                     "message": f"{name} is not a valid storage account name. Storage account name must be between 3 "
                                                "and 24 characters in length and use numbers and lower-case letters only."})
        if name.lower() in self.d.state.keys:
            return self.m.json(200, {"nameAvailable": False, "reason": "AlreadyExists",
                                     "message": f"The storage account named {name} is already taken."})
        return self.m.json(200, {"nameAvailable": True})

    def list_accounts(self, req: Request, sub: str, rg: str) -> Response:
        return self.m.json(200, {"value": self.d.state.of_type(ACCOUNT, rg)})

    def put_account(self, req: Request, sub: str, rg: str, account: str) -> Response:
        """StorageAccounts_Create answers 200 (or 202 while it works), never 201."""
        return self.m.json(200, self.m.resources.apply(rg, {**self.m.body(req), "type": ACCOUNT, "name": account}))

    def list_keys(self, req: Request, sub: str, rg: str, account: str) -> Response:
        return self.m.json(200, self.m.resources.action(self._account(rg, account)["id"], "listKeys"))

    def regenerate_key(self, req: Request, sub: str, rg: str, account: str) -> Response:
        from .double import new_key

        body = self._account(rg, account)
        self.d.access.check(f"{ACCOUNT}/regeneratekey/action", body["id"])
        which = self.m.body(req).get("keyName", "key1")
        self.d.state.keys[account.lower()][1 if which == "key2" else 0] = new_key()
        return self.m.json(200, self._list_keys(body))

    def _share_id(self, rg: str, account: str, share: str) -> str:
        return f"{self.m.rg_id(rg)}/providers/{ACCOUNT}/{account}/fileServices/default/shares/{share}"

    def list_shares(self, req: Request, sub: str, rg: str, account: str) -> Response:
        acct = self._account(rg, account)
        shares = [self.m.resources.get(s["id"]) for s in self.d.state.of_type(SHARE, rg)
                  if s["id"].lower().startswith(acct["id"].lower() + "/")]
        return self.m.json(200, {"value": shares})

    def put_share(self, req: Request, sub: str, rg: str, account: str, share: str) -> Response:
        if self.d.state.get(f"{self.m.rg_id(rg)}/providers/{ACCOUNT}/{account}") is None:
            return self.m.error(404, "ParentResourceNotFound",
                                f"Can not perform requested operation on nested resource. Parent resource '{account}' not found.")
        existed = self.d.state.get(self._share_id(rg, account, share)) is not None
        created = self.m.resources.apply(rg, {"type": SHARE, "name": f"{account}/default/{share}", **self.m.body(req)})
        # FileShares_Create answers with id, name, type only (as the official example)
        return self.m.json(200 if existed else 201, {k: created[k] for k in ("id", "name", "type")})

    def patch_share(self, req: Request, sub: str, rg: str, account: str, share: str) -> Response:
        """FileShares_Update: the given properties (metadata, shareQuota, ...) replace those of the share."""
        rid = self._share_id(rg, account, share)
        body = self.d.state.get(rid)
        if body is None:
            return self.m.resources.not_found(rg, rid.split("/providers/", 1)[1])
        props = {**self.m.resources.get(rid)["properties"], **(self.m.body(req).get("properties") or {})}
        keep = {k: props[k] for k in ("metadata", "shareQuota", "accessTier", "enabledProtocols") if k in props}
        return self.m.json(200, self.m.resources.apply(rg, {"type": SHARE, "name": f"{account}/default/{share}", "properties": keep}))

    def delete_share(self, req: Request, sub: str, rg: str, account: str, share: str) -> Response:
        rid = self._share_id(rg, account, share)
        if self.d.state.get(rid) is None:
            return self.m.json(204)
        self.m.resources.check_delete(self.d.state.get(rid))
        self.m.resources.remove(rid)
        return self.m.json(200)


def _check_metadata(metadata) -> None:
    """Share metadata names are C# identifiers (the Storage REST docs), values strings."""
    if not isinstance(metadata, dict):
        raise ResourceFailure("InvalidRequestContent", "properties.metadata must be an object of string values.")
    for k, v in metadata.items():
        if not _METADATA_NAME.fullmatch(k) or not isinstance(v, str):
            raise ResourceFailure("InvalidMetadata", f"The metadata '{k}' is not valid: names are C# identifiers and values strings.")
