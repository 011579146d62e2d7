"""Deploys to a running app (issue 17, DESIGN.md "Deploys to a running app"): what a change needs, and
waiting until the endpoint serves the settings a deploy wrote.

An adapter-only change (adapters added, changed, removed or renamed; base model, server code,
requirements and server settings the same) is applied by the running server itself: it polls
settings.json on the share (``inference_app/reload.py``). Anything else restarts the replica; the
card says which change required it. Either way deploy waits until ``/health`` reports the hash of the
settings.json it wrote (``settings_hash``), and shows what ``/health`` says, not the plan.
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from inference_app.contract import DeployedSettings, code_dest, merged_change, settings_digest

from .errors import DeployError, ReadinessTimeoutError
from .invocation import command
from .sync import Remote, SyncPlan

# answers in a row that must show the new settings on a target whose ingress spreads requests over replicas
CONSISTENT_ANSWERS = 5
LIVE_TIMEOUT = 120.0  # seconds for a running server to serve new settings (it polls once a second)


def adapter_versions(remote: Remote, settings: DeployedSettings) -> dict[str, str]:
    """Each served adapter's folder on the share, as a digest of its files (names, sizes, MD5s): a change
    of weights in place changes settings.json, so the running server notices it."""
    versions = {}
    for name, dest in settings.adapters.items():
        files = remote.list_files(dest)
        h = hashlib.sha256()
        for rel in sorted(files):
            h.update(f"{rel}\0{files[rel].size}\0{files[rel].md5.hex()}\n".encode())
        versions[name] = h.hexdigest()[:16]
    return versions


def restart_reasons(previous: DeployedSettings, new: DeployedSettings, plans: list[SyncPlan], app: str) -> list[str]:
    """Why this deploy needs a restart (empty: adapter-only, applied live by the running server)."""
    reasons = []
    for p in plans:
        if not p.changes:
            continue
        if p.dest == code_dest(app):
            names = {rel for rel, _, _ in p.uploads} | set(p.deletes)
            if "requirements.txt" in names:
                reasons.append("requirements.txt changed")
            if names - {"requirements.txt"} or p.mark:
                reasons.append("server code changed")
        elif p.dest == new.base_model:
            reasons.append("base model files changed")
    if previous.base_model != new.base_model:
        reasons.append(f"base model changed ({previous.base_model or 'none'} -> {new.base_model})")
    if previous.other != new.other:
        keys = sorted(k for k in {*previous.other, *new.other} if previous.other.get(k) != new.other.get(k))
        reasons.append(f"server settings changed ({', '.join(keys)})")
    if merged_change(previous.merge_adapter, new.merge_adapter, (previous.adapters, previous.adapter_versions),
                     (new.adapters, new.adapter_versions)):
        reasons.append("merge_adapter (a merged adapter is part of the base weights)")
    return reasons


def live_capable(app) -> bool:
    """Whether the app's server applies adapter changes itself: its /health reports which settings it serves."""
    return app.health is not None and "settings_hash" in app.health


@dataclass
class Served:
    """What the endpoint said once it served the new settings."""

    health: dict
    answers: int
    replicas: set[str] = field(default_factory=set)

    def line(self) -> str:
        if "settings_hash" not in self.health:  # answered, but not a server that says what it serves
            return "the server does not say which settings it serves (not aitk-nb's current server): not confirmed"
        if not self.replicas:
            return f"settings {self.health.get('settings_hash')} served"
        return f"settings {self.health.get('settings_hash')} served by {len(self.replicas)} replica(s) seen " \
               f"({', '.join(sorted(self.replicas))}) in {self.answers} answers in a row"


def refused(health: dict) -> str:
    """The server's reason for refusing a change, and what it still serves, in one line."""
    error = health["apply_error"]["error"]
    return (f"the server refused the new adapters: {error}; it still serves {', '.join(health.get('variants', []))} "
            f"(settings {health.get('settings_hash')}); fix the adapter and run {command('deploy')} again")


def wait_served(app, data: bytes, *, timeout: float, consistent: int = 1,
                checkpoint: Callable[[], None] | None = None, report: Callable[[str], None] | None = None,
                poll: float = 0.25) -> Served:
    """Ask ``app``'s health route until ``consistent`` answers in a row report the settings ``data`` (the bytes
    deploy wrote). A refusal of exactly those settings (``apply_error``) raises ``DeployError`` with the
    server's reason; ``ReadinessTimeoutError`` after ``timeout`` seconds."""
    import httpx

    digest = settings_digest(data)
    start = time.monotonic()
    streak, replicas, seen = 0, set(), "no answer yet"
    with app._client(timeout=10.0) as client:
        while True:
            try:
                r = client.get(app.health_url)
                body = r.json()
                body = body if isinstance(body, dict) else {}
                seen = f"HTTP {r.status_code}, settings {body.get('settings_hash', 'unknown')}"
            except (httpx.TransportError, ValueError) as e:
                body, seen = {}, type(e).__name__
            # a server that does not report its settings (an older inference_app, another server) is taken at
            # its word once it is up: it read settings.json at start
            if r_ok := (body.get("status") == "ok" and body.get("settings_hash", digest) == digest):
                streak += 1
                if body.get("replica"):
                    replicas.add(body["replica"])
                if streak >= consistent:
                    return Served(body, streak, replicas)
            elif (body.get("apply_error") or {}).get("settings_hash") == digest:
                raise DeployError(refused(body))
            if not r_ok:
                streak = 0
            elapsed = time.monotonic() - start
            if report is not None:
                report(f"waiting for the endpoint to serve settings {digest}: {elapsed:.0f} s ({seen})")
            if elapsed > timeout:
                raise ReadinessTimeoutError(
                    f"{app.health_url} did not report settings {digest} within {timeout:.0f} s (last: {seen}); the "
                    f"server applies adapter changes itself once it reads settings.json; see {command('logs')}")
            if checkpoint is not None:
                checkpoint()
            time.sleep(poll)


__all__ = ["CONSISTENT_ANSWERS", "LIVE_TIMEOUT", "Served", "adapter_versions", "live_capable", "refused", "restart_reasons", "wait_served"]
