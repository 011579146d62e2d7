"""One container app in Container Apps: its record and state, the active revision and its replicas,
the API key secret, the console log stream, scale, restart and delete."""
from __future__ import annotations

import contextlib
from typing import Iterator

from ..endpoints import AppState, EndpointStatus
from ..invocation import command
from . import logs
from .logs import NoResponse, StreamRefused
from .session import AzureError, AzureSession, azure_call, missing_ok, service_value

API_KEY_SECRET = "aitk-api-key"


class ContainerApp:
    """The container app `name` in `resource_group`, through the session's management clients."""

    def __init__(self, session: AzureSession, resource_group: str, name: str):
        self.session, self.resource_group, self.name = session, resource_group, name

    @property
    def _apps(self):
        return self.session.apps.container_apps

    def get(self):
        with azure_call(f"reading container app {self.name}"):
            return self._apps.get(self.resource_group, self.name)

    def api_key(self) -> str | None:
        """The endpoint's API key, read from the app's secrets when needed and kept in memory only."""
        with azure_call(f"reading the secrets of {self.name}"):
            secrets = self._apps.list_secrets(self.resource_group, self.name).value or []
        return next((s.value for s in secrets if s.name == API_KEY_SECRET), None)

    def latest_revision(self, app=None):
        app = app or self.get()
        if not app.latest_revision_name:
            raise AzureError(f"container app {self.name} has no revision yet; run {command('provision')} again")
        with azure_call(f"reading revision {app.latest_revision_name}"):
            return self.session.apps.container_apps_revisions.get_revision(self.resource_group, self.name,
                                                                            app.latest_revision_name)

    def state(self) -> AppState:
        """The latest revision's running state (Container Apps' own words) and the app's record."""
        app = self.get()
        revision = self.latest_revision(app)
        running, health = service_value(revision.running_state), service_value(revision.health_state)
        scale = app.template.scale if app.template and app.template.scale else None
        return AppState(EndpointStatus(running), f"revision {revision.name}: {running}, {health}", app.as_dict(),
                        revision=revision.name, running=service_value(app.running_status) or "Running",
                        min_replicas=scale and scale.min_replicas, max_replicas=scale and scale.max_replicas,
                        replicas=revision.replicas)

    def restart(self) -> str:
        """Restart the active revision (its replicas start again, reading the share anew)."""
        revision = self.latest_revision()
        with azure_call(f"restarting revision {revision.name}"):
            self.session.apps.container_apps_revisions.restart_revision(self.resource_group, self.name, revision.name)
        return revision.name

    def replicas(self, revision: str) -> list:
        with azure_call(f"listing replicas of {revision}"):
            return list(self.session.apps.container_apps_revision_replicas.list_replicas(
                self.resource_group, self.name, revision).value or [])

    # -- the console log (aitk_nb.azure.logs reads and follows it through these three) ------------
    def stream_url(self) -> str:
        """The log stream of the first container of the latest revision's first replica (as az does)."""
        revision = self.latest_revision()
        for replica in self.replicas(revision.name):
            for container in replica.containers or []:
                if container.log_stream_endpoint:
                    return container.log_stream_endpoint
        raise AzureError(f"revision {revision.name} of {self.name} has no replica running, so no console log "
                         f"(scaled to zero, or stopped: {command('status')})")

    def stream_token(self) -> str:
        with azure_call(f"getting a log stream token for {self.name}"):
            return self._apps.get_auth_token(self.resource_group, self.name).token

    @contextlib.contextmanager
    def open_stream(self, url: str, token: str, tail: int, follow: bool) -> Iterator[Iterator[str]]:
        import httpx

        params = {"tailLines": str(tail), "follow": str(follow).lower(), "output": "json"}
        try:
            with httpx.stream("GET", url, params=params, headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx.Timeout(10.0, read=None if follow else 30.0),
                              verify=self.session.httpx_verify) as r:
                if r.status_code != 200:
                    raise StreamRefused(r.status_code)
                yield _lines(r)  # its errors are ConnectionErrors already: below, only the request's
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:  # taken, and closed before any answer
            raise NoResponse(f"{type(e).__name__}: {e}") from e
        except httpx.TransportError as e:
            raise ConnectionError(f"{type(e).__name__}: {e}") from e

    def log_tail(self, n: int) -> list[str]:
        """The last `n` lines of the console log (the service keeps 300)."""
        try:
            return logs.tail(self, n)
        except StreamRefused as e:
            raise AzureError(f"the log stream of {self.name} answered {e}; check {command('status')}") from None
        except ConnectionError as e:
            raise AzureError(f"the log stream of {self.name} dropped ({e}); run {command('logs')} again") from None

    def follow_logs(self, tail: int) -> Iterator[str]:
        """The last `tail` lines, then new ones as they come, reconnecting until interrupted."""
        return logs.follow(self, tail)

    def log_tail_note(self, lines: int = 10) -> str:
        """The last log lines for an error message ("" when the stream cannot be read)."""
        try:
            tail = self.log_tail(lines)
        except AzureError:
            return ""
        return "\nlast log lines:\n" + "\n".join(tail) if tail else ""

    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool = False,
              start: bool = False) -> None:
        """Replica bounds (a new revision, as Container Apps makes for template changes), or stop the
        app (no replica, no GPU billed, the endpoint off) and start it again."""
        from azure.mgmt.appcontainers.models import ContainerApp as ContainerAppModel

        if stop or start:
            with azure_call(f"{'stopping' if stop else 'starting'} container app {self.name}"):
                (self._apps.begin_stop if stop else self._apps.begin_start)(self.resource_group, self.name).result()
        if min_replicas is None and max_replicas is None:
            return
        app = self.get()
        template = app.template
        low = template.scale.min_replicas if min_replicas is None else min_replicas
        high = template.scale.max_replicas if max_replicas is None else max_replicas
        if low is not None and high is not None and low > high:
            raise AzureError(f"--min {low} is above --max {high}; pass bounds with min <= max")
        template.scale.min_replicas, template.scale.max_replicas = low, high
        with azure_call(f"scaling container app {self.name}"):
            self._apps.begin_update(self.resource_group, self.name,
                                    ContainerAppModel(location=app.location, template=template)).result()

    def delete(self) -> None:
        with missing_ok(f"deleting container app {self.name}"):
            self._apps.begin_delete(self.resource_group, self.name).result()


def _lines(response) -> Iterator[str]:
    import httpx

    try:
        yield from response.iter_lines()
    except (httpx.TransportError, httpx.StreamError) as e:  # cut mid-stream
        raise ConnectionError(f"{type(e).__name__}: {e}") from e
