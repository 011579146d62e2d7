"""Before an evaluation sends a prompt: the endpoint is up, or woken, or reported as failed.

An app scaled to zero (azure: the revision has no replica; local: the replica record names no running
replica) is not broken: on Azure a request to the ingress makes Container Apps start a replica, and
the ingress holds requests until it is ready (a GPU replica can take minutes, longer than the ingress's
240 s request limit, after which the ingress answers 504); on the local target the replica is started
as deploy starts it. Either way the wait is the endpoint's readiness wait (`Endpoint.wait`: the
health route answers 200; a failed or degraded replica is reported at once, with its log's tail), up
to a limit the user sets (`wake_timeout`, `--wake-timeout`)."""
from __future__ import annotations

import time
from typing import Any

from ..endpoints import FAILURE_STATES, Endpoint, EndpointStatus
from ..errors import EvalError
from ..invocation import command

UNREACHABLE_URL_WAIT = 60.0  # an endpoint given by URL: how long 502/503/504 (an ingress waking it) is waited out


def asleep(app: Endpoint) -> bool:
    """Whether the app has no replica running that could answer (scaled to zero, or never started)."""
    if app.target == "local":
        return app.status is EndpointStatus.STOPPED
    return app.replicas == 0 and app.running != "Stopped"


def wake(app: Endpoint, limit: float | None = None, *, progress: bool = True) -> dict:
    """Make sure `app` answers its health route; returns the health body. Scaled to zero: woken and
    waited for (with a progress line); failed: the target's error, with the reason."""
    app.fetch()  # the app's state, and one look at its health route where a replica runs (Endpoint.fetch)
    if app.health is not None:
        return app.health
    if app.status in FAILURE_STATES:
        raise app._target.failure(app)
    if app.running == "Stopped" and app.target == "azure":
        raise EvalError(f"the app {app.name} is stopped (`scale --stop`), so nothing answers; start it with "
                        f"{command('scale --start')}")
    sleeping = asleep(app)
    if sleeping and app.target == "local":
        app.restart()  # as deploy starts it: the same command, share and probe
    what = "waking the endpoint (scaled to zero)" if sleeping else "waiting for the endpoint to answer"
    return app.wait(limit, progress=progress, what=what).health


def wait_for_url(url: str, headers: dict | None, limit: float | None, *, verify: Any = True, progress: bool = True) -> dict:
    """An endpoint given by URL (no target to ask): its health route's body. Nothing listening is
    reported at once; a 502/503/504 or a held request (an ingress waking a replica) is waited out up
    to `limit` seconds (default 60)."""
    import httpx
    from tqdm.auto import tqdm

    from inference_app.contract import HEALTH_ROUTE

    limit = UNREACHABLE_URL_WAIT if limit is None else limit
    health = url.rstrip("/") + HEALTH_ROUTE
    start = time.monotonic()
    with httpx.Client(headers=headers, timeout=httpx.Timeout(10.0, connect=5.0), verify=verify) as client, \
            tqdm(total=None, desc=f"waiting for {url} to answer (up to {limit:.0f} s)", unit="s", disable=not progress,
                 bar_format="{desc}: {n:.0f} s {postfix}", delay=2) as bar:
        while True:
            try:
                r = client.get(health)
                seen = f"HTTP {r.status_code}"
            except httpx.ConnectError as e:
                raise EvalError(f"cannot reach {url} ({e}); is it deployed and running? see {command('status')}") from None
            except httpx.TransportError as e:
                r, seen = None, type(e).__name__
            if r is not None and r.status_code == 200:
                return r.json()
            if r is not None and r.status_code not in (502, 503, 504):
                raise EvalError(f"{health} answered {r.status_code}; the app is not ready, see {command('status')} "
                                f"and {command('logs')}")
            elapsed = time.monotonic() - start
            bar.n = elapsed
            bar.set_postfix_str(seen)
            if elapsed > limit:
                raise EvalError(f"{health} did not answer 200 within {limit:.0f} s ({seen}); wait longer with "
                                f"--wake-timeout SECONDS, or see {command('status')}")
            time.sleep(2.0)
