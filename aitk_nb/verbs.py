"""The verbs as plain functions: the magics and the CLI only parse, call one of these and display."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from inference_app.contract import SETTINGS_PATH

from . import sync
from .config import InferenceConfig, load_parameters
from .deploy_plan import RESTART_PENDING, deployed_settings, plan_deploy
from .endpoints import FAILURE_STATES, Endpoint, EndpointStatus, Logs
from .errors import AitkError, NotProvisionedError
from .invocation import command
from .operations import Operation
from .project import Project, find_project
from .results import Card, DeployResult, ProvisionResult, Status
from .targets import get_target


def _context(project: str | os.PathLike | None, credential: Any = None) -> tuple[Project, InferenceConfig, Any]:
    proj = find_project(project)
    cfg = InferenceConfig.load(proj.config_path)
    return proj, cfg, get_target(cfg, proj, credential=credential)


def begin_provision(target: str = "local", *, project: str | os.PathLike | None = None,
                    parameters: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                    port: int | None = None, what_if: bool = False, subscription: str | None = None,
                    resource_group: str | None = None, credential: Any = None, progress: bool = True,
                    continuation_token: str | None = None) -> Operation[ProvisionResult]:
    """Start `provision` in the background; returns the operation (`.result()`, `.status()`,
    `.cancel()`: before the ARM deployment, at the next step; during it, through ARM).
    `continuation_token`: an earlier operation's, to resume its ARM deployment after a kernel restart
    (without it, an interrupted deployment of this project is resumed from `.aitk/azure/` anyway).
    The parameters are read and checked before it starts: a bad file raises here."""
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
    # what each target takes beside the parameters
    plan_options: dict[str, Any] = {"port": port} if target == "local" else {}
    run_options = plan_options if target == "local" else {"continuation_token": continuation_token}

    def work(op: Operation) -> ProvisionResult:
        if what_if:
            op.report(f"previewing what provision would do on the {target} target")
            planned, changes = tgt.plan(params, **plan_options)
            return ProvisionResult(target, planned.ACA_APP_ENDPOINT, None, changes, what_if=True)
        made, changes = tgt.provision(params, progress=progress, operation=op, **run_options)
        made.save(proj.config_path)
        return ProvisionResult(target, made.ACA_APP_ENDPOINT, proj.config_path, changes)

    return Operation.start(f"provision ({target})", work)


def provision(target: str = "local", *, project: str | os.PathLike | None = None,
              parameters: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
              port: int | None = None, what_if: bool = False, subscription: str | None = None,
              resource_group: str | None = None, credential: Any = None, progress: bool = True) -> ProvisionResult:
    """Create (or update) the target's environment from the template and parameters file, and write
    `infra/inference.config.json`. With `what_if`, only report what would change.

    local: `port` (default: the template's ingress port). azure: `subscription`, `resource_group`,
    `credential` (any azure-core TokenCredential; default DefaultAzureCredential).
    `begin_provision(...).result()`: an interrupt stops it at its next safe point."""
    return begin_provision(target, project=project, parameters=parameters, overrides=overrides, port=port,
                           what_if=what_if, subscription=subscription, resource_group=resource_group,
                           credential=credential, progress=progress).result()


def _previous_config(proj: Project) -> InferenceConfig:
    try:
        return InferenceConfig.load(proj.config_path)
    except AitkError:
        return InferenceConfig()


# what stopping at each of deploy's safe points leaves behind (the cancel error says it)
def _stopped(where: str) -> str:
    return {
        "syncing": "stopped between files: each file on the share is whole (old or new), settings.json still names "
                   f"what was deployed before and the replica was not restarted; run {command('deploy')} again to finish",
        "before restart": "every file is synced and settings.json written, the replica was not restarted; "
                          f"run {command('deploy')} again to restart it",
        "waiting": f"the replica was restarted and is still starting; {command('status')} shows when it is ready",
    }[where]


def begin_deploy(adapters: list[str] | tuple[str, ...] = (), model: str | None = None, *,
                 project: str | os.PathLike | None = None, restart: bool | None = None, wait: bool = True,
                 timeout: float | None = None, progress: bool = True, merge_adapter: bool | None = None,
                 credential: Any = None) -> Operation[DeployResult]:
    """Start `deploy` in the background; returns the operation (`.result()`, `.status()`, `.cancel()`:
    between files, never within one; before the restart; or while waiting for /health). The inputs
    are checked against what is deployed, and against the share, before it starts: a bad adapter or
    model path raises here."""
    proj, cfg, tgt = _context(project, credential)
    remote = tgt.remote()
    previous, previous_bytes = deployed_settings(remote)
    plan = plan_deploy(proj, previous, list(adapters), model, merge_adapter, remote=remote)
    # read before anything is sent (a record that cannot be read stops deploy here), and kept: a deploy
    # that changes nothing restarts only a replica that does not run
    serving = restart is not False and _serving(tgt)

    def work(op: Operation) -> DeployResult:
        start = time.monotonic()
        plans = []
        for up in plan.uploads:  # every folder compared first: the progress then counts all the bytes to send
            op.checkpoint(_stopped("syncing"))
            op.report(f"comparing {up.dest} with the share")
            plans.append(sync.plan(up.source, remote, up.dest, adopt=up.reserved))
            if plans[-1].foreign:
                raise up.refusal(plans[-1].foreign, remote)
        total, sent = sum(p.upload_bytes for p in plans) or 1, 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            op.report(f"uploading: {sync.human(sent)} of {sync.human(total)}", sent / total)

        synced = []
        for p in plans:
            sync.run(p, remote, progress=progress, checkpoint=lambda: op.checkpoint(_stopped("syncing")), on_bytes=count)
            synced += p.lines()
            if progress:
                print("\n".join(p.lines()), flush=True)
        synced += [f"served from the share, nothing sent: {where}" for where in plan.on_share]
        op.checkpoint(_stopped("syncing"))
        new_settings = plan.settings.dumps()
        changed = new_settings != previous_bytes or any(p.changes for p in plans)
        if new_settings != previous_bytes:  # written last: the app never points at files that are not fully synced
            remote.write_bytes(SETTINGS_PATH, new_settings)
        synced.append(f"{SETTINGS_PATH}: {'written' if new_settings != previous_bytes else 'unchanged'}")
        app = _endpoint(proj, cfg, tgt)
        # the replica runs what was there before this deploy until it restarts: said on the share (for the
        # next deploy, a teammate's too) until it has, so a stop here or --no-restart is not forgotten
        pending = changed or remote.exists(RESTART_PENDING)
        if changed:
            remote.write_bytes(RESTART_PENDING, b"synced by a deploy that has not restarted the replica yet\n")
        restarting = restart if restart is not None else (pending or not serving)
        health = None
        if restarting:
            op.checkpoint(_stopped("before restart"))
            op.report("restarting the replica", 1.0)
            app.restart()
            if pending:
                remote.delete(RESTART_PENDING)
            if progress and app.revision:
                print(f"restarted revision {app.revision}", flush=True)
        if wait and restart is not False:
            health = app.wait(timeout, progress=progress, checkpoint=lambda: op.checkpoint(_stopped("waiting")),
                              report=op.report).health
        return DeployResult(cfg.TARGET, cfg.ACA_APP_ENDPOINT, plan.settings, synced, restarting, health,
                            time.monotonic() - start, changed=changed, restart=restart)

    return Operation.start("deploy", work)


def _serving(tgt: Any) -> bool:
    """Whether the app has a replica that runs (or is starting): a deploy that changes nothing leaves it."""
    return tgt.app_state().status not in FAILURE_STATES | {EndpointStatus.STOPPED}


def deploy(adapters: list[str] | tuple[str, ...] = (), model: str | None = None, *,
           project: str | os.PathLike | None = None, restart: bool | None = None, wait: bool = True,
           timeout: float | None = None, progress: bool = True, merge_adapter: bool | None = None,
           credential: Any = None) -> DeployResult:
    """Sync the inference app, the base model and the adapters to the share, then restart the replica
    and wait until its health route answers. An adapter or model is a local folder (sent), `share:PATH`
    (a folder already on the share, served where it is) or for the model a hub id; `NAME=...` names
    an adapter (default: its folder's name). Without `adapters` the deployed ones stay; without `model`
    the deployed base stays, or is the one the adapters' adapter_config.json records.
    `restart`: None restarts only when something changed (or no replica runs), True always, False never.
    `begin_deploy(...).result()`: an interrupt stops it at its next safe point (between files)."""
    return begin_deploy(adapters, model, project=project, restart=restart, wait=wait, timeout=timeout,
                        progress=progress, merge_adapter=merge_adapter, credential=credential).result()


def status(*, project: str | os.PathLike | None = None, credential: Any = None) -> Status:
    """Target, endpoint, replica state and what is deployed."""
    _, _, tgt = _context(project, credential)
    return tgt.status()


def endpoint(*, project: str | os.PathLike | None = None, credential: Any = None, fetch: bool = True) -> Endpoint:
    """The deployed app as an object: its URLs, status and raw record (as of `fetch()`), and its verbs
    (`wait`, `restart`, `scale`, `logs`, `api_key`, `teardown`). `fetch=False` skips reading its state."""
    proj, cfg, tgt = _context(project, credential)
    if not cfg.ACA_APP_ENDPOINT:
        raise NotProvisionedError(f"no endpoint yet in {proj.config_path}; run {command('provision')}, then {command('deploy')}")
    app = _endpoint(proj, cfg, tgt)
    return app.fetch() if fetch else app


def _endpoint(proj: Project, cfg: InferenceConfig, tgt: Any) -> Endpoint:
    return Endpoint(cfg.ACA_APP_ENDPOINT, cfg.TARGET, cfg.ACA_APP_NAME, proj, _target=tgt)


def logs(*, tail: int | None = 100, follow: bool = False, project: str | os.PathLike | None = None,
         credential: Any = None) -> Logs | None:
    """The replica's output: the last `tail` lines, or (follow) new lines as they come until interrupted."""
    if tail is not None and tail < 0:
        raise AitkError(f"--tail {tail}: a number of lines, 0 or more")
    app = _endpoint(*_context(project, credential))
    if not follow:
        return app.logs(tail)
    try:
        for line in app.follow_logs(100 if tail is None else tail):
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
