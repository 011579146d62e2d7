"""The Azure test double: one loopback HTTPS server for ARM (Microsoft.Resources, Microsoft.Storage,
Microsoft.App), the Azure Files data plane (path-style: https://127.0.0.1:PORT/<account>/<share>/...)
and the container apps' log streams; one extra HTTPS listener per container app plays its ingress."""
from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from azure.core.credentials import AccessToken, AccessTokenInfo

from .access import Access
from .faults import Faults
from .httpserver import HTTPSServer, Hooks, Request, Response
from .tls import tls_material


class LoggedRequest(tuple):
    """(method, target, status); target is path?query as sent. status 0 = connection dropped."""

    def __new__(cls, method: str, target: str, status: int, bytes_in: int = 0, kind: str = ""):
        self = super().__new__(cls, (method, target, status))
        self.bytes_in = bytes_in
        self.kind = kind          # "arm", "files", "logstream", "other"
        return self

    method = property(lambda self: self[0])
    path = property(lambda self: self[1])
    status = property(lambda self: self[2])


class DoubleCredential:
    """An azure-core TokenCredential whose tokens the double accepts (a fresh one after
    `AzureDouble.expire_tokens()`, as a new sign-in would give)."""

    def __init__(self, access: "Access", tenant_id: str):
        self._access = access
        self.tenant_id = tenant_id
        self.calls = 0

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.calls += 1
        token = self._access.current()
        return AccessToken(token.value, int(token.expires))

    def get_token_info(self, *scopes: str, options: dict | None = None) -> AccessTokenInfo:
        self.calls += 1
        token = self._access.current()
        return AccessTokenInfo(token.value, int(token.expires))

    def close(self) -> None:
        pass


def now_iso(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


@dataclass
class AsyncOp:
    """An ARM async operation: status from `status_fn()` ("InProgress"/"Succeeded"/"Failed", error)."""

    id: str
    status_fn: Callable[[], tuple[str, dict | None]]
    location_body: Callable[[], tuple[int, Any]] | None = None


class State:
    """Introspection for tests: what the double holds."""

    def __init__(self, double: "AzureDouble"):
        self._d = double
        self.resources: dict[str, dict] = {}      # id -> ARM JSON body as GET returns it
        self.specs: dict[str, dict] = {}          # lower id -> what was PUT (evaluated, with secrets)
        self.keys: dict[str, list[str]] = {}      # storage account / workspace name (lower) -> keys
        self.app_secrets: dict[str, dict[str, str]] = {}   # app id lower -> {secret name: value}
        self.logs: dict[str, list] = {}           # app name -> [LogLine] (console output, logstream.py)
        self.lock = threading.RLock()

    # -- resources ---------------------------------------------------------------------------------
    def get(self, resource_id: str) -> dict | None:
        with self.lock:
            key = resource_id.lower().rstrip("/")
            for rid, body in self.resources.items():
                if rid.lower() == key:
                    return body
        return None

    def put(self, resource_id: str, body: dict) -> None:
        """Store a resource as GET returns it (the providers' rules are in resources.py: use
        AzureDouble.mgmt.resources.apply to create one as a PUT would)."""
        with self.lock:
            for rid in list(self.resources):
                if rid.lower() == resource_id.lower():
                    del self.resources[rid]
            self.resources[resource_id] = body

    def delete(self, resource_id: str) -> bool:
        with self.lock:
            found = False
            prefix = resource_id.lower().rstrip("/") + "/"
            for rid in list(self.resources):
                if rid.lower() == resource_id.lower() or rid.lower().startswith(prefix):
                    del self.resources[rid]
                    self.specs.pop(rid.lower(), None)
                    found = True
            return found

    def of_type(self, rtype: str, resource_group: str | None = None) -> list[dict]:
        with self.lock:
            return [b for b in self.resources.values() if b.get("type", "").lower() == rtype.lower()
                    and (resource_group is None or f"/resourcegroups/{resource_group.lower()}/" in b["id"].lower())]

    # -- storage -----------------------------------------------------------------------------------
    def account_key(self, account: str) -> str:
        """key1 of a storage account (the secret a test looks for in outputs and files)."""
        return self.keys[account.lower()][0]

    def account_keys(self, account: str) -> list[str]:
        return list(self.keys[account.lower()])

    def secret_strings(self) -> list[str]:
        """Every secret the double has handed out: account keys, workspace keys, app secrets,
        auth tokens, the bearer token."""
        out = [t.value for t in self._d.access.tokens.values()] + [self._d.identity_header]
        for ks in self.keys.values():
            out += ks
        for s in self.app_secrets.values():
            out += [v for v in s.values() if v]
        out += list(self._d.apps.auth_tokens)
        return out

    def share_path(self, account: str, share: str) -> Path:
        """The folder on disk that holds the share's files (the container's /mount)."""
        return self._d.files.share_dir(account, share)

    def files(self, account: str, share: str) -> dict[str, bytes]:
        """{path relative to the share: content} of every file in the share."""
        return self._d.files.read_all(account, share)

    def file_md5(self, account: str, share: str, path: str) -> str:
        """MD5 (hex) of the bytes actually stored (not the Content-MD5 property)."""
        return hashlib.md5(self._d.files.read_file(account, share, path)).hexdigest()

    def file_properties(self, account: str, share: str, path: str) -> dict:
        """Stored properties: size, content_md5 (bytes or None), content_type, etag, last_modified, ..."""
        return dict(self._d.files.meta(account, share, path))

    def add_log(self, app: str, line: str) -> None:
        """A line the container app's container writes (its replica's console log stream serves it)."""
        self._d.apps.logs.console(app, line)

    def write_logs(self, app: str, *, interval: float, count: int, prefix: str = "line") -> threading.Thread:
        """A container that keeps writing numbered lines in the background (see LogStreams.start_writer)."""
        return self._d.apps.logs.start_writer(app, interval=interval, count=count, prefix=prefix)


class AzureDouble(Hooks):
    def __init__(self, root: Path, *, subscription_id: str | None = None, tenant_id: str | None = None,
                 location: str = "eastus"):
        from .apps import Apps
        from .files import FileService
        from .mgmt import Management

        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.subscription_id = subscription_id or str(uuid.uuid4())
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.default_location = location
        self.access = Access(self.tenant_id)
        self.token = self.access.first_token         # the token DoubleCredential first hands out
        self.credential = DoubleCredential(self.access, self.tenant_id)
        self.identity_header = secrets.token_hex(16)
        self.ca_bundle, self._ssl = tls_material()
        self.faults = Faults()
        self.state = State(self)
        self.requests: list[LoggedRequest] = []
        self._latency = 0.0
        self._lock = threading.Lock()
        # timings (seconds); small so tests are fast
        self.poll_delay = 0.05          # sent as Retry-After (integer seconds) or x-ms-retry-after-ms
        self.resource_seconds = 0.05    # per resource in a deployment
        self.operation_seconds = 0.1    # an async operation (delete, app update, ...)
        self.activation_seconds = 0.3   # a revision's "Activating" phase after create/restart
        self.log_follow_seconds = 2.0   # how long a followed log stream stays open without new lines
        self.ops: dict[str, AsyncOp] = {}
        self.subscriptions = [{"subscriptionId": self.subscription_id, "displayName": "Azure test double",
                               "tenantId": self.tenant_id, "state": "Enabled"}]
        self.server = HTTPSServer(self, self._ssl)
        self.port = self.server.port
        self.arm_endpoint = f"https://127.0.0.1:{self.port}"
        self.files = FileService(self)
        self.apps = Apps(self)
        self.mgmt = Management(self)
        self._stopped = threading.Event()
        self.server.start()

    # -- public API --------------------------------------------------------------------------------
    def latency(self, seconds: float | None = None) -> float:
        """`latency(s)` sets a delay added to every request (data plane and ARM); `latency()` reads it."""
        if seconds is not None:
            self._latency = float(seconds)
        return self._latency

    def environment(self) -> dict[str, str]:
        """What a toolkit process needs to use the double as Azure with the real DefaultAzureCredential
        (its managed-identity branch): ARM endpoint, TLS trust, identity endpoint."""
        return {"AITK_ARM_ENDPOINT": self.arm_endpoint, "AITK_CA_BUNDLE": self.ca_bundle,
                "IDENTITY_ENDPOINT": f"{self.arm_endpoint}/msi/token", "IDENTITY_HEADER": self.identity_header}

    def client_ssl_context(self):
        """An ssl.SSLContext trusting the double's CA (for httpx: `verify=double.client_ssl_context()`)."""
        import ssl

        return ssl.create_default_context(cafile=self.ca_bundle)

    def file_endpoint(self, account: str) -> str:
        return f"{self.arm_endpoint}/{account}/"

    def set_app_upstream(self, app: str, url: str | None) -> None:
        """Send the app's ingress traffic to a real server (e.g. the inference app run from the share
        folder) instead of the built-in stand-in."""
        self.apps.upstreams[app] = url

    def run_replicas(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        """From now on, each revision runs for real: the container's command over the share's folder,
        behind the app's ingress (see replicas.py). `python` runs the server (default: this one)."""
        import sys

        from .replicas import ReplicaRunner

        self.apps.runner = ReplicaRunner(self.apps, python or sys.executable, env)

    def set_quota(self, name: str, limit: float, current: float = 0, location: str | None = None) -> None:
        """Set a Microsoft.App usage limit, e.g. set_quota("ManagedEnvironmentConsumptionT4Gpus", 0); `current`
        is what the rest of the subscription uses (the double adds what its own apps' replicas hold)."""
        self.mgmt.environments.set_quota(name, limit, current, location)

    def deny(self, action: str) -> None:
        """Refuse an action to the caller: 403 AuthorizationFailed, as Azure RBAC does (access.py), e.g.
        deny("Microsoft.App/containerApps/listSecrets/action"); fnmatch patterns allowed."""
        self.access.deny(action)

    def allow(self, action: str | None = None) -> None:
        """Lift a denial made with deny() (all of them without an argument)."""
        self.access.allow(action)

    def expire_tokens(self) -> None:
        """Every bearer token handed out so far is refused from now on: 401 ExpiredAuthenticationToken."""
        self.access.expire_tokens()

    def uploaded_bytes(self) -> int:
        """Body bytes received by Azure Files Put Range requests."""
        return sum(r.bytes_in for r in self.requests if r.kind == "files" and r[0] == "PUT" and "comp=range" in r[1])

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.apps.close()
        self.server.stop()

    stopped = property(lambda self: self._stopped)

    # -- Hooks ---------------------------------------------------------------------------------------
    def reset_after(self, method: str, target: str) -> int | None:
        rule = self.faults.take(("reset",), method, target)
        return None if rule is None else int(rule.args["after_bytes"])

    def logged(self, request, method, target, status, bytes_in) -> None:
        with self._lock:
            self.requests.append(LoggedRequest(method, target, status, bytes_in, self._kind(target)))

    def _kind(self, target: str) -> str:
        first = target.lstrip("/").split("/", 1)[0].split("?")[0].lower()
        if first in ("subscriptions", "providers", "tenants"):
            return "arm"
        if first == "logstream":
            return "logstream"
        if first in self.files.accounts:
            return "files"
        return "other"

    def handle(self, req: Request) -> Response:
        try:
            kind = self._kind(req.target)
            if kind == "files" or (req.header("authorization") or "").startswith("SharedKey "):
                return self.files.handle(req)
            if kind == "logstream":
                return self.apps.logs.handle(req)
            return self.mgmt.handle(req)
        except Exception as e:  # never die of a request: answer 500 like a service would
            import traceback

            traceback.print_exc()
            return self.mgmt.error(500, "InternalServerError", f"test double error: {type(e).__name__}: {e}")

    # -- helpers for the modules ---------------------------------------------------------------------
    def retry_headers(self) -> dict[str, str]:
        d = self.poll_delay
        if d >= 1 and float(d).is_integer():
            return {"Retry-After": str(int(d))}
        return {"x-ms-retry-after-ms": str(max(1, int(d * 1000)))}

    def new_op(self, status_fn, location_body=None) -> AsyncOp:
        op = AsyncOp(str(uuid.uuid4()), status_fn, location_body)
        self.ops[op.id] = op
        return op

    def timed_op(self, seconds: float | None = None, on_done: Callable[[], None] | None = None,
                 result: Callable[[], tuple[int, Any]] | None = None) -> AsyncOp:
        """An operation that completes (running `on_done` once) after `seconds`."""
        done_at = time.monotonic() + (self.operation_seconds if seconds is None else seconds)
        fired = threading.Event()
        lock = threading.Lock()

        def status():
            if time.monotonic() < done_at:
                return "InProgress", None
            with lock:
                if not fired.is_set():
                    fired.set()
                    if on_done:
                        on_done()
            return "Succeeded", None

        return self.new_op(status, result)

    def op_urls(self, op: AsyncOp, api_version: str) -> dict[str, str]:
        base = f"{self.arm_endpoint}/subscriptions/{self.subscription_id}"
        return {"Azure-AsyncOperation": f"{base}/providers/Microsoft.Resources/operationStatuses/{op.id}?api-version={api_version}",
                "Location": f"{base}/operationresults/{op.id}?api-version={api_version}"}
