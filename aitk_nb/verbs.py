"""The verbs as plain functions: the magics and the CLI only parse, call one of these and display."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from inference_app.contract import app_dir, settings_path

from . import sync
from . import finetuning
from .config import InferenceConfig, parameter_values, set_parameter_value, write_text_atomic
from .deploy_lock import DeployLock
from .deploy_plan import deployed_settings, plan_deploy, restart_pending, served_by_others
from .endpoints import FAILURE_STATES, Endpoint, EndpointStatus, Logs
from .errors import AitkError, ConfirmationError, DeployError, NotProvisionedError
from .invocation import command
from .operations import Operation
from .project import Project, find_project
from .results import Card, DeployResult, ProvisionResult, Status, TeardownPlan
from .running_app import (CONSISTENT_ANSWERS, LIVE_TIMEOUT, adapter_versions, live_capable, restart_reasons,
                          wait_served)
from .scaffold import provision_files
from .targets import get_target


def _context(project: str | os.PathLike | None, credential: Any = None) -> tuple[Project, InferenceConfig, Any]:
    proj = find_project(project)
    cfg = InferenceConfig.load(proj.config_path)
    return proj, cfg, get_target(cfg, proj, credential=credential)


def begin_provision(target: str = "local", *, project: str | os.PathLike | None = None,
                    parameters: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                    port: int | None = None, what_if: bool = False, subscription: str | None = None,
                    resource_group: str | None = None, credential: Any = None, progress: bool = True,
                    continuation_token: str | None = None, yes: bool = False, rotate_key: bool = False,
                    cancel_previous: bool = False, confirm: Callable[[str], bool] | None = None) -> Operation[ProvisionResult]:
    """Start `provision` in the background; returns the operation (`.result()`, `.status()`,
    `.cancel()`: before the ARM deployment, at the next step; during it, through ARM).
    `continuation_token`: an earlier operation's, to resume its ARM deployment after a kernel restart
    (without it, an interrupted deployment of this same request is resumed from `.aitk/azure/`).
    `confirm(question) -> bool` answers provision's question before it changes resources that existed
    (asked in the thread waiting in `result()`); without it, or `yes`, such a plan is refused / applied.
    The parameters are read and checked before it starts: a bad file raises here."""
    proj = find_project(project)
    if target == "azure":
        # provisioning again: the subscription and group of what is provisioned, unless given; else the fine-tuning's
        previous = _previous_config(proj)
        ft = finetuning.load(proj)
        if previous.TARGET == "azure":
            subscription = subscription or previous.SUBSCRIPTION_ID
            resource_group = resource_group or previous.RESOURCE_GROUP_NAME
        if ft is not None:
            subscription = subscription or (ft.setting("SUBSCRIPTION_ID") or (None,))[0]
            resource_group = resource_group or (ft.setting("RESOURCE_GROUP_NAME") or (None,))[0]
    config = InferenceConfig(TARGET=target, SUBSCRIPTION_ID=subscription, RESOURCE_GROUP_NAME=resource_group)
    params, sources, ft = finetuning.provision_parameters(proj, parameters, overrides, config)
    files = provision_files(proj, parameters, params, sources)  # AI Toolkit's commands refused here, before anything
    tgt = get_target(config, proj, credential=credential)
    # what each target takes beside the parameters
    if target == "local":
        plan_options: dict[str, Any] = {"port": port}
        run_options = {**plan_options, "yes": yes}
    else:
        plan_options = {"sources": sources, "finetuning": ft}
        run_options = {**plan_options, "continuation_token": continuation_token, "yes": yes, "rotate_key": rotate_key,
                       "cancel_previous": cancel_previous}

    def work(op: Operation) -> ProvisionResult:
        if what_if:
            op.report(f"previewing what provision would do on the {target} target")
            planned = tgt.plan(params, **plan_options)
            return ProvisionResult(target, planned.config.ACA_APP_ENDPOINT, None, planned.changes, what_if=True,
                                   values=planned.values, notes=files, cost=_provision_cost(proj, tgt, params, planned.values))
        if progress:  # a plan that keeps a GPU up while idle is said before anything is made (issue 18)
            for note in _provision_cost(proj, tgt, params, []).notes:
                print(note, flush=True)
        made = tgt.provision(params, progress=progress, operation=op, **run_options)
        made.config.save(proj.config_path)
        named = (_keep_app_name(proj, Path(parameters) if parameters else None, made.config.ACA_APP_NAME)
                 if target == "azure" else [])  # a local app is the project's own (.aitk/local/): nothing to share
        return ProvisionResult(target, made.config.ACA_APP_ENDPOINT, proj.config_path, made.changes,
                               values=made.values, notes=files + made.notes + named, cost=_provision_cost(proj, tgt, params, made.values))

    return Operation.start(f"provision ({target})", work, confirm=confirm)


def _keep_app_name(proj: Project, given: Path | None, app: str | None) -> list[str]:
    """On the first provision, the app's resolved name goes into the parameters file (its acaAppName was
    null): the default is derived from the resource group, so two projects on defaults would otherwise be
    one owner (issue 16). Only that value changes in the file; a project provisioned with the packaged
    default parameters gets its own copy of them, with the name. The note that says so, if it did."""
    if not app:
        return []
    if given is not None and not given.resolve().is_relative_to(proj.root.resolve()):
        # a file the user pointed to from elsewhere (a team's shared one) is input only: not written
        if parameter_values(given).get("acaAppName") is None:
            return [f"this app is {app!r}: set acaAppName to it in {given} (not written: the file is outside the "
                    "project), or another project in the same resource group on default names is the same app"]
        return []
    path, packaged_default = given or proj.parameters_path, proj.parameters_file
    made = ""
    if not path.is_file():
        if not packaged_default.is_file() or packaged_default == path:
            return []
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, packaged_default.read_text(encoding="utf-8"))
        made = " (a copy of the packaged default parameters, made for it)"
    if parameter_values(path).get("acaAppName") is not None:
        return []
    set_parameter_value(path, "acaAppName", app)
    return [f"acaAppName {app!r} written into {path}{made}: this project's app from now on (another project in the "
            "same resource group needs another name)"]


def provision(target: str = "local", *, project: str | os.PathLike | None = None,
              parameters: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
              port: int | None = None, what_if: bool = False, subscription: str | None = None,
              resource_group: str | None = None, credential: Any = None, progress: bool = True,
              yes: bool = False, rotate_key: bool = False, cancel_previous: bool = False) -> ProvisionResult:
    """Create (or update) the target's environment from the template and parameters file, and write
    `infra/inference.config.json`. With `what_if`, only report what would change.

    local: `port` (default: the template's ingress port). azure: `subscription`, `resource_group`
    (default: those provisioned, else the fine-tuning's), `credential` (any azure-core TokenCredential;
    default DefaultAzureCredential); `yes` applies a plan that changes resources that existed without
    asking (it asks on stdin, and refuses where there is none); `rotate_key` gives an existing app a new
    API key (its current one is kept otherwise); `cancel_previous` cancels an earlier deployment still
    running instead of waiting for it.
    `begin_provision(...).result()`: an interrupt stops it at its next safe point."""
    return begin_provision(target, project=project, parameters=parameters, overrides=overrides, port=port,
                           what_if=what_if, subscription=subscription, resource_group=resource_group,
                           credential=credential, progress=progress, yes=yes, rotate_key=rotate_key,
                           cancel_previous=cancel_previous, confirm=ask_on_stdin).result()


def _provision_cost(proj: Project, tgt: Any, params: Any, resolved: list[tuple[str, Any, str]]):
    """What the provisioned app costs (issue 18): the template with the parameters as Azure resolved them
    (no location given: the resource group's, the template's default)."""
    from . import cost
    from .config import read_json

    values = {**params.arm_values(), **{name: value for name, value, _ in resolved if value is not None}}
    if not values.get("location") and hasattr(tgt, "group_location"):
        try:
            values["location"] = tgt.group_location()
        except AitkError:
            pass  # the price then says the region is not known
    return cost.for_provision(read_json(proj.template_path, "the project needs infra/provision/inference.json"), values, tgt.name)


def _previous_config(proj: Project) -> InferenceConfig:
    try:
        return InferenceConfig.load(proj.config_path)
    except AitkError:
        return InferenceConfig()


# what stopping at each of deploy's safe points leaves behind (the cancel error says it)
def _stopped(where: str) -> str:
    return {
        "lock": f"stopped while waiting for another deploy to this app: nothing was sent or changed; run "
                f"{command('deploy')} again",
        "syncing": "stopped between files: each file on the share is whole (old or new), settings.json still names "
                   f"what was deployed before and the replica was not restarted; run {command('deploy')} again to finish",
        "before restart": "every file is synced and settings.json written, the replica was not restarted; "
                          f"run {command('deploy')} again to restart it",
        "waiting": f"the replica was restarted and is still starting; {command('status')} shows when it is ready",
    }[where]


def begin_deploy(adapters: list[str] | tuple[str, ...] = (), model: str | None = None, *,
                 project: str | os.PathLike | None = None, restart: bool | None = None, wait: bool = True,
                 timeout: float | None = None, progress: bool = True, merge_adapter: bool | None = None,
                 credential: Any = None, yes: bool = False, confirm: Callable[[str], bool] | None = None,
                 wait_lock: bool = True) -> Operation[DeployResult]:
    """Start `deploy` in the background; returns the operation (`.result()`, `.status()`, `.cancel()`:
    between files, never within one; before the restart; or while waiting for /health). The inputs
    are checked against what is deployed, and against the share, before it starts: a bad adapter or
    model path raises here. An app that runs another server than aitk-nb's (one AI Toolkit provisioned) is
    switched to aitk-nb's in place only with `yes` or when `confirm(question)` answers yes; otherwise
    this raises before anything is sent. One deploy at a time per app: the app's deploy lock is taken
    here (waited for, or with `wait_lock` False refused at once) and held until the work ends."""
    if timeout is not None and timeout <= 0:
        raise DeployError(f"--timeout {timeout}: seconds to wait, more than 0")
    proj, cfg, tgt = _context(project, credential)
    switching = _consent_to_switch(tgt, cfg, yes, confirm)
    # an app of aitk-nb's from before each app had its own folder: moved to it, what it served carried over
    moving = not switching and tgt.old_layout()
    remote = tgt.remote()
    app_name = _app_name(proj, cfg)
    say = (lambda line: print(line, flush=True)) if progress else _quiet

    def planned():
        previous, previous_bytes = deployed_settings(remote, app_name)
        if moving and previous_bytes is None:
            previous = deployed_settings(remote, None)[0]
        plan = plan_deploy(proj, previous, list(adapters), model, merge_adapter, remote=remote, app=app_name)
        # read before anything is sent (a record that cannot be read stops deploy here), and kept: a deploy
        # that changes nothing restarts only a replica that does not run
        return previous, previous_bytes, plan, restart is not False and _serving(tgt)

    # one deploy at a time per app (issue 17): held from before the deployed settings are read (a second deploy
    # plans from what the first one left) until the work ends. Taken here when free; when another deploy holds
    # it, waited for in the background (the caller, a notebook form, is not blocked; the wait can be cancelled)
    try:
        lock = DeployLock.acquire(remote, app_name, wait=False, say=say)
    except DeployError:
        if not wait_lock:
            raise
        lock = None
    try:
        previous, previous_bytes, plan, serving = planned()  # the inputs checked before anything starts
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    settings_file, pending_mark = settings_path(app_name), restart_pending(app_name)

    def work(op: Operation) -> DeployResult:
        nonlocal lock, previous, previous_bytes, plan, serving
        waited = lock is None
        if waited:
            lock = DeployLock.acquire(remote, app_name, wait=True, say=say,
                                      checkpoint=lambda: op.checkpoint(_stopped("lock")))
        try:
            if waited:  # another deploy ran meanwhile: plan again from what it left
                previous, previous_bytes, plan, serving = planned()
            return _deploy_work(op)
        finally:
            lock.release()

    def _deploy_work(op: Operation) -> DeployResult:
        start = time.monotonic()
        plans = []
        for up in plan.uploads:  # every folder compared first: the progress then counts all the bytes to send
            op.checkpoint(_stopped("syncing"))
            op.report(f"comparing {up.dest} with the share")
            plans.append(sync.plan(up.source, remote, up.dest, adopt=up.reserved))
            if plans[-1].foreign:
                raise up.refusal(plans[-1].foreign, remote)
            if not up.reserved and plans[-1].changes and (others := served_by_others(remote, app_name, up.dest)):
                raise up.served_elsewhere(others, remote)
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
        plan.settings.adapter_versions = adapter_versions(remote, plan.settings)
        new_settings = plan.settings.dumps()
        changed = new_settings != previous_bytes or any(p.changes for p in plans)
        # an adapter-only change is applied by the running server itself (issue 17); anything else restarts
        reasons = restart_reasons(previous, plan.settings, plans, app_name) if changed else []
        if switching:
            reasons.append("switched to aitk-nb's server")
        elif moving:
            reasons.append("moved to the app's own folder on the share")
        app = _endpoint(proj, cfg, tgt)
        live = (changed and not reasons and serving and restart is None and not remote.exists(pending_mark))
        if live and not live_capable(app.fetch()):
            live, reasons = False, ["the running server did not answer /health, so it could not take the change live"
                                    if app.health is None else
                                    "the running server does not apply adapter changes itself (no settings_hash in "
                                    "its /health: an older inference_app or another server)"]
        if new_settings != previous_bytes:  # written last: the app never points at files that are not fully synced
            remote.write_bytes(settings_file, new_settings)
        synced.append(f"{settings_file}: {'written' if new_settings != previous_bytes else 'unchanged'}")
        # the replica runs what was there before this deploy until it restarts: said on the share (for the
        # next deploy, a teammate's too) until it has, so a stop here or --no-restart is not forgotten
        pending = (changed and not live) or remote.exists(pending_mark)
        if changed and not live:
            remote.write_bytes(pending_mark, b"synced by a deploy that has not restarted the replica yet\n")
        restarting = switching or moving or (restart if restart is not None else (pending or not serving))
        if restarting and not reasons:
            reasons = ["--restart" if restart else "no replica was running" if not serving
                       else "an earlier deploy synced changes without restarting"]
        health, served = None, None
        if switching:  # a new revision with aitk-nb's command and probes: the replica starts anew with it
            op.checkpoint(_stopped("before restart"))
            op.report(f"switching {cfg.ACA_APP_NAME} to aitk-nb's server", 1.0)
            app.revision = tgt.adopt(remote)
            remote.delete(pending_mark)
            if progress:
                print(f"switched {cfg.ACA_APP_NAME} to aitk-nb's server: revision {app.revision}", flush=True)
        elif moving:  # a new revision started in the app's own folder
            op.checkpoint(_stopped("before restart"))
            op.report(f"moving {cfg.ACA_APP_NAME} to its own folder on the share", 1.0)
            app.revision = tgt.move_to_app_dir()
            remote.delete(pending_mark)
            synced.append(f"moved from inference/ to {app_dir(app_name)}/: the app now starts there (inference/ is left "
                          "as it was: delete it once no app runs from it)")
        elif restarting:
            op.checkpoint(_stopped("before restart"))
            op.report("restarting the replica", 1.0)
            app.restart()
            if pending:
                remote.delete(pending_mark)
            if progress and app.revision:
                print(f"restarted revision {app.revision} ({'; '.join(reasons)})", flush=True)
        if wait and (restart is not False or switching or moving):
            limit = timeout
            if not live:
                waited = time.monotonic()
                health = app.wait(timeout, progress=progress, checkpoint=lambda: op.checkpoint(_stopped("waiting")),
                                  report=op.report).health
                limit = None if timeout is None else max(1.0, timeout - (time.monotonic() - waited))
            # /health must report the settings this deploy wrote: the card shows what is served, not the plan
            served = wait_served(app, new_settings, timeout=limit or LIVE_TIMEOUT,
                                 consistent=1 if cfg.TARGET == "local" else CONSISTENT_ANSWERS,
                                 checkpoint=lambda: op.checkpoint(_stopped("waiting")), report=op.report)
            health = served.health
        return DeployResult(cfg.TARGET, cfg.ACA_APP_ENDPOINT, plan.settings, synced, restarting, health,
                            time.monotonic() - start, changed=changed, restart=restart, live=live,
                            restart_reasons=reasons if restarting else [], served=served and served.line())

    return Operation.start("deploy", work)


def _consent_to_switch(tgt: Any, cfg: InferenceConfig, yes: bool, confirm: Callable[[str], bool] | None) -> bool:
    """Whether deploy switches the app to aitk-nb's server first (it runs another one: AI Toolkit's); asked
    before anything is sent, and refused in one line naming the switch when no one says yes."""
    other = tgt.other_server()
    if other is None:
        return False
    what = (f"container app {cfg.ACA_APP_NAME} runs another server ({other}), not aitk-nb's, so a deploy would "
            "never become ready")
    switch = ("switches it to aitk-nb's server in place (same app and URL, the share and AI Toolkit's files kept, "
              "adoption recorded on the app, so a later teardown deletes this app, never AI Toolkit's environment, "
              "storage or share; README: \"An app AI Toolkit provisioned\")")
    if yes or (confirm is not None and confirm(f"{what}.\nSwitch it to aitk-nb's server in place (same app, URL and "
                                                 "share; its command, probes and API key become aitk-nb's, and a later teardown deletes the app)? [y/N] ")):
        return True
    raise ConfirmationError(f"{what}; nothing was sent or changed: {command('deploy --yes')} (with the same options) "
                            f"{switch}")


def _app_name(proj: Project, cfg: InferenceConfig) -> str:
    """The app whose folder on the share deploy writes (`inference_app/contract.py`, `app_dir`)."""
    if not cfg.ACA_APP_NAME:
        raise NotProvisionedError(f"{proj.config_path} names no ACA_APP_NAME; run {command('provision')} (or fill it in)")
    return cfg.ACA_APP_NAME


def _quiet(line: str) -> None:
    pass


def _serving(tgt: Any) -> bool:
    """Whether the app has a replica that runs (or is starting): a deploy that changes nothing leaves it."""
    return tgt.app_state().status not in FAILURE_STATES | {EndpointStatus.STOPPED}


def deploy(adapters: list[str] | tuple[str, ...] = (), model: str | None = None, *,
           project: str | os.PathLike | None = None, restart: bool | None = None, wait: bool = True,
           timeout: float | None = None, progress: bool = True, merge_adapter: bool | None = None,
           credential: Any = None, yes: bool = False, wait_lock: bool = True) -> DeployResult:
    """Sync the inference app, the base model and the adapters to the share, then restart the replica
    and wait until its health route answers. An adapter or model is a local folder (sent), `share:PATH`
    (a folder already on the share, served where it is) or for the model a hub id; `NAME=...` names
    an adapter (default: its folder's name). Without `adapters` the deployed ones stay; without `model`
    the deployed base stays, or is the one the adapters' adapter_config.json records.
    `restart`: None restarts when the base model, server code, requirements or server settings changed (or no
    replica runs; a running server applies adapter-only changes itself), True always, False never.
    `yes`: an app that runs another server (one AI Toolkit provisioned) is switched to aitk-nb's in place
    without asking (it asks on stdin, and refuses where there is none).
    One deploy at a time per app: `wait_lock` False fails at once when another holds the app's deploy lock.
    `begin_deploy(...).result()`: an interrupt stops it at its next safe point (between files)."""
    return begin_deploy(adapters, model, project=project, restart=restart, wait=wait, timeout=timeout,
                        progress=progress, merge_adapter=merge_adapter, credential=credential, yes=yes,
                        confirm=ask_on_stdin, wait_lock=wait_lock).result()


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
    again. The local target runs one replica: `stop` and `start` only."""
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
             credential: Any = None, target: str | None = None, subscription: str | None = None,
             resource_group: str | None = None, show: Callable[[Any], None] | None = print) -> TeardownPlan:
    """Delete what aitk-nb made for this project's app (unless `app_only`, the share and environment too)
    and keep everything else: what existed before provision, what another app made. Shows the plan
    first (`show`), then acts with `yes`, else asks on stdin (no stdin: refuses, nothing removed).

    Ownership is read from Azure itself (tags), so it works from a fresh clone: without
    `infra/inference.config.json`, pass `target="azure"` and `resource_group` (default: the
    fine-tuning's) and the app is the one the parameters name."""
    proj = find_project(project)
    if proj.config_path.exists():
        cfg = InferenceConfig.load(proj.config_path)
    else:
        ft = finetuning.load(proj)
        target = target or ("azure" if resource_group or ft is not None else None)
        if target is None:
            raise NotProvisionedError(f"no {proj.config_path.name} here: nothing provisioned from this clone; to tear down "
                                      "what aitk-nb made on Azure, pass --target azure --resource-group RG")
        if ft is not None:
            subscription = subscription or (ft.setting("SUBSCRIPTION_ID") or (None,))[0]
            resource_group = resource_group or (ft.setting("RESOURCE_GROUP_NAME") or (None,))[0]
        cfg = InferenceConfig(TARGET=target, SUBSCRIPTION_ID=subscription, RESOURCE_GROUP_NAME=resource_group)
    tgt = get_target(cfg, proj, credential=credential)
    app = _endpoint(proj, cfg, tgt)
    plan = app.teardown_plan(app_only=app_only)
    if show is not None:
        show(plan)
    deleting = [s for s in plan.steps if s.delete]
    if deleting and not yes and not ask_on_stdin(f"Delete the {len(deleting)} item{'s' * (len(deleting) != 1)} marked delete above? [y/N] "):
        raise ConfirmationError("teardown not confirmed; nothing removed (the plan above says what it would delete and "
                                "keep; pass --yes to tear down)")
    return app.teardown(app_only=app_only, plan=plan.steps)


def ask_on_stdin(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, OSError, NotImplementedError):  # no stdin (nbclient): IPython's StdinNotImplementedError
        return False
