"""Microsoft.App container apps: the app resource (secrets kept apart, as ARM never returns their
values on GET), revisions with a short "Activating" phase after create/restart, replicas, auth
tokens for the log streams (logstream.py) and an HTTPS ingress per app (a stand-in that answers
/health, or a proxy to a real server set with AzureDouble.set_app_upstream)."""
from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from .errors import ResourceFailure
from .httpserver import HTTPSServer, Hooks, Request, Response
from .logstream import LogStreams
from .resources import Put, TypeRules, merge

if TYPE_CHECKING:
    from .double import AzureDouble

API_KEY_ENV = "AITK_API_KEY"
APP = "Microsoft.App/containerApps"


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
    asleep: bool = False    # scaled to zero: no replica until a request comes to the ingress
    waking: bool = False    # a replica starting because a request came while asleep (requests are held)


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
        self.logs = LogStreams(self)
        self._lock = threading.RLock()
        # Scale to zero (see `scale_to_zero`, `wake` and `_Ingress._hold_while_waking`); seconds, small so tests are fast
        self.cold_start_seconds = 3.0        # a replica's start from zero (a GPU replica: minutes)
        self.ingress_timeout_seconds = 240.0  # how long the ingress holds a request (Container Apps: 240 s)

    @property
    def m(self):
        return self.d.mgmt

    def register(self, resources) -> None:
        resources.register(APP, TypeRules(put=self._put_app, view=self.internal_view, deleting=self.forget,
                                          actions={"listsecrets": self._secrets}))

    def routes(self, r: Callable, prov: str) -> None:
        app = prov + r"/Microsoft\.App/containerApps/(?P<app>[^/]+)"
        rev = app + r"/revisions/(?P<rev>[^/]+)"
        r("GET", prov + r"/Microsoft\.App/containerApps", self.list_apps)
        r("GET", app, self.get_app)
        r("PUT", app, self.put_app)
        r("PATCH", app, self.patch_app)
        r("DELETE", app, self.delete_app)
        r("POST", app + r"/listSecrets", self.list_secrets)
        r("POST", app + r"/getAuthtoken", self.get_auth_token)
        r("POST", app + r"/(?P<action>start|stop)", self.start_stop)
        r("GET", app + r"/revisions", self.list_revisions)
        r("GET", rev, self.get_revision)
        r("POST", rev + r"/restart", self.restart_revision)
        r("POST", rev + r"/(?P<action>activate|deactivate)", self.activate_revision)
        r("GET", rev + r"/replicas", self.list_replicas)
        r("GET", rev + r"/replicas/(?P<replica>[^/]+)", self.get_replica)

    # -- resource ----------------------------------------------------------------------------------
    def _put_app(self, p: Put) -> None:
        env = self.d.mgmt.environments.environment_of(p)
        body, props, existing, rg = p.body, p.props, p.existing, p.rg
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
        props.update({"provisioningState": "Succeeded", "outboundIpAddresses": ["127.0.0.1"], "customDomainVerificationId": secrets.token_hex(32).upper(),
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
        """A replica starting: platform events on the system stream; the stand-in server's first
        lines on its console (a real replica's own output when run_replicas is on)."""
        replica = self.replica_name(rev, 0)
        containers = [c.get("name", "") for c in rev.template.get("containers", []) or []] or [""]
        event = self.logs.event
        event(rec.name, "ReplicaScheduled", f"Replica '{replica}' has been scheduled to run on a node.", revision=rev.name, replica=replica)
        for c in containers:
            event(rec.name, "ContainerCreated", f"Created container '{c}'", revision=rev.name, replica=replica)
            event(rec.name, "ContainerStarted", f"Started container '{c}'", revision=rev.name, replica=replica)
        if self.runner is not None:
            return  # the real process's output follows
        say = lambda line: self.logs.console(rec.name, line, replica)  # noqa: E731
        if self.d.faults.is_never_healthy(rec.name):
            say("Traceback (most recent call last): RuntimeError: model failed to load (injected)")
            event(rec.name, "ProbeFailed", "Probe of StartUp failed with status code: 503", revision=rev.name, replica=replica,
                  kind="Warning")
        else:
            say("INFO:     Started server process [1]")
            say("INFO:     Uvicorn running on http://0.0.0.0:7860 (Press CTRL+C to quit)")

    @staticmethod
    def replica_name(rev: "Revision", index: int) -> str:
        return f"{rev.name}-{rev.replica_suffix}-{index:05d}"

    def current_replica(self, app: str) -> str | None:
        """The replica a container log line comes from by default: the first of the newest active revision."""
        rec = next((r for r in self.records.values() if r.name == app and not r.deleted), None)
        rev = next((r for r in reversed(rec.revisions) if r.active), None) if rec else None
        return self.replica_name(rev, 0) if rev is not None else None

    def running_replicas(self, app_id: str) -> int:
        rec = self.records.get(app_id.lower())
        if rec is None or rec.deleted:
            return 0
        return sum(self._replica_count(rec, rev) for rev in rec.revisions)

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
            created = self.m.resources.apply(rg, {**body, "type": APP, "name": app})
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
        merged = merge(spec, patch)
        try:
            self.m.resources.apply(rg, {**merged, "type": APP, "name": rec.name})
        except ResourceFailure as e:
            return self.m.error(e.status, e.code, e.message)
        op = self.d.timed_op(result=lambda: (200, self.internal_view(self.d.state.get(rec.id))))
        return self.m.json(202, None, {"Location": self.d.op_urls(op, req.q("api-version"))["Location"], **self.d.retry_headers()})

    def delete_app(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec = self._record(rg, app)
        if rec is None:
            return self.m.json(204)
        body = self.d.state.get(rec.id)
        self.m.resources.check_delete(body)
        body["properties"]["provisioningState"] = "Deleting"
        op = self.d.timed_op(on_done=lambda: self.m.resources.remove(rec.id))
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

    def _secrets(self, body: dict, payload=None) -> dict:
        values = self.d.state.app_secrets.get(body["id"].lower(), {})
        return {"value": [{"name": k, "value": v} for k, v in values.items()]}

    def list_secrets(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        return self.m.json(200, self.m.resources.action(rec.id, "listSecrets"))

    def get_auth_token(self, req: Request, sub: str, rg: str, app: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        token = "aca-" + secrets.token_urlsafe(24)
        expires = time.time() + 3600
        self.auth_tokens[token] = (rec.id.lower(), expires)
        body = self.d.state.get(rec.id)
        # logStreamEndpoint: azure-cli takes the log stream host from it (the official example omits it)
        return self.m.json(200, {"id": rec.id, "name": rec.name, "type": "Microsoft.App/containerApps/accesstoken",
                                 "location": body.get("location"),
                                 "properties": {"token": token, "expires": time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(expires)),
                                                "logStreamEndpoint": f"{self.d.arm_endpoint}/logstream{rec.id}/revisions/"}})

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
        if rec.stopped or not rev.active or rev.asleep:
            return 0
        # up: at least one (a request came, or minReplicas); to zero only by `scale_to_zero` (the cooldown)
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
        r.asleep = r.waking = False  # the restart starts a replica (scale to zero comes after the cooldown again)
        r.replica_suffix = secrets.token_hex(4)
        self.logs.event(rec.name, "RevisionRestart", f"Restarting revision '{r.name}'", revision=r.name)
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

    # -- scale to zero ---------------------------------------------------------------------------
    def scale_to_zero(self, app: str) -> None:
        """What Container Apps does to a revision with minReplicas 0 after its cooldown without
        requests (300 s by default): its replicas go away (the revision lists none) until a request
        comes to the ingress. Refused, as the platform never does it, for minReplicas above 0."""
        rec = next(r for r in self.records.values() if r.name == app and not r.deleted)
        rev = next(r for r in reversed(rec.revisions) if r.active)
        if int((rev.template.get("scale") or {}).get("minReplicas") or 0) > 0:
            raise ValueError(f"{app}: minReplicas is above 0, so Container Apps keeps a replica")
        with self._lock:
            rev.asleep, rev.waking = True, False
        if self.runner is not None:
            self.runner.stop(rec.name)
        self.logs.event(rec.name, "KEDAScaleTargetDeactivated", f"Deactivated revision '{rev.name}' from 1 to 0",
                        revision=rev.name)

    def wake(self, rec: AppRecord, rev: Revision) -> None:
        """A request came to the ingress of a revision scaled to zero: a replica starts (its start takes
        `cold_start_seconds`)."""
        with self._lock:
            if not rev.asleep:
                return
            rev.asleep, rev.waking = False, True
            rev.ready_at = time.time() + self.cold_start_seconds
            rev.replica_suffix = secrets.token_hex(4)
        self.logs.event(rec.name, "KEDAScaleTargetActivated", f"Scaled revision '{rev.name}' from 0 to 1", revision=rev.name)
        self._startup_logs(rec, rev)
        if self.runner is not None:
            self.runner.start(rec, rev)

    def replicas_of(self, rec: AppRecord, rev: Revision) -> list[dict]:
        running, health, details = self.revision_state(rec, rev)
        out = []
        for i in range(self._replica_count(rec, rev)):
            name = self.replica_name(rev, i)
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
        return self.m.json(200, {"value": self.replicas_of(rec, r)})

    def get_replica(self, req: Request, sub: str, rg: str, app: str, rev: str, replica: str) -> Response:
        rec, err = self._app(rg, app)
        if err:
            return err
        r = self._rev(rec, rev)
        found = next((x for x in self.replicas_of(rec, r) if x["name"] == replica), None) if r else None
        if found is None:
            return self.m.error(404, "ContainerAppReplicaNotFound", f"Replica '{replica}' was not found.")
        return self.m.json(200, found)

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
        if rev is not None and (rev.asleep or rev.waking):
            held = self._hold_while_waking(rec, rev)
            if held is not None:
                return held
        if rev is None or apps.revision_state(rec, rev)[1] != "Healthy":
            return Response(503, text, b"upstream connect error or disconnect/reset before headers. reset reason: connection failure")
        upstream = apps.upstreams.get(rec.name)
        if upstream:
            return self._proxy(upstream, req)
        route = req.path.rstrip("/") or "/"
        if _runs(rev, "gradio_chat.py"):
            return _gradio_chat(route, req)
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

    def _hold_while_waking(self, rec: AppRecord, rev: Revision) -> Response | None:
        """Scale from zero as the Container Apps ingress does it: the request starts a replica and is
        held (the Envoy ingress buffers it while KEDA scales 0 -> 1 and the replica passes its probes)
        until the replica is ready, then served (None: go on); past the ingress's request timeout
        (240 s) the ingress gives up with Envoy's 504 "upstream request timeout".
        Sources: learn.microsoft.com, Container Apps "Set scaling rules" (minReplicas 0: scale to zero;
        an HTTP request wakes the app) and "Ingress" (240 s request timeout); observed cold starts hold
        the first request rather than fail it (yeongseon/azure-paas-troubleshooting-labs,
        scale-to-zero-502, 2026-04-10: 37 s median, no 503)."""
        apps = self.apps
        apps.wake(rec, rev)
        deadline = time.monotonic() + apps.ingress_timeout_seconds
        while time.monotonic() < deadline:
            state = apps.revision_state(rec, rev)
            if state[1] == "Healthy":
                rev.waking = False
                return None
            if state[0] in ("Degraded", "Failed", "Stopped"):
                return None  # the usual answer of a revision that is not healthy
            time.sleep(0.05)
        return Response(504, {"Content-Type": "text/plain"}, b"upstream request timeout")

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


def _runs(rev: "Revision", program: str) -> bool:
    """Whether the revision's container starts `program` (its command and args as the shell gets them)."""
    return any(program in part for c in rev.template.get("containers") or [] for part in
               [*(c.get("command") or []), *(c.get("args") or [])])


def _gradio_chat(route: str, req: Request) -> Response:
    """A stand-in for AI Toolkit's own server, gradio_chat.py (../shared/aitk-inference-example/README.md):
    a Gradio UI at / and POST /v1/chat/completions, no authentication, and no /health."""
    if route == "/":
        return Response(200, {"Content-Type": "text/html"}, b"<html><body>Gradio: AI Toolkit chat</body></html>")
    if route == "/v1/chat/completions" and req.method == "POST":
        return _json(200, {"object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                                                                      "message": {"role": "assistant", "content": "hello"}}]})
    return _json(404, {"detail": "Not Found"})
