"""An app that runs another server than aitk-nb's (the app AI Toolkit provisions runs `python3
./gradio_chat.py`, probes on `/`, no /health): recognised before a deploy sends anything, and switched in
place to aitk-nb's server only when the user says so (issue 16, item 4). That switch is adoption.

The switch keeps the app (same name and URL), its image, volumes (the share), ingress, scale and
workload profile, and makes aitk-nb's: the start command and args, the probes (/live, /health), the env
(AITK_MOUNT_ROOT, PORT, AITK_API_KEY from a new secret `aitk-api-key`; the app's other secrets stay) and
the owner record. Adoption is recorded where a teammate's clone sees it, in Azure:

- on the app, the tags `aitk-nb-owner: <app>` (teardown then deletes the app, and nothing else AI
  Toolkit made: the environment, storage, share and workspace carry no mark of aitk-nb) and
  `aitk-nb-adopted: <UTC time>`;
- on its share, `aitk-nb/<app>/adopted.json`: what the container ran before (image, command, args, env
  values, probes) and the app's tags then.

Undoing it (README, "An app AI Toolkit provisioned"): put the container back as adopted.json records it
(`az containerapp update`, or AI Toolkit's "Deploy for inference") and remove the two tags; teardown then
keeps the app again."""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from inference_app.contract import HEALTH_ROUTE, LEGACY_CODE_DIR, MOUNT_ROOT, app_dir, start_commands

from ..arm import Template
from .app import API_KEY_SECRET, ContainerApp
from .ownership import OWNER_TAG
from .session import azure_call

ADOPTED_TAG = "aitk-nb-adopted"
ADOPTED_RECORD = "adopted.json"
START_SCRIPT = "inference_app/start.sh"


def adopted_record(app: str) -> str:
    """Where the adoption record of `app` sits on its share."""
    return f"{app_dir(app)}/{ADOPTED_RECORD}"


def other_server(record: Any) -> str | None:
    """What the app's container runs instead of aitk-nb's server ("`python3 ./gradio_chat.py`, probes on
    /"), or None when it runs aitk-nb's (its start script, ready on /health)."""
    containers = (record.template.containers if record.template else None) or []
    if not containers:
        return "no container"
    c = containers[0]
    script = "; ".join([*(c.command or []), *(c.args or [])])
    ready = {p.type: p.http_get.path for p in c.probes or [] if p.http_get}
    if START_SCRIPT in script and ready.get("Readiness") == HEALTH_ROUTE:
        return None
    last = [part.strip() for part in script.split(";") if part.strip()][-1:] or ["no command"]
    paths = sorted(set(ready.values()))
    return f"`{last[0]}`" + (f", probes on {', '.join(paths)}" if paths else ", no probes")


def old_layout(record: Any) -> bool:
    """Whether the app runs aitk-nb's server from the single-app folder `inference/` (an app provisioned
    before each app had its own folder)."""
    c = ((record.template.containers if record.template else None) or [None])[0]
    script = "; ".join([*(c.command or []), *(c.args or [])]) if c is not None else ""
    return other_server(record) is None and f"/{LEGACY_CODE_DIR}" in script and "/aitk-nb/" not in script


def move(session, resource_group: str, name: str) -> str:
    """Start the app (one of aitk-nb's, on the old layout) in its own folder: its args become the current
    start commands, nothing else changes; returns the new revision's name."""
    from azure.mgmt.appcontainers.models import ContainerApp as ContainerAppModel

    app = ContainerApp(session, resource_group, name)
    record = app.get()
    container = record.template.containers[0]
    mount = (container.volume_mounts or [None])[0]
    container.args = ["; ".join(start_commands(mount.mount_path if mount is not None else MOUNT_ROOT))]
    with azure_call(f"moving container app {name} to its own folder on the share"):
        session.apps.container_apps.begin_update(resource_group, name, ContainerAppModel(
            location=record.location, template=record.template)).result()
    return app.get().latest_revision_name


def switch(session, resource_group: str, name: str, template: dict, remote) -> str:
    """Switch the app to aitk-nb's server in place (a new revision: the replica restarts with it) and
    record the adoption; returns the new revision's name. The adoption record is written on the share
    first: if the switch then fails, it says what the app ran and nothing else has changed."""
    from azure.mgmt.appcontainers.models import ContainerApp as ContainerAppModel
    from azure.mgmt.appcontainers.models import ContainerAppProbe, EnvironmentVar, Secret

    app = ContainerApp(session, resource_group, name)
    record = app.get()
    container = record.template.containers[0]
    ours = Template(template, {"acaAppName": name}).resource("Microsoft.App/containerApps")["properties"]
    their_mount = (container.volume_mounts or [None])[0]
    mount = their_mount.mount_path if their_mount is not None else MOUNT_ROOT
    port = record.configuration.ingress.target_port if record.configuration and record.configuration.ingress else None
    new = ours["template"]["containers"][0]
    port = port or next(int(e["value"]) for e in new["env"] if e["name"] == "PORT")
    remote.write_bytes(adopted_record(name), json.dumps({
        "adopted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "container": {"image": container.image, "command": container.command, "args": container.args,
                      "env": [e.as_dict() for e in container.env or [] if e.secret_ref is None],
                      "probes": [p.as_dict() for p in container.probes or []]},
        "tags": dict(record.tags or {})}, indent=2).encode() + b"\n")

    def here(text: str) -> str:  # the template's /mount, where this app mounts the share
        return text.replace(MOUNT_ROOT, mount) if mount != MOUNT_ROOT else text

    env = [e for e in container.env or [] if e.name not in {v["name"] for v in new["env"]}]
    env += [EnvironmentVar(name=e["name"], secret_ref=e["secretRef"]) if "secretRef" in e else
            EnvironmentVar(name=e["name"], value=str(port) if e["name"] == "PORT" else here(str(e["value"])))
            for e in new["env"]]
    container.command, container.args = new.get("command"), [here(a) for a in new.get("args") or []]
    container.env = env
    container.probes = [ContainerAppProbe({**p, "httpGet": {**p["httpGet"], "port": port}})
                        for p in new.get("probes") or []]
    with azure_call(f"reading the secrets of {name}"):
        kept = [Secret(name=s.name, value=s.value) for s in record_secrets(session, resource_group, name)
                if s.name != API_KEY_SECRET]
    record.configuration.secrets = [*kept, Secret(name=API_KEY_SECRET, value=secrets.token_urlsafe(32))]
    tags = {**(record.tags or {}), OWNER_TAG: name, ADOPTED_TAG: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with azure_call(f"switching container app {name} to aitk-nb's server"):
        session.apps.container_apps.begin_update(resource_group, name, ContainerAppModel(
            location=record.location, tags=tags, configuration=record.configuration, template=record.template)).result()
    return app.get().latest_revision_name


def record_secrets(session, resource_group: str, name: str) -> list:
    """The app's secrets with their values (kept across the switch: a PATCH replaces the list)."""
    return session.apps.container_apps.list_secrets(resource_group, name).value or []
