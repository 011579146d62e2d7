"""Microsoft.App container apps: the app resource (secrets kept apart, as ARM never returns their
values on GET), revisions with a short "Activating" phase after create/restart, replicas, auth
tokens, the log stream (plain-text lines) and an HTTPS ingress per app (a stand-in that answers
/health, or a proxy to a real server set with AzureDouble.set_app_upstream)."""
from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from .httpserver import DropConnection, HTTPSServer, Hooks, Request, Response
from .mgmt import ResourceFailure

if TYPE_CHECKING:
    from .double import AzureDouble

API_KEY_ENV = "AITK_API_KEY"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


@dataclass
class Revision:
    name: str
    template: dict
    created: float
    ready_at: float
    active: bool = True
    restarts: int = 0
    replica_suffix: str = field(default_factory=lambda: secrets.token_hex(4))


@dataclass
class AppRecord:
    id: str
    rg: str
    name: str
    revisions: list[Revision] = field(default_factory=list)
    ingress: HTTPSServer | None = None
    stopped: bool = False
    deleted: bool = False


class Apps:
    def __init__(self, double: "AzureDouble"):
        self.d = double
        self.records: dict[str, AppRecord] = {}          # app id lower -> record
        self.auth_tokens: dict[str, tuple[str, float]] = {}  # token -> (app id lower, expires)
        self.upstreams: dict[str, str | None] = {}       # app name -> URL of a real server
        self.runner = None                                # a ReplicaRunner: real processes (run_replicas)
        self._lock = threading.RLock()

    @property
    def m(self):
        return self.d.mgmt

    # -- resource ----------------------------------------------------------------------------------
    def apply_app(self, rg: str, body: dict, props: dict, existing: dict | None, spec: dict) -> None:
        env_id = props.get("managedEnvironmentId") or props.get("environmentId")
        env = self.d.state.get(env_id or "")
        if env is None:
            raise ResourceFailure("ManagedEnvironmentNotFound", f"Managed environment '{env_id}' was not found.", 404)
        profiles = {p.get("name") for p in env["properties"].get("workloadProfiles", [])}
        wp = props.get("workloadProfileName")
        if wp and wp not in profiles:
            raise ResourceFailure("WorkloadProfileNameNotFound", f"Workload profile '{wp}' is not defined in managed environment '{env['name']}'.")
        config = props.setdefault("configuration", {})
        secret_values = {s["name"]: s.get("value") for s in config.get("secrets") or []}
        if existing is not None and config.get("secrets") is None:
            secret_values = dict(self.d.state.app_secrets.get(body["id"].lower(), {}))
        template = props.get("template") or {}
        for c in template.get("containers", []):
            for e in c.get("env", []) or []:
                if "secretRef" in e and e["secretRef"] not in secret_values:
                    raise ResourceFailure("ContainerAppSecretRefNotFound",
                                          f"Container '{c.get('name')}' env '{e.get('name')}' refers to secret '{e['secretRef']}', which is not defined.")
        storages = {s["name"].lower() for s in self.d.state.of_type("Microsoft.App/managedEnvironments/storages")
                    if s["id"].lower().startswith(env["id"].lower() + "/")}
        for v in template.get("volumes", []) or []:
            if v.get("storageType") == "AzureFile" and str(v.get("storageName", "")).lower() not in storages:
                raise ResourceFailure("ManagedEnvironmentStorageNotFound",
                                      f"Volume '{v.get('name')}' refers to environment storage '{v.get('storageName')}', which does not exist.")
        self.d.state.app_secrets[body["id"].lower()] = secret_values
        now = time.time()
        with self._lock:
            rec = self.records.get(body["id"].lower())
            if rec is None:
                rec = self.records[body["id"].lower()] = AppRecord(body["id"], rg, body["name"])
            rec.deleted = False
            latest = rec.revisions[-1] if rec.revisions else None
            if latest is None or latest.template != template:
                rev = Revision(f"{body['name']}--{secrets.token_hex(4)[:7]}", copy.deepcopy(template), now,
                               now + self.d.activation_seconds)
                if (config.get("activeRevisionsMode") or "Single").lower() == "single":
                    for old in rec.revisions:
                        old.active = False
                rec.revisions.append(rev)
                self._startup_logs(rec, rev)
                if self.runner is not None:
                    self.runner.start(rec, rev)
            if rec.ingress is None and config.get("ingress"):
                rec.ingress = HTTPSServer(_Ingress(self, rec), self.d._ssl).start()
        ingress = config.get("ingress")
        if ingress is not None:
            ingress["fqdn"] = f"127.0.0.1:{rec.ingress.port}"
            ingress.setdefault("traffic", [{"weight": 100, "latestRevision": True}])
        props.update({"provisioningState": "Succeeded", "managedEnvironmentId": env["id"], "environmentId": env["id"],
                      "outboundIpAddresses": ["127.0.0.1"], "customDomainVerificationId": secrets.token_hex(32).upper(),
                      "eventStreamEndpoint": f"{self.d.arm_endpoint}/logstream{body['id']}/eventstream"})
        self._refresh_props(rec, props)

    def internal_view(self, body: dict) -> dict:
        if body.get("type", "").lower() == "microsoft.app/containerapps":
            rec = self.records.get(body["id"].lower())
            if rec is not None:
                self._refresh_props(rec, body["properties"])
        return body

    def _refresh_props(self, rec: AppRecord, props: dict) -> None:
        latest = rec.revisions[-1]
        ready = [r for r in rec.revisions if self.revision_state(rec, r)[1] == "Healthy"]
        props["latestRevisionName"] = latest.name
        props["latestRevisionFqdn"] = (props.get("configuration", {}).get("ingress") or {}).get("fqdn", "")
        props["latestReadyRevisionName"] = ready[-1].name if ready else None
        props["runningStatus"] = "Stopped" if rec.stopped else "Running"

    def revision_state(self, rec: AppRecord, rev: Revision) -> tuple[str, str, str]:
        """(runningState, healthState, details)."""
        if rec.stopped or not rev.active:
            return "Stopped", "None", ""
        now = time.time()
        if now < rev.ready_at:
            return "Activating", "None", "Waiting for the startup probe."
        if self.runner is not None and rev is rec.revisions[-1] and self.runner.exited(rec.name):
            return "Degraded", "Unhealthy", "Container 'inference' exited; the replica is restarting (CrashLoopBackOff)."
        if self.d.faults.is_never_healthy(rec.name):
            if now < rev.ready_at + 2 * self.d.activation_seconds:
                return "Activating", "Unhealthy", "Startup probe failed: HTTP probe failed with statuscode: 503"
            return "Degraded", "Unhealthy", "Deployment Progress Deadline Exceeded. 0/1 replicas ready."
        return "Running", "Healthy", ""

    def _startup_logs(self, rec: AppRecord, rev: Revision) -> None:
        add = self.d.state.add_log
        add(rec.name, f"Connecting to the container 'inference' of revision {rev.name}...")
        add(rec.name, "Successfully Connected to container: 'inference'")
        if self.runner is not None:
            return  # the real process's output follows
        if self.d.faults.is_never_healthy(rec.name):
            add(rec.name, "Traceback (most recent call last): RuntimeError: model failed to load (injected)")
            add(rec.name, "Startup probe failed: HTTP probe failed with statuscode: 503")
        else:
            add(rec.name, "INFO:     Started server process [1]")
            add(rec.name, "INFO:     Uvicorn running on http://0.0.0.0:7860 (Press CTRL+C to quit)")

    def _record(self, rg: str, app: str) -> AppRecord | None:
        rid = f"/subscriptions/{self.d.subscription_id}/resourceGroups/{rg}/providers/Microsoft.App/containerApps/{app}".lower()
        rec = self.records.get(rid)
        return None if rec is None or rec.deleted else rec

    def _app(self, rg: str, app: str):
        rec = self._record(rg, app)
        if rec is None:
            return None, self.m.error(404, "ResourceNotFound", f"The Resource 'Microsoft.App/containerApps/{app}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix")
        return rec, None

    def forget(self, body: dict) -> None:
        rec = self.records.get(body["id"].lower())
        if rec is not None:
            rec.deleted = True
            if self.runner is not None:
                self.runner.stop(rec.name)
            if rec.ingress is not None:
                rec.ingress.stop()
                rec.ingress = None
        self.d.state.app_secrets.pop(body["id"].lower(), None)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        for rec in list(self.records.values()):
            if rec.ingress is not None:
                rec.ingress.stop()
                rec.ingress = None

    # -- routes --------------------------------------------------------------------------------------
    def get_app(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        return self.m.json(200, self.internal_view(self.d.state.get(rec.id)))

    def list_apps(self, req: Request, sub: str, rg: str) -> Response:
        return self.m.json(200, {"value": [self.internal_view(b) for b in self.d.state.of_type("Microsoft.App/containerApps", rg)]})

    def put_app(self, req: Request, sub: str, rg: str, app: str) -> Response:
        body = self.m.body(req)
        existed = self._record(rg, app) is not None
        try:
            created = self.m.deployments.apply(rg, {"type": "Microsoft.App/containerApps", "name": app, **body})
        except ResourceFailure as e:
            return self.m.error(e.status, e.code, e.message)
        created = copy.deepcopy(created)
        created["properties"]["provisioningState"] = "InProgress"
        op = self.d.timed_op()
        urls = self.d.op_urls(op, req.q("api-version"))
        return self.m.json(200 if existed else 201, created, {"Azure-AsyncOperation": urls["Azure-AsyncOperation"], **self.d.retry_headers()})

    def patch_app(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        patch = self.m.body(req)
        spec = copy.deepcopy(self.d.state.specs.get(rec.id.lower()) or {})
        merged = _merge(spec, patch)
        try:
            self.m.deployments.apply(rg, {"type": "Microsoft.App/containerApps", "name": rec.name, **merged})
        except ResourceFailure as e:
            return self.m.error(e.status, e.code, e.message)
        op = self.d.timed_op(result=lambda: (200, self.internal_view(self.d.state.get(rec.id))))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def delete_app(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec = self._record(rg, app)
        if rec is None:
            return self.m.json(204)
        body = self.d.state.get(rec.id)
        body["properties"]["provisioningState"] = "Deleting"
        op = self.d.timed_op(on_done=lambda: self.m.remove_resource(rec.id))
        return self.m.json(202, None, {**self.d.op_urls(op, req.q("api-version")), **self.d.retry_headers()})

    def start_stop(self, req: Request, sub: str, rg: str, app: str, action: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err

        def done():
            rec.stopped = action.lower() == "stop"
            if self.runner is not None and rec.stopped:
                self.runner.stop(rec.name)
            if not rec.stopped:
                rev = rec.revisions[-1]
                rev.ready_at = time.time() + self.d.activation_seconds
                self._startup_logs(rec, rev)
                if self.runner is not None:
                    self.runner.start(rec, rev)

        op = self.d.timed_op(on_done=done, result=lambda: (200, self.internal_view(self.d.state.get(rec.id))))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def list_secrets(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        values = self.d.state.app_secrets.get(rec.id.lower(), {})
        return self.m.json(200, {"value": [{"name": k, "value": v} for k, v in values.items()]})

    def get_auth_token(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        token = "aca-" + secrets.token_urlsafe(24)
        expires = time.time() + 3600
        self.auth_tokens[token] = (rec.id.lower(), expires)
        body = self.d.state.get(rec.id)
        return self.m.json(200, {"id": rec.id, "name": rec.name, "type": "Microsoft.App/containerApps/accesstoken",
                                 "location": body.get("location"),
                                 "properties": {"token": token, "expires": time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(expires))}})

    def _revision_body(self, rec: AppRecord, rev: Revision) -> dict:
        running, health, details = self.revision_state(rec, rev)
        app = self.d.state.get(rec.id) or {}
        fqdn = ((app.get("properties", {}).get("configuration") or {}).get("ingress") or {}).get("fqdn", "")
        props = {"createdTime": _iso(rev.created), "lastActiveTime": _iso(max(rev.created, rev.ready_at)), "fqdn": fqdn,
                 "template": copy.deepcopy(rev.template), "active": rev.active and not rec.stopped,
                 "replicas": self._replica_count(rec, rev), "trafficWeight": 100 if rev.active else 0,
                 "healthState": health, "provisioningState": "Provisioned", "runningState": running}
        if details:
            props["runningStateDetails"] = details
        return {"id": f"{rec.id}/revisions/{rev.name}", "name": rev.name, "type": "Microsoft.App/containerApps/revisions",
                "properties": props}

    def _replica_count(self, rec: AppRecord, rev: Revision) -> int:
        if rec.stopped or not rev.active:
            return 0
        return max(1, int((rev.template.get("scale") or {}).get("minReplicas") or 0))

    def _rev(self, rec: AppRecord, name: str) -> Revision | None:
        return next((r for r in rec.revisions if r.name.lower() == name.lower()), None)

    def _revision(self, rg: str, app: str, rev: str) -> tuple[AppRecord | None, Revision | None, Response | None]:
        """(app, revision, None), or the 404 ARM answers when either does not exist."""
        rec, err = self._app(rg, app)
        if err:
            return None, None, err
        r = self._rev(rec, rev)
        if r is None:
            return rec, None, self.m.error(404, "ContainerAppRevisionNotFound",
                                           f"Revision '{rev}' of container app '{app}' was not found.")
        return rec, r, None

    def list_revisions(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        return self.m.json(200, {"value": [self._revision_body(rec, r) for r in rec.revisions], "nextLink": None})

    def get_revision(self, req: Request, sub: str, rg: str, app: str, rev: str) -> Response:
        rec, r, err = self._revision(rg, app, rev)
        if err:
            return err
        return self.m.json(200, self._revision_body(rec, r))

    def restart_revision(self, req: Request, sub: str, rg: str, app: str, rev: str) -> Response:
        rec, r, err = self._revision(rg, app, rev)
        if err:
            return err
        if not r.active:
            return self.m.error(400, "ContainerAppRevisionInactive", f"Revision '{rev}' is not active and cannot be restarted.")
        r.restarts += 1
        r.ready_at = time.time() + self.d.activation_seconds
        r.replica_suffix = secrets.token_hex(4)
        self.d.state.add_log(rec.name, f"Restarting revision {r.name} (restart {r.restarts})")
        self._startup_logs(rec, r)
        if self.runner is not None:
            self.runner.start(rec, r)
        return self.m.json(200)

    def activate_revision(self, req: Request, sub: str, rg: str, app: str, rev: str, action: str) -> Response:
        rec, r, err = self._revision(rg, app, rev)
        if err:
            return err
        r.active = action.lower() == "activate"
        if r.active:
            r.ready_at = time.time() + self.d.activation_seconds
        return self.m.json(200)

    def _replicas(self, rec: AppRecord, rev: Revision) -> list[dict]:
        running, health, details = self.revision_state(rec, rev)
        out = []
        for i in range(self._replica_count(rec, rev)):
            name = f"{rev.name}-{rev.replica_suffix}-{i:05d}"
            rid = f"{rec.id}/revisions/{rev.name}/replicas/{name}"
            containers = []
            for c in rev.template.get("containers", []) or []:
                ready = health == "Healthy"
                containers.append({"name": c.get("name"), "containerId": f"containerd://{secrets.token_hex(32)}", "ready": ready,
                                   "started": running != "Activating" or health == "Unhealthy",
                                   "restartCount": rev.restarts if not self.d.faults.is_never_healthy(rec.name) else rev.restarts + 3,
                                   "runningState": "Running" if ready else "Waiting",
                                   "runningStateDetails": details or "Running",
                                   "logStreamEndpoint": f"{self.d.arm_endpoint}/logstream{rid}/containers/{c.get('name')}/logstream",
                                   "execEndpoint": f"{self.d.arm_endpoint}/exec{rid}/containers/{c.get('name')}/exec"})
            out.append({"id": rid, "name": name, "type": "Microsoft.App/containerApps/revisions/replicas",
                        "properties": {"createdTime": _iso(rev.ready_at - self.d.activation_seconds),
                                       "runningState": "Running" if health == "Healthy" else "NotRunning",
                                       "runningStateDetails": details or "Running", "containers": containers,
                                       "initContainers": []}})
        return out

    def list_replicas(self, req: Request, sub: str, rg: str, app: str, rev: str) -> Response:
        rec, r, err = self._revision(rg, app, rev)
        if err:
            return err
        return self.m.json(200, {"value": self._replicas(rec, r)})

    def get_replica(self, req: Request, sub: str, rg: str, app: str, rev: str, replica: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        r = self._rev(rec, rev)
        found = next((x for x in self._replicas(rec, r) if x["name"] == replica), None) if r else None
        if found is None:
            return self.m.error(404, "ContainerAppReplicaNotFound", f"Replica '{replica}' was not found.")
        return self.m.json(200, found)

    # -- log stream ----------------------------------------------------------------------------------
    def handle_logstream(self, req: Request) -> Response:
        m = re.search(r"/containerApps/([^/]+)", req.path, re.IGNORECASE)
        auth = req.header("authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        entry = self.auth_tokens.get(token)
        if m is None:
            return Response(404, {"Content-Type": "text/plain"}, b"Not found")
        app_id = req.path[len("/logstream"):].split("/eventstream")[0].split("/revisions/")[0].lower()
        if entry is None or entry[1] < time.time() or entry[0] != app_id:
            return Response(401, {"Content-Type": "text/plain"}, b"Unauthorized: pass the token from getAuthtoken as a Bearer token")
        rec = self.records.get(app_id)
        if rec is None or rec.deleted:
            return Response(404, {"Content-Type": "text/plain"}, b"Container app not found")
        try:
            tail = max(0, min(300, int(req.q("tailLines", "20"))))
        except ValueError:
            return Response(400, {"Content-Type": "text/plain"}, b"tailLines must be an integer")
        follow = (req.q("follow", "false") or "").lower() == "true"
        as_json = (req.q("output", "text") or "").lower() == "json"
        drop = self.d.faults.take(("drop_stream",), req.method, req.target)
        return Response(200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache"},
                        stream=self._stream(rec.name, tail, follow, as_json, drop))

    def _stream(self, app: str, tail: int, follow: bool, as_json: bool, drop) -> Iterator[bytes]:
        sent = 0

        def fmt(entry) -> bytes:
            t, line = entry
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e6):06d}Z"
            if as_json:
                return (json.dumps({"TimeStamp": stamp, "Log": line}) + "\n").encode()
            return f"{stamp} {line}\n".encode()

        with self.d.state.lock:
            logs = self.d.state.logs.setdefault(app, [])
            start = len(logs)
            backlog = logs[max(0, start - tail):start] if tail else []
        for e in backlog:
            yield fmt(e)
            sent += 1
            if drop and sent >= drop.args["after_lines"]:
                raise DropConnection()
        if not follow:
            return
        idle_until = time.monotonic() + self.d.log_follow_seconds
        while time.monotonic() < idle_until and not self.d.stopped.is_set():
            with self.d.state.lock:
                new = logs[start:]
                start = len(logs)
            for e in new:
                yield fmt(e)
                sent += 1
                idle_until = time.monotonic() + self.d.log_follow_seconds
                if drop and sent >= drop.args["after_lines"]:
                    raise DropConnection()
            time.sleep(0.05)


def _merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class _Ingress(Hooks):
    """The app's public endpoint: https://127.0.0.1:<port> (its `fqdn`)."""

    def __init__(self, apps: Apps, rec: AppRecord):
        self.apps, self.rec = apps, rec

    def latency(self) -> float:
        return 0.0

    def logged(self, request, method, target, status, bytes_in) -> None:
        self.apps.d.logged(request, method, f"/ingress/{self.rec.name}{target}", status, bytes_in)

    def handle(self, req: Request) -> Response:
        rec, apps = self.rec, self.apps
        text = {"Content-Type": "text/plain; charset=utf-8"}
        if rec.deleted or rec.stopped:
            return Response(404, text, b"Error 404 - This Container App is stopped or does not exist.")
        rev = next((r for r in reversed(rec.revisions) if r.active), None)
        if rev is None or apps.revision_state(rec, rev)[1] != "Healthy":
            return Response(503, text, b"upstream connect error or disconnect/reset before headers. reset reason: connection failure")
        upstream = apps.upstreams.get(rec.name)
        if upstream:
            return self._proxy(upstream, req)
        route = req.path.rstrip("/") or "/"
        if route == "/health":
            return _json(200, {"status": "ok", "model": "stand-in", "adapters": [], "revision": rev.name})
        key = self._api_key(rev)
        if key and req.header("authorization") != f"Bearer {key}":
            return _json(401, {"detail": "missing or invalid API key"})
        if route == "/v1/models":
            return _json(200, {"object": "list", "data": [{"id": "base", "object": "model", "owned_by": "aitk-nb"}]})
        if route == "/":
            return Response(200, {"Content-Type": "text/html"}, b"<html><body>Azure test double: ingress stand-in</body></html>")
        return _json(404, {"detail": "Not Found"})

    def _api_key(self, rev: Revision) -> str | None:
        secrets_ = self.apps.d.state.app_secrets.get(self.rec.id.lower(), {})
        for c in rev.template.get("containers", []) or []:
            for e in c.get("env", []) or []:
                if e.get("name") == API_KEY_ENV:
                    return secrets_.get(e["secretRef"]) if "secretRef" in e else e.get("value")
        return None

    def _proxy(self, upstream: str, req: Request) -> Response:
        import httpx

        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length", "transfer-encoding", "connection")}
        client = httpx.Client(timeout=httpx.Timeout(30.0, read=300.0))
        try:
            up = client.send(client.build_request(req.method, upstream.rstrip("/") + req.target, headers=headers,
                                                  content=req.body or None), stream=True)
        except httpx.HTTPError:
            client.close()
            return Response(502, {"Content-Type": "text/plain"}, b"upstream connect error")
        out_headers = {k: v for k, v in up.headers.items()
                       if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding", "date", "server")}

        def body():
            try:
                for chunk in up.iter_bytes():
                    yield chunk
            finally:
                up.close()
                client.close()

        return Response(up.status_code, out_headers, stream=body())


def _json(status: int, body) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(body).encode())
