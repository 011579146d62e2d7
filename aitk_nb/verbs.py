"""The verbs as plain functions: the magics and the CLI only parse, call one of these and display."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_app.contract import SETTINGS_PATH, DeployedSettings

from . import sync
from .config import InferenceConfig, load_parameters
from .deploy_plan import plan_deploy
from .endpoints import Endpoint, Logs
from .errors import AitkError, NotProvisionedError
from .project import Project, find_project
from .results import Card, Displayable, Status
from .targets import get_target


@dataclass(repr=False)
class ProvisionResult(Displayable):
    target: str
    endpoint: str | None
    config_path: Path | None
    changes: list[tuple[str, str]]
    what_if: bool = False

    def card(self) -> Card:
        rows = [(what, action) for what, action in self.changes]
        if self.what_if:
            return Card(f"What provision would do on the {self.target} target (nothing changed)", rows,
                        ["run again without --what-if to apply"])
        return Card(f"Provisioned the {self.target} target", rows + [("endpoint", self.endpoint), ("config", str(self.config_path))],
                    ["next: `%aitk deploy --adapter PATH`"])


@dataclass(repr=False)
class DeployResult(Displayable):
    target: str
    endpoint: str
    settings: DeployedSettings
    synced: list[str]
    restarted: bool
    health: dict | None
    seconds: float

    @property
    def variants(self) -> list[str]:
        return self.settings.variants()

    def card(self) -> Card:
        state = ("ready" if self.health else "restarted, not awaited (--no-wait)") if self.restarted else "files synced, not restarted (--no-restart)"
        rows = [("endpoint", self.endpoint), ("state", state), ("base model", self.settings.base_model),
                ("variants", ", ".join(self.variants))] + [("synced", s) for s in self.synced] + [("took", f"{self.seconds:.1f} s")]
        return Card(f"Deployed to the {self.target} target", rows,
                    ["evaluate with `%%aitk eval --variants " + ",".join(self.variants) + "`"] if self.settings.adapters else [])


def _context(project: str | os.PathLike | None, credential: Any = None) -> tuple[Project, InferenceConfig, Any]:
    proj = find_project(project)
    cfg = InferenceConfig.load(proj.config_path)
    return proj, cfg, get_target(cfg, proj, credential=credential)


def provision(target: str = "local", *, project: str | os.PathLike | None = None, parameters: str | os.PathLike | None = None,
              overrides: dict[str, Any] | None = None, port: int | None = None, what_if: bool = False,
              subscription: str | None = None, resource_group: str | None = None, credential: Any = None,
              progress: bool = True) -> ProvisionResult:
    """Create (or update) the target's environment from the template and parameters file, and write
    `infra/inference.config.json`. With `what_if`, only report what would change.

    local: `port` (default: the template's ingress port). azure: `subscription`, `resource_group`,
    `credential` (any azure-core TokenCredential; default DefaultAzureCredential)."""
    proj = find_project(project)
    params = load_parameters(Path(parameters) if parameters else proj.parameters_path, overrides)
    if target == "azure" and not (subscription and resource_group):
        # provisioning again: the subscription and group of what is provisioned, unless given
        previous = _previous_config(proj)
        if previous.TARGET == "azure":
            subscription = subscription or previous.SUBSCRIPTION_ID
            resource_group = resource_group or previous.RESOURCE_GROUP_NAME
    config = InferenceConfig(TARGET=target, SUBSCRIPTION_ID=subscription, RESOURCE_GROUP_NAME=resource_group)
    tgt = get_target(config, proj, credential=credential)
    options = {"port": port} if target == "local" else {}
    if what_if:
        config, changes = tgt.plan(params, **options)
        return ProvisionResult(target, config.ACA_APP_ENDPOINT, None, changes, what_if=True)
    config, changes = tgt.provision(params, progress=progress, **options)
    config.save(proj.config_path)
    return ProvisionResult(target, config.ACA_APP_ENDPOINT, proj.config_path, changes)


def _previous_config(proj: Project) -> InferenceConfig:
    try:
        return InferenceConfig.load(proj.config_path)
    except AitkError:
        return InferenceConfig()


def deploy(adapters: list[str] | tuple[str, ...] = (), model: str | None = None, *, project: str | os.PathLike | None = None,
           restart: bool = True, wait: bool = True, timeout: float | None = None, progress: bool = True,
           merge_adapter: bool | None = None, credential: Any = None) -> DeployResult:
    """Sync the inference app, the base model and the adapters to the share, then restart the replica
    and wait until its health route answers."""
    start = time.monotonic()
    proj, cfg, tgt = _context(project, credential)
    remote = tgt.remote()
    previous = DeployedSettings.parse(remote.read_bytes(SETTINGS_PATH))
    settings, uploads = plan_deploy(proj, previous, list(adapters), model, merge_adapter)
    synced = []
    for up in uploads:
        done = sync.sync(up.source, remote, up.dest, progress=progress)
        synced.append(done.summary())
        if progress:
            print(done.summary(), flush=True)
    # written last: the app never points at files that are not fully synced
    remote.write_bytes(SETTINGS_PATH, settings.dumps())
    health = None
    if restart:
        app = _endpoint(proj, cfg, tgt).restart()
        if progress and app.revision:
            print(f"restarted revision {app.revision}", flush=True)
        health = app.wait(timeout, progress=progress).health if wait else None
    return DeployResult(cfg.TARGET, cfg.ACA_APP_ENDPOINT, settings, synced, restart, health, time.monotonic() - start)


def status(*, project: str | os.PathLike | None = None, credential: Any = None) -> Status:
    """Target, endpoint, replica state and what is deployed."""
    _, _, tgt = _context(project, credential)
    return tgt.status()


def endpoint(*, project: str | os.PathLike | None = None, credential: Any = None, fetch: bool = True) -> Endpoint:
    """The deployed app as an object: its URLs, status and raw record (as of `fetch()`), and its verbs
    (`wait`, `restart`, `scale`, `logs`, `api_key`, `teardown`). `fetch=False` skips reading its state."""
    proj, cfg, tgt = _context(project, credential)
    if not cfg.ACA_APP_ENDPOINT:
        raise NotProvisionedError(f"no endpoint yet in {proj.config_path}; run `%aitk provision`, then `%aitk deploy`")
    app = _endpoint(proj, cfg, tgt)
    return app.fetch() if fetch else app


def _endpoint(proj: Project, cfg: InferenceConfig, tgt: Any) -> Endpoint:
    return Endpoint(cfg.ACA_APP_ENDPOINT, cfg.TARGET, cfg.ACA_APP_NAME, proj, _target=tgt)


def logs(*, tail: int | None = 100, follow: bool = False, project: str | os.PathLike | None = None,
         credential: Any = None) -> Logs | None:
    """The replica's output: the last `tail` lines, or (follow) new lines as they come until interrupted."""
    app = _endpoint(*_context(project, credential))
    if not follow:
        return app.logs(tail)
    print(app.logs(tail))
    try:
        for line in app.follow_logs():
            print(line, flush=True)
    except KeyboardInterrupt:
        pass
    return None


def scale(*, min_replicas: int | None = None, max_replicas: int | None = None, stop: bool = False, start: bool = False,
          project: str | os.PathLike | None = None, credential: Any = None) -> Card:
    """Replica bounds (min 0 = scale to zero when idle), or stop the app (no replica at all) and start it
    again. Azure target only: the local target runs one replica (`teardown --app-only`, `deploy`)."""
    if stop and start:
        raise AitkError("--stop and --start: pass one of them")
    if not (stop or start) and min_replicas is None and max_replicas is None:
        raise AitkError("nothing to do: pass --min N and/or --max N, or --stop / --start")
    for flag, value in (("--min", min_replicas), ("--max", max_replicas)):
        if value is not None and not 0 <= value <= 1000:
            raise AitkError(f"{flag} {value}: a replica count from 0 to 1000")
    if max_replicas == 0:
        raise AitkError("--max 0: Container Apps needs at least one; to have no replica, use --stop")
    app = _endpoint(*_context(project, credential))
    app.scale(min_replicas=min_replicas, max_replicas=max_replicas, stop=stop, start=start)
    return Card(f"Scaled {app.name}", [("running", app.running), ("min replicas", app.min_replicas),
                                       ("max replicas", app.max_replicas), ("revision", app.revision)])


def teardown(*, app_only: bool = False, yes: bool = False, project: str | os.PathLike | None = None,
              credential: Any = None) -> Card:
    """Stop the app; unless `app_only`, also remove the environment (the share with its files) and the config."""
    proj, cfg, tgt = _context(project, credential)
    what = "the app" if app_only else f"the {cfg.TARGET} environment, its share and {proj.config_path.name}"
    if not yes and not _confirm(f"Tear down {what}? [y/N] "):
        raise AitkError(f"teardown not confirmed; nothing removed (pass --yes to tear down {what})")
    return _endpoint(proj, cfg, tgt).teardown(app_only=app_only)


def _confirm(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, OSError, NotImplementedError):  # no stdin (nbclient): IPython's StdinNotImplementedError
        return False
