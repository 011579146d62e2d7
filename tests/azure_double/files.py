"""The Azure Files data plane (REST, XML), path-style: /<account>/<share>[/<dir>...][/<file>].

Checks SharedKey signatures as the service does; stores file bytes on disk, one folder per
account/share (so a share can be the inference app's /mount), and properties in memory."""
from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import shutil
import threading
import time
import uuid
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from .httpserver import Request, Response

if TYPE_CHECKING:
    from .double import AzureDouble

SIGNED_HEADERS = ["content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                  "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range"]
CONTENT_PROPS = {"x-ms-content-type": "content_type", "x-ms-content-encoding": "content_encoding",
                 "x-ms-content-language": "content_language", "x-ms-cache-control": "cache_control",
                 "x-ms-content-disposition": "content_disposition"}
MAX_RANGE = 4 * 1024 * 1024


def _http_date(t: float | None = None) -> str:
    return formatdate(time.time() if t is None else t, usegmt=True)


def _meta_headers(req: Request) -> dict[str, str]:
    return {k[len("x-ms-meta-"):]: v for k, v in req.headers.items() if k.startswith("x-ms-meta-")}


def _iso7(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e7):07d}Z"


class FileService:
    def __init__(self, double: "AzureDouble"):
        self.d = double
        self.base = double.root / "files"
        self.base.mkdir(parents=True, exist_ok=True)
        self.props: dict[tuple[str, str, str], dict] = {}    # (account, share, path) -> properties ('' = share root)
        self.shares: dict[tuple[str, str], dict] = {}
        self._ids = itertools.count(13835128424026341376)
        self._lock = threading.RLock()
        self.accounts: set[str] = set()

    # -- storage on disk -----------------------------------------------------------------------------
    def ensure_account(self, account: str) -> None:
        self.accounts.add(account.lower())
        (self.base / account.lower()).mkdir(parents=True, exist_ok=True)

    def drop_account(self, account: str) -> None:
        with self._lock:
            for key in [k for k in self.shares if k[0] == account.lower()]:
                self.drop_share(*key)
        self.accounts.discard(account.lower())
        shutil.rmtree(self.base / account.lower(), ignore_errors=True)

    def share_dir(self, account: str, share: str) -> Path:
        return self.base / account.lower() / share.lower()

    def share_exists(self, account: str, share: str) -> bool:
        return (account.lower(), share.lower()) in self.shares

    def ensure_share(self, account: str, share: str, quota: int = 5120) -> bool:
        key = (account.lower(), share.lower())
        with self._lock:
            if key in self.shares:
                return False
            self.share_dir(account, share).mkdir(parents=True, exist_ok=True)
            now = time.time()
            self.shares[key] = {"etag": self._etag(), "last_modified": now, "quota": quota}
            self.props[(key[0], key[1], "")] = self._new_props(True, now)
            return True

    def set_share_metadata(self, account: str, share: str, metadata: dict[str, str]) -> None:
        """The share's metadata: one store for ARM's properties.metadata and the x-ms-meta-* headers."""
        with self._lock:
            info = self.shares.get((account.lower(), share.lower()))
            if info is not None:
                info["metadata"] = dict(metadata)

    def share_metadata(self, account: str, share: str) -> dict[str, str] | None:
        info = self.shares.get((account.lower(), share.lower()))
        return None if info is None else dict(info.get("metadata") or {})

    def drop_share(self, account: str, share: str) -> None:
        key = (account.lower(), share.lower())
        with self._lock:
            self.shares.pop(key, None)
            for k in [k for k in self.props if k[:2] == key]:
                del self.props[k]
        shutil.rmtree(self.share_dir(account, share), ignore_errors=True)

    def read_all(self, account: str, share: str) -> dict[str, bytes]:
        root = self.share_dir(account, share)
        out = {}
        for p in sorted(root.rglob("*")):
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
        return out

    def read_file(self, account: str, share: str, path: str) -> bytes:
        return (self.share_dir(account, share) / path.strip("/")).read_bytes()

    def meta(self, account: str, share: str, path: str) -> dict:
        return self.props[(account.lower(), share.lower(), path.strip("/"))]

    def _etag(self) -> str:
        return f'"0x{uuid.uuid4().hex[:15].upper()}"'

    def _new_props(self, is_dir: bool, now: float) -> dict:
        return {"is_dir": is_dir, "file_id": str(next(self._ids)), "etag": self._etag(), "last_modified": now,
                "creation_time": now, "last_write_time": now, "change_time": now, "content_md5": None,
                "content_type": None if is_dir else "application/octet-stream", "content_encoding": None,
                "content_language": None, "cache_control": None, "content_disposition": None, "metadata": {},
                "size": 0, "attributes": "Directory" if is_dir else "Archive"}

    # -- protocol helpers ----------------------------------------------------------------------------
    def _headers(self, extra: dict | None = None) -> dict:
        h = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-version": "2025-11-05", "Server": "Windows-Azure-File/1.0 Microsoft-HTTPAPI/2.0"}
        h.update(extra or {})
        return h

    def error(self, req: Request, status: int, code: str, message: str, auth_detail: str | None = None,
              extra: dict | None = None) -> Response:
        h = self._headers({"x-ms-error-code": code, **(extra or {})})
        if req.method == "HEAD":
            return Response(status, h, b"")
        detail = f"<AuthenticationErrorDetail>{escape(auth_detail)}</AuthenticationErrorDetail>" if auth_detail else ""
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
                f"RequestId:{h['x-ms-request-id']}\nTime:{_iso7(time.time())}</Message>{detail}</Error>").encode()
        h["Content-Type"] = "application/xml"
        return Response(status, h, body)

    def _string_to_sign(self, req: Request, account: str, raw_path: str) -> str:
        headers = dict(req.headers)
        if headers.get("content-length") == "0":
            headers["content-length"] = ""
        if req.method in ("GET", "HEAD", "DELETE") and not req.body and headers.get("content-length") is None:
            pass
        parts = [req.method] + [headers.get(h, "") for h in SIGNED_HEADERS]
        xms = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-ms-"))
        canon_headers = "".join(f"{k}:{v.strip()}\n" for k, v in xms)
        resource = f"/{account}{raw_path}"
        for name, value in sorted(req.query.items(), key=lambda kv: kv[0].lower()):
            resource += f"\n{name.lower()}:{value}"
        return "\n".join(parts) + "\n" + canon_headers + resource

    def _check_auth(self, req: Request, account: str) -> Response | None:
        auth = req.header("authorization") or ""
        keys = self.d.state.keys.get(account.lower())
        if not auth.startswith("SharedKey "):
            return self.error(req, 401 if not auth else 403, "NoAuthenticationInformation" if not auth else "AuthenticationFailed",
                              "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.")
        name, _, signature = auth[len("SharedKey "):].partition(":")
        if name != account:
            return self.error(req, 403, "AuthenticationFailed", "Server failed to authenticate the request.",
                              f"The account being accessed ({account}) does not match the account in the Authorization header ({name}).")
        date = req.header("x-ms-date") or req.header("date")
        try:
            skew = abs(time.time() - parsedate_to_datetime(date).timestamp()) if date else None
        except (TypeError, ValueError):
            skew = None
        if skew is None or skew > 15 * 60:
            return self.error(req, 403, "AuthenticationFailed", "Server failed to authenticate the request.",
                              "Request date header (x-ms-date) is missing, malformed or too old.")
        candidates = {req.raw_path}
        for path in candidates:
            sts = self._string_to_sign(req, account, path)
            for key in keys:
                digest = hmac.new(base64.b64decode(key), sts.encode("utf-8"), hashlib.sha256).digest()
                if hmac.compare_digest(base64.b64encode(digest).decode(), signature):
                    return None
        sts = self._string_to_sign(req, account, req.raw_path)
        return self.error(req, 403, "AuthenticationFailed",
                          "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
                          f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed signature. "
                          f"Server used following string to sign: '{sts}'.")

    def _fault(self, req: Request) -> Response | None:
        rule = self.d.faults.take(("throttle", "error"), req.method, req.target)
        if rule is None:
            return None
        if rule.kind == "throttle":
            ra = rule.args["retry_after"]
            return self.error(req, 429, "TooManyRequests", "The request is being throttled.",
                              extra={"Retry-After": str(int(ra)) if float(ra).is_integer() else str(ra)})
        status = rule.args["status"]
        code = rule.args.get("code") or {503: "ServerBusy", 500: "InternalError", 502: "ServerBusy", 504: "OperationTimedOut"}.get(status, "InternalError")
        msg = {"ServerBusy": "The server is busy.", "InternalError": "The server encountered an internal error. Please retry the request.",
               "OperationTimedOut": "The operation could not be completed within the permitted time."}.get(code, "Injected fault.")
        extra = {"Retry-After": str(rule.args["retry_after"])} if rule.args.get("retry_after") is not None else {}
        return self.error(req, status, code, msg, extra=extra)

    # -- dispatch --------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        segments = req.raw_path.lstrip("/").split("/")
        account = segments[0]
        if account.lower() not in self.accounts:
            return self.error(req, 400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        denied = self._check_auth(req, account)
        if denied is not None:
            return denied
        fault = self._fault(req)
        if fault is not None:
            return fault
        from urllib.parse import unquote

        rest = [unquote(s) for s in segments[1:] if s != ""]
        restype, comp = (req.q("restype") or "").lower(), (req.q("comp") or "").lower()
        if not rest:
            if comp == "list":
                return self.list_shares(req, account)
            if restype == "service" and comp == "properties":
                return Response(200, self._headers({"Content-Type": "application/xml"}),
                                b'<?xml version="1.0" encoding="utf-8"?><StorageServiceProperties></StorageServiceProperties>')
            return self.error(req, 400, "InvalidQueryParameterValue", "Value for one of the query parameters specified in the request URI is invalid.")
        share, path = rest[0].lower(), "/".join(rest[1:])
        with self._lock:
            if restype == "share":
                return self.share_op(req, account, share, comp)
            if (account.lower(), share) not in self.shares:
                return self.error(req, 404, "ShareNotFound", "The specified share does not exist.")
            if restype == "directory":
                if comp == "list":
                    return self.list_dir(req, account, share, path)
                return self.dir_op(req, account, share, path, comp)
            if not path:
                return self.error(req, 400, "InvalidUri", "The requested URI does not represent any resource on the server.")
            return self.file_op(req, account, share, path, comp)

    # -- service / share -------------------------------------------------------------------------------
    def list_shares(self, req: Request, account: str) -> Response:
        names = sorted(s for a, s in self.shares if a == account.lower())
        prefix = req.q("prefix") or ""
        items = "".join(
            f"<Share><Name>{escape(n)}</Name><Properties><Last-Modified>{_http_date(self.shares[(account.lower(), n)]['last_modified'])}"
            f"</Last-Modified><Etag>{self.shares[(account.lower(), n)]['etag']}</Etag><Quota>{self.shares[(account.lower(), n)]['quota']}</Quota>"
            f"</Properties></Share>" for n in names if n.startswith(prefix))
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{self.d.file_endpoint(account)}">'
                f"<Prefix>{escape(prefix)}</Prefix><Shares>{items}</Shares><NextMarker /></EnumerationResults>")
        return Response(200, self._headers({"Content-Type": "application/xml"}), body.encode())

    def share_op(self, req: Request, account: str, share: str, comp: str) -> Response:
        key = (account.lower(), share)
        info = self.shares.get(key)
        if req.method == "PUT" and comp == "":
            quota = int(req.header("x-ms-share-quota") or 5120)
            if not self.ensure_share(account, share, quota):
                return self.error(req, 409, "ShareAlreadyExists", "The specified share already exists.")
            self.set_share_metadata(account, share, _meta_headers(req))
            self._arm_share(account, share, quota)
            info = self.shares[key]
            return Response(201, self._headers({"ETag": info["etag"], "Last-Modified": _http_date(info["last_modified"])}))
        if info is None:
            return self.error(req, 404, "ShareNotFound", "The specified share does not exist.")
        if req.method == "PUT" and comp == "metadata":
            info["metadata"] = _meta_headers(req)
            return Response(200, self._headers({"ETag": info["etag"], "Last-Modified": _http_date(info["last_modified"])}))
        if req.method in ("GET", "HEAD") and comp in ("", "metadata"):
            return Response(200, self._headers({**{f"x-ms-meta-{k}": v for k, v in (info.get("metadata") or {}).items()},
                                                "ETag": info["etag"], "Last-Modified": _http_date(info["last_modified"]),
                                                "x-ms-share-quota": str(info["quota"]), "x-ms-access-tier": "TransactionOptimized",
                                                "x-ms-enabled-protocols": "SMB", "x-ms-lease-status": "unlocked",
                                                "x-ms-lease-state": "available"}))
        if req.method == "DELETE" and comp == "":
            self.drop_share(account, share)
            rid = self._arm_share_id(account, share)
            if rid:
                self.d.state.delete(rid)
            return Response(202, self._headers())
        if req.method == "PUT" and comp == "properties":
            if req.header("x-ms-share-quota"):
                info["quota"] = int(req.header("x-ms-share-quota"))
            return Response(200, self._headers({"ETag": info["etag"], "Last-Modified": _http_date(info["last_modified"])}))
        return self.error(req, 400, "UnsupportedHttpVerb", f"The double does not implement {req.method} restype=share comp={comp}.")

    def _arm_share_id(self, account: str, share: str) -> str | None:
        for acct in self.d.state.of_type("Microsoft.Storage/storageAccounts"):
            if acct["name"].lower() == account.lower():
                return f"{acct['id']}/fileServices/default/shares/{share}"
        return None

    def _arm_share(self, account: str, share: str, quota: int) -> None:
        rid = self._arm_share_id(account, share)
        if rid and self.d.state.get(rid) is None:
            self.d.state.put(rid, {"id": rid, "name": share, "type": "Microsoft.Storage/storageAccounts/fileServices/shares",
                                   "etag": self.shares[(account.lower(), share)]["etag"],
                                   "properties": {"shareQuota": quota, "lastModifiedTime": _iso7(time.time()),
                                                  "accessTier": "TransactionOptimized", "enabledProtocols": "SMB"}})

    # -- directories -----------------------------------------------------------------------------------
    def _entry(self, account: str, share: str, path: str) -> dict | None:
        return self.props.get((account.lower(), share, path))

    def _parent_ok(self, account: str, share: str, path: str) -> bool:
        parent = path.rpartition("/")[0]
        p = self._entry(account, share, parent)
        return p is not None and p["is_dir"]

    def _fs_headers(self, p: dict) -> dict:
        return {"ETag": p["etag"], "Last-Modified": _http_date(p["last_modified"]), "x-ms-request-server-encrypted": "true",
                "x-ms-file-permission-key": "4066528134148476695*1", "x-ms-file-attributes": p["attributes"],
                "x-ms-file-creation-time": _iso7(p["creation_time"]), "x-ms-file-last-write-time": _iso7(p["last_write_time"]),
                "x-ms-file-change-time": _iso7(p["change_time"]), "x-ms-file-id": p["file_id"], "x-ms-file-parent-id": "0"}

    def dir_op(self, req: Request, account: str, share: str, path: str, comp: str) -> Response:
        entry = self._entry(account, share, path)
        if req.method == "PUT" and comp == "":
            if entry is not None:
                return self.error(req, 409, "ResourceAlreadyExists", "The specified resource already exists.")
            if not self._parent_ok(account, share, path):
                return self.error(req, 404, "ParentNotFound", "The specified parent path does not exist.")
            p = self._new_props(True, time.time())
            p["metadata"] = _meta_headers(req)
            self.props[(account.lower(), share, path)] = p
            (self.share_dir(account, share) / path).mkdir(parents=True, exist_ok=True)
            return Response(201, self._headers(self._fs_headers(p)))
        if entry is None or not entry["is_dir"]:
            return self.error(req, 404, "ResourceNotFound", "The specified resource does not exist.")
        if req.method in ("GET", "HEAD") and comp in ("", "metadata"):
            h = self._fs_headers(entry)
            h["x-ms-server-encrypted"] = "true"
            for k, v in entry["metadata"].items():
                h[f"x-ms-meta-{k}"] = v
            return Response(200, self._headers(h))
        if req.method == "DELETE" and comp == "":
            if not path:
                return self.error(req, 400, "InvalidUri", "The share root cannot be deleted as a directory.")
            prefix = path + "/"
            if any(k[:2] == (account.lower(), share) and k[2].startswith(prefix) for k in self.props):
                return self.error(req, 409, "DirectoryNotEmpty", "The specified directory is not empty.")
            del self.props[(account.lower(), share, path)]
            shutil.rmtree(self.share_dir(account, share) / path, ignore_errors=True)
            return Response(202, self._headers())
        if req.method == "PUT" and comp == "metadata":
            entry["metadata"] = _meta_headers(req)
            return Response(200, self._headers({"ETag": entry["etag"]}))
        if req.method == "PUT" and comp == "properties":
            entry["change_time"] = time.time()
            return Response(200, self._headers(self._fs_headers(entry)))
        return self.error(req, 400, "UnsupportedHttpVerb", f"The double does not implement {req.method} restype=directory comp={comp}.")

    def list_dir(self, req: Request, account: str, share: str, path: str) -> Response:
        entry = self._entry(account, share, path)
        if entry is None or not entry["is_dir"]:
            return self.error(req, 404, "ResourceNotFound", "The specified resource does not exist.")
        prefix = req.q("prefix") or ""
        marker = req.q("marker") or ""
        maxresults = min(int(req.q("maxresults") or 5000), 5000)
        include = {x.strip().lower() for x in (req.q("include") or "").split(",") if x.strip()}
        base = (path + "/") if path else ""
        children = sorted((k[2][len(base):], v) for k, v in self.props.items()
                          if k[:2] == (account.lower(), share) and k[2].startswith(base) and k[2] != path
                          and "/" not in k[2][len(base):] and k[2][len(base):].startswith(prefix))
        children = [c for c in children if c[0] >= marker] if marker else children
        page, more = children[:maxresults], children[maxresults:]
        items = []
        for name, p in page:
            tag = "Directory" if p["is_dir"] else "File"
            props = "" if p["is_dir"] and not include else f"<Content-Length>{p['size']}</Content-Length>" if not p["is_dir"] else ""
            if "timestamps" in include:
                props += (f"<CreationTime>{_iso7(p['creation_time'])}</CreationTime><LastAccessTime>{_iso7(p['last_write_time'])}</LastAccessTime>"
                          f"<LastWriteTime>{_iso7(p['last_write_time'])}</LastWriteTime><ChangeTime>{_iso7(p['change_time'])}</ChangeTime>"
                          f"<Last-Modified>{_http_date(p['last_modified'])}</Last-Modified>")
            if "etag" in include:
                props += f"<Etag>{p['etag']}</Etag>"
            item = f"<{tag}><Name>{escape(name)}</Name><FileId>{p['file_id']}</FileId>"
            item += f"<Properties>{props}</Properties>" if props else "<Properties />"
            if "attributes" in include:
                item += f"<Attributes>{p['attributes']}</Attributes>"
            if "permissionkey" in include:
                item += "<PermissionKey>4066528134148476695*1</PermissionKey>"
            items.append(item + f"</{tag}>")
        endpoint = self.d.file_endpoint(account)
        body = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{endpoint}" ShareName="{escape(share)}" '
                f'DirectoryPath="{escape(path)}"><Prefix>{escape(prefix)}</Prefix>'
                + (f"<Marker>{escape(marker)}</Marker>" if marker else "")
                + (f"<MaxResults>{maxresults}</MaxResults>" if req.q("maxresults") else "")
                + f"<Entries>{''.join(items)}</Entries>"
                + (f"<NextMarker>{escape(more[0][0])}</NextMarker>" if more else "<NextMarker />")
                + f"<DirectoryId>{entry['file_id']}</DirectoryId></EnumerationResults>")
        return Response(200, self._headers({"Content-Type": "application/xml"}), body.encode("utf-8"))

    # -- files -----------------------------------------------------------------------------------------
    def _disk(self, account: str, share: str, path: str) -> Path:
        return self.share_dir(account, share) / path

    def file_op(self, req: Request, account: str, share: str, path: str, comp: str) -> Response:
        key = (account.lower(), share, path)
        entry = self.props.get(key)
        # Lease File (2019-02-02+): an infinite lease locks the file for write and delete; reads stay open
        if req.method == "PUT" and comp == "lease" and entry is not None and not entry["is_dir"]:
            return self.lease(req, entry)
        if req.method in ("PUT", "DELETE") and entry is not None and not entry["is_dir"]:
            refused = self._lease_refusal(req, entry)
            if refused is not None:
                return refused
        if req.method == "PUT" and comp == "" and req.header("x-ms-type", "").lower() == "file":
            return self.create_file(req, account, share, path, entry)
        if req.method == "PUT" and comp == "" and req.header("x-ms-copy-source"):
            return self.error(req, 400, "UnsupportedHeader", "Copy File is not implemented by the double.")
        if entry is None or entry["is_dir"]:
            if entry is None and not self._parent_ok(account, share, path):
                return self.error(req, 404, "ParentNotFound", "The specified parent path does not exist.")
            return self.error(req, 404, "ResourceNotFound", "The specified resource does not exist.")
        if req.method == "PUT" and comp == "range":
            return self.put_range(req, account, share, path, entry)
        if req.method == "PUT" and comp == "properties":
            return self.set_properties(req, account, share, path, entry)
        if req.method == "PUT" and comp == "metadata":
            entry["metadata"] = _meta_headers(req)
            entry["etag"] = self._etag()
            return Response(200, self._headers({"ETag": entry["etag"], "Last-Modified": _http_date(entry["last_modified"])}))
        if req.method == "HEAD" and comp == "":
            return Response(200, self._headers(self._file_headers(entry, entry["size"])))
        if req.method == "GET" and comp == "":
            return self.download(req, account, share, path, entry)
        if req.method == "GET" and comp == "rangelist":
            return self.range_list(req, entry)
        if req.method == "DELETE" and comp == "":
            del self.props[key]
            self._disk(account, share, path).unlink(missing_ok=True)
            return Response(202, self._headers())
        return self.error(req, 400, "UnsupportedHttpVerb", f"The double does not implement {req.method} comp={comp} on a file.")

    # -- Lease File ------------------------------------------------------------------------------------
    def lease(self, req: Request, entry: dict) -> Response:
        """acquire (x-ms-lease-duration -1 only: file leases are infinite), change, release, break."""
        action = (req.header("x-ms-lease-action") or "").lower()
        current, given = entry.get("lease_id"), req.header("x-ms-lease-id")
        proposed = req.header("x-ms-proposed-lease-id")
        if action == "acquire":
            if (req.header("x-ms-lease-duration") or "") != "-1":
                return self.error(req, 400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.",
                                  extra={"x-ms-invalid-header-name": "x-ms-lease-duration"})
            if current is not None and proposed != current:
                return self.error(req, 409, "LeaseAlreadyPresent", "There is already a lease present.")
            entry["lease_id"], entry["lease_state"] = proposed or str(uuid.uuid4()), "leased"
            return Response(201, self._headers({"ETag": entry["etag"], "Last-Modified": _http_date(entry["last_modified"]),
                                                "x-ms-lease-id": entry["lease_id"]}))
        if action in ("change", "release"):
            if not given:
                return self.error(req, 400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified.",
                                  extra={"x-ms-missing-header-name": "x-ms-lease-id"})
            if current is None:
                return self.error(req, 409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the file.")
            if given != current:
                return self.error(req, 409, "LeaseIdMismatchWithLeaseOperation",
                                  "The lease ID specified did not match the lease ID for the file.")
            if action == "change":
                if not proposed:
                    return self.error(req, 400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified.",
                                      extra={"x-ms-missing-header-name": "x-ms-proposed-lease-id"})
                entry["lease_id"] = proposed
                return Response(200, self._headers({"ETag": entry["etag"], "Last-Modified": _http_date(entry["last_modified"]),
                                                    "x-ms-lease-id": proposed}))
            entry["lease_id"], entry["lease_state"] = None, "available"
            return Response(200, self._headers({"ETag": entry["etag"], "Last-Modified": _http_date(entry["last_modified"])}))
        if action == "break":
            if current is None:
                return self.error(req, 409, "LeaseNotPresentWithLeaseOperation", "There is currently no lease on the file.")
            entry["lease_id"], entry["lease_state"] = None, "broken"  # an infinite lease breaks at once
            return Response(202, self._headers({"ETag": entry["etag"], "Last-Modified": _http_date(entry["last_modified"]),
                                                "x-ms-lease-time": "0"}))
        return self.error(req, 400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format.",
                          extra={"x-ms-invalid-header-name": "x-ms-lease-action"})

    def _lease_refusal(self, req: Request, entry: dict) -> Response | None:
        """A write or delete of a leased file needs its lease id; a lease id on an unleased file is refused too."""
        current, given = entry.get("lease_id"), req.header("x-ms-lease-id")
        if current is not None and not given:
            return self.error(req, 412, "LeaseIdMissing",
                              "There is currently a lease on the file and no lease ID was specified in the request.")
        if current is not None and given != current:
            return self.error(req, 412, "LeaseIdMismatchWithFileOperation",
                              "The lease ID specified did not match the lease ID for the file.")
        if current is None and given:
            return self.error(req, 412, "LeaseNotPresentWithFileOperation", "There is currently no lease on the file.")
        return None

    def _file_headers(self, p: dict, length: int) -> dict:
        h = self._fs_headers(p)
        state = p.get("lease_state", "available")
        h.update({"x-ms-type": "File", "Content-Length": str(length), "Content-Type": p["content_type"] or "application/octet-stream",
                  "x-ms-server-encrypted": "true", "x-ms-lease-state": state,
                  "x-ms-lease-status": "locked" if state == "leased" else "unlocked", "Accept-Ranges": "bytes"})
        if state == "leased":
            h["x-ms-lease-duration"] = "infinite"
        if p["content_md5"]:
            h["Content-MD5"] = base64.b64encode(p["content_md5"]).decode()
        for hdr, name in (("Content-Encoding", "content_encoding"), ("Content-Language", "content_language"),
                          ("Cache-Control", "cache_control"), ("Content-Disposition", "content_disposition")):
            if p[name]:
                h[hdr] = p[name]
        for k, v in p["metadata"].items():
            h[f"x-ms-meta-{k}"] = v
        return h

    def _set_content_settings(self, req: Request, p: dict) -> Response | None:
        for hdr, name in CONTENT_PROPS.items():
            p[name] = req.header(hdr) or None
        md5 = req.header("x-ms-content-md5")
        if md5:
            try:
                p["content_md5"] = base64.b64decode(md5, validate=True)
            except ValueError:
                return self.error(req, 400, "InvalidHeaderValue", "The value for the header x-ms-content-md5 is not valid base64.")
        else:
            p["content_md5"] = None
        return None

    def create_file(self, req: Request, account: str, share: str, path: str, entry: dict | None) -> Response:
        if entry is not None and entry["is_dir"]:
            return self.error(req, 409, "ResourceTypeMismatch", "The specified resource type does not match the type of the existing resource.")
        if not self._parent_ok(account, share, path):
            return self.error(req, 404, "ParentNotFound", "The specified parent path does not exist.")
        try:
            size = int(req.header("x-ms-content-length") or "")
        except ValueError:
            return self.error(req, 400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not specified: x-ms-content-length.")
        now = time.time()
        p = self._new_props(False, now)
        if entry is not None:
            p["file_id"], p["creation_time"] = entry["file_id"], entry["creation_time"]
            p["lease_id"], p["lease_state"] = entry.get("lease_id"), entry.get("lease_state", "available")
        bad = self._set_content_settings(req, p)
        if bad:
            return bad
        p["content_type"] = p["content_type"] or "application/octet-stream"
        p["metadata"] = _meta_headers(req)
        p["size"] = size
        disk = self._disk(account, share, path)
        disk.parent.mkdir(parents=True, exist_ok=True)
        with open(disk, "wb") as f:   # Create File (re)initialises the file: `size` zero bytes
            f.truncate(size)
        self.props[(account.lower(), share, path)] = p
        return Response(201, self._headers(self._fs_headers(p)))

    def _range(self, req: Request) -> tuple[int, int] | None | str:
        value = req.header("x-ms-range") or req.header("range")
        if not value:
            return None
        try:
            unit, _, spec = value.partition("=")
            start_s, _, end_s = spec.partition("-")
            if unit.strip() != "bytes":
                raise ValueError
            return int(start_s), (int(end_s) if end_s else -1)
        except ValueError:
            return "bad"

    def put_range(self, req: Request, account: str, share: str, path: str, entry: dict) -> Response:
        rng = self._range(req)
        if rng is None or rng == "bad" or rng[1] < rng[0]:
            return self.error(req, 400, "InvalidRange" if rng else "MissingRequiredHeader", "The range specified is invalid for the current size of the resource.")
        start, end = rng
        write = (req.header("x-ms-write") or "").lower()
        length = end - start + 1
        if end >= entry["size"]:
            return self.error(req, 416, "InvalidRange", "The range specified is invalid for the current size of the resource.")
        if write == "update":
            if length > MAX_RANGE:
                return self.error(req, 413, "RequestBodyTooLarge", "The request body is too large and exceeds the maximum permissible limit.")
            if len(req.body) != length:
                return self.error(req, 400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the correct format (Content-Length does not match the range).")
            md5 = req.header("content-md5")
            if md5 and base64.b64decode(md5) != hashlib.md5(req.body).digest():
                return self.error(req, 400, "Md5Mismatch", "The MD5 value specified in the request did not match with the MD5 value calculated by the server.")
            data = req.body
        elif write == "clear":
            if req.body:
                return self.error(req, 400, "InvalidHeaderValue", "Content-Length must be 0 for x-ms-write: clear.")
            data = b"\0" * length
        else:
            return self.error(req, 400, "InvalidHeaderValue", "The value for the header x-ms-write is not valid.")
        with open(self._disk(account, share, path), "r+b") as f:
            f.seek(start)
            f.write(data)
        now = time.time()
        entry.update(etag=self._etag(), last_modified=now, last_write_time=now, change_time=now)
        h = {"ETag": entry["etag"], "Last-Modified": _http_date(now), "x-ms-request-server-encrypted": "true",
             "x-ms-file-last-write-time": _iso7(now)}
        if write == "update":
            h["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        return Response(201, self._headers(h))

    def set_properties(self, req: Request, account: str, share: str, path: str, entry: dict) -> Response:
        bad = self._set_content_settings(req, entry)
        if bad:
            return bad
        if req.header("x-ms-content-length"):
            size = int(req.header("x-ms-content-length"))
            with open(self._disk(account, share, path), "r+b") as f:
                f.truncate(size)
            entry["size"] = size
        now = time.time()
        entry.update(etag=self._etag(), last_modified=now, change_time=now)
        return Response(200, self._headers(self._fs_headers(entry)))

    def download(self, req: Request, account: str, share: str, path: str, entry: dict) -> Response:
        size = entry["size"]
        rng = self._range(req)
        if rng == "bad":
            return self.error(req, 400, "InvalidRange", "The range specified is invalid.")
        with open(self._disk(account, share, path), "rb") as f:
            if rng is None:
                data = f.read()
                h = self._file_headers(entry, len(data))
                return Response(200, self._headers(h), data)
            start, end = rng
            if start >= size:
                return self.error(req, 416, "InvalidRange", "The range specified is invalid for the current size of the resource.",
                                  extra={"Content-Range": f"bytes */{size}"})
            end = size - 1 if end < 0 or end >= size else end
            f.seek(start)
            data = f.read(end - start + 1)
        h = self._file_headers(entry, len(data))
        h.pop("Content-MD5", None)
        h["Content-Range"] = f"bytes {start}-{end}/{size}"
        if entry["content_md5"]:
            h["x-ms-content-md5"] = base64.b64encode(entry["content_md5"]).decode()
        if (req.header("x-ms-range-get-content-md5") or "").lower() == "true":
            if len(data) > MAX_RANGE:
                return self.error(req, 400, "OutOfRangeInput", "The range for x-ms-range-get-content-md5 must be 4 MiB or less.")
            h["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
        return Response(206, self._headers(h), data)

    def range_list(self, req: Request, entry: dict) -> Response:
        body = '<?xml version="1.0" encoding="utf-8"?><Ranges>'
        if entry["size"]:
            body += f"<Range><Start>0</Start><End>{entry['size'] - 1}</End></Range>"
        body += "</Ranges>"
        return Response(200, self._headers({"Content-Type": "application/xml", "ETag": entry["etag"],
                                            "Last-Modified": _http_date(entry["last_modified"]),
                                            "x-ms-content-length": str(entry["size"])}), body.encode())
