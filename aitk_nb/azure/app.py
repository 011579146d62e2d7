"""The container app: API key, restart of the active revision, readiness, status, logs, teardown."""
from __future__ import annotations

import time
from typing import Iterator

from ..errors import ReadinessTimeoutError
from .session import AzureError, AzureSession, azure_call, missing_ok, service_value

API_KEY_SECRET = "aitk-api-key"
FAILED_STATES = {"Failed", "Degraded"}


def get_app(session: AzureSession, rg: str, name: str):
    with azure_call(f"reading container app {name}"):
        return session.apps.container_apps.get(rg, name)


def api_key(session: AzureSession, rg: str, name: str) -> str | None:
    """The endpoint's API key, read from the app's secrets when needed and kept in memory only."""
    with azure_call(f"reading the secrets of {name}"):
        secrets = session.apps.container_apps.list_secrets(rg, name).value or []
    return next((s.value for s in secrets if s.name == API_KEY_SECRET), None)


def latest_revision(session: AzureSession, rg: str, name: str):
    app = get_app(session, rg, name)
    if not app.latest_revision_name:
        raise AzureError(f"container app {name} has no revision yet; run `%aitk provision` again")
    with azure_call(f"reading revision {app.latest_revision_name}"):
        return session.apps.container_apps_revisions.get_revision(rg, name, app.latest_revision_name)


def restart(session: AzureSession, rg: str, name: str) -> str:
    revision = latest_revision(session, rg, name)
    with azure_call(f"restarting revision {revision.name}"):
        session.apps.container_apps_revisions.restart_revision(rg, name, revision.name)
    return revision.name


def wait_ready(session: AzureSession, rg: str, name: str, endpoint: str, key: str | None, *,
               timeout: float, progress: bool = True) -> dict:
    """Ready = `/health` answers 200 through the ingress (not ARM's "Succeeded"); a failed revision
    is reported at once with its state."""
    import httpx
    from tqdm.auto import tqdm

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    verify = session.httpx_verify
    start, checks = time.monotonic(), 0
    last = "no answer yet"
    with tqdm(total=None, desc=f"waiting for /health (limit {timeout:.0f} s)", unit="s", disable=not progress,
              bar_format="{desc}: {n:.0f} s elapsed {postfix}") as bar, httpx.Client(timeout=10.0, verify=verify) as client:
        while True:
            try:
                r = client.get(endpoint.rstrip("/") + "/health", headers=headers)
                last = f"HTTP {r.status_code}"
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError as e:
                last = type(e).__name__
            if checks % 5 == 0:
                rev = latest_revision(session, rg, name)
                state = f"revision {rev.name}: {service_value(rev.running_state)}, {service_value(rev.health_state)}"
                if service_value(rev.running_state) in FAILED_STATES:
                    raise AzureError(f"{state}; fix the cause and run `%aitk deploy` again (more: `%aitk logs`)"
                                     f"{_log_tail(session, rg, name)}")
                last = f"{last}; {state}"
            checks += 1
            elapsed = time.monotonic() - start
            bar.set_postfix_str(last)
            bar.n = elapsed
            bar.refresh()
            if elapsed > timeout:
                raise ReadinessTimeoutError(f"{endpoint}/health did not answer 200 within {timeout:.0f} s ({last}); "
                                            "see `%aitk logs` and `%aitk status`")
            time.sleep(2.0)


def _log_tail(session: AzureSession, rg: str, name: str, lines: int = 10) -> str:
    """The last log lines, for an error message ("" when the stream cannot be read)."""
    try:
        tail = list(log_lines(session, rg, name, tail=lines, follow=False))
    except AzureError:
        return ""
    return "\nlast log lines:\n" + "\n".join(tail) if tail else ""


def replicas(session: AzureSession, rg: str, name: str, revision: str) -> list:
    with azure_call(f"listing replicas of {revision}"):
        return list(session.apps.container_apps_revision_replicas.list_replicas(rg, name, revision).value or [])


def log_lines(session: AzureSession, rg: str, name: str, *, tail: int | None, follow: bool) -> Iterator[str]:
    """The app's console log stream (as `az containerapp logs show` reads it); with `follow`, reconnects
    when the stream drops, until interrupted."""
    import httpx

    app = get_app(session, rg, name)
    if not app.event_stream_endpoint:
        raise AzureError(f"container app {name} has no log stream endpoint")
    with azure_call(f"getting a log stream token for {name}"):
        token = session.apps.container_apps.get_auth_token(rg, name).token
    params = {"tailLines": str(tail if tail is not None else 100), "follow": str(follow).lower(), "output": "text"}
    verify = session.httpx_verify
    attempts = 0
    while True:
        try:
            with httpx.stream("GET", app.event_stream_endpoint, params=params, headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx.Timeout(10.0, read=None if follow else 30.0), verify=verify) as r:
                if r.status_code != 200:
                    raise AzureError(f"log stream answered HTTP {r.status_code}; check `%aitk status`")
                for line in r.iter_lines():
                    yield line
            if not follow:
                return
        except (httpx.TransportError, httpx.StreamError):
            attempts += 1
            if not follow or attempts > 5:
                raise AzureError("the log stream dropped; run `%aitk logs` again") from None
            time.sleep(min(2 ** attempts, 10))
            params["tailLines"] = "0"  # resume without repeating what was shown


def scale(session: AzureSession, rg: str, name: str, *, min_replicas: int | None, max_replicas: int | None,
          stop: bool = False, start: bool = False) -> dict:
    """Scale the app: replica bounds (a new revision, as Container Apps makes for template changes),
    or stop it (no replica, no GPU billed, the endpoint off) and start it again. Returns the state."""
    from azure.mgmt.appcontainers.models import ContainerApp

    ops = session.apps.container_apps
    if stop or start:
        with azure_call(f"{'stopping' if stop else 'starting'} container app {name}"):
            (ops.begin_stop if stop else ops.begin_start)(rg, name).result()
    if min_replicas is not None or max_replicas is not None:
        app = get_app(session, rg, name)
        template = app.template
        low = template.scale.min_replicas if min_replicas is None else min_replicas
        high = template.scale.max_replicas if max_replicas is None else max_replicas
        if low is not None and high is not None and low > high:
            raise AzureError(f"--min {low} is above --max {high}; pass bounds with min <= max")
        template.scale.min_replicas, template.scale.max_replicas = low, high
        with azure_call(f"scaling container app {name}"):
            ops.begin_update(rg, name, ContainerApp(location=app.location, template=template)).result()
    app = get_app(session, rg, name)
    return {"running": service_value(app.running_status) or "Running", "min replicas": app.template.scale.min_replicas,
            "max replicas": app.template.scale.max_replicas, "revision": app.latest_revision_name}


def delete_app(session: AzureSession, rg: str, name: str) -> None:
    with missing_ok(f"deleting container app {name}"):
        session.apps.container_apps.begin_delete(rg, name).result()
