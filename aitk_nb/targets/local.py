"""The local target: the Azure setup mirrored on one machine.

Provision reads the container app out of the same ARM template the Azure target deploys into an app
record (`aitk_nb.local.record`), and makes a folder that plays the file share. A replica is a
subprocess running the template's command with the mount path pointing at that folder
(`aitk_nb.local.process`). It is ready when the readiness probe's route answers 200, as in Container
Apps, and it has the startup probe's budget (initial delay + period x failure threshold) to get there.

Ownership, as on Azure: a share folder provision creates gets a marker file naming the app
(`.aitk-nb-owner`, inside the folder, so it goes with it and a copy of the project sees it); teardown
deletes a share folder only when it carries that mark, and keeps one that existed before provision.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from inference_app.contract import APP_NAME_ENV, LEGACY_CODE_DIR

from ..arm import Template
from ..config import InferenceConfig, Parameters, read_json, write_json_atomic
from ..deploy_plan import deployed_settings
from ..endpoints import FAILURE_STATES, AppState, EndpointStatus, Readiness
from ..errors import (AitkError, ConfigError, NotProvisionedError, PortInUseError, ReplicaCrashedError,
                      ReplicaOutdatedError)
from ..invocation import command
from ..local.logs import LogFile
from ..local.process import NOT_OURS, STOPPED, ReplicaProcess, port_free
from ..local.record import HOST, AppRecord
from ..operations import Operation
from ..project import Project
from ..results import Status, TeardownStep
from ..sync import LocalFolderRemote
from . import Provisioned

LOG_TAIL = 25
OWNER_MARKER = ".aitk-nb-owner"  # in a share folder provision created: the app's name
APP_ONLY = "kept (--app-only)"


def _exit_words(code: int) -> str:
    """How the replica ended: " with code 3", ", exit signal 9 (SIGKILL)" (a shell reports a child killed
    by signal N as 128 + N)."""
    import signal

    number = -code if code < 0 else code - 128 if code > 128 else None
    try:
        name = signal.Signals(number).name if number else None
    except ValueError:
        name = None
    if name is None:
        return f" with code {code}"
    return f", exit signal {number} ({name})" if code < 0 else f" with code {code} (signal {number}, {name})"


class LocalTarget:
    name = "local"
    http_verify = True

    def __init__(self, project: Project, config: InferenceConfig | None = None):
        self.project = project
        self.dir = project.state_dir / "local"
        self.record_path = self.dir / "app.json"
        self.pid_path = self.dir / "replica.json"
        self.log = LogFile(self.dir / "replica.log")

    # -- provision -------------------------------------------------------------------------------
    def plan(self, params: Parameters, *, port: int | None = None) -> Provisioned:
        _, config, changes = self._plan(params, port)
        return Provisioned(config, changes)

    def _plan(self, params: Parameters, port: int | None) -> tuple[AppRecord, InferenceConfig, list[tuple[str, str]]]:
        template = Template(read_json(self.project.template_path, "the project needs infra/provision/inference.json"),
                            params.arm_values())
        share_name = template.parameter("fileShareName")
        record = AppRecord.from_template(template, self.dir / "shares" / share_name, port)
        config = InferenceConfig(TARGET="local", FILE_SHARE_NAME=share_name, ACA_APP_NAME=record.name,
                                 ACA_APP_ENDPOINT=record.endpoint)
        old = self.record()
        share = Path(record.share)
        changes = [
            ("file share (folder)", "create" if not share.is_dir() else "no change" if self._share_owner(share) == record.name
             else "Reuse (existed before provision: kept at teardown)"),
            ("container app (record)", "create" if old is None else "no change" if old == record else "modify"),
        ]
        return record, config, changes

    def provision(self, params: Parameters, *, port: int | None = None, progress: bool = True,
                  operation: Operation, yes: bool = False) -> Provisioned:
        record, config, changes = self._plan(params, port)
        operation.checkpoint("nothing was made")
        share = Path(record.share)
        if not share.is_dir():
            share.mkdir(parents=True)
            (share / OWNER_MARKER).write_text(record.name + "\n", encoding="utf-8")
        record.save(self.record_path)
        notes = []
        replica = self.replica()
        if replica is not None and replica.alive() and (changed := _outdated(replica, record)):
            running = f"the running replica (pid {replica.pid}) was started before this change of {changed}"
            # asked (or --yes): a restart is a model reload; no one to ask leaves it to the next deploy
            if yes or operation.ask(f"{running}; restart it now? [y/N] "):
                self.restart()
                notes.append(f"{running}: restarted; {command('status')} shows when it is ready")
            else:
                notes.append(f"{running} and still runs as before; {command('deploy')} restarts it")
        return Provisioned(config, changes, notes=notes)

    @staticmethod
    def _share_owner(share: Path) -> str | None:
        try:
            return (share / OWNER_MARKER).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None

    def record(self) -> AppRecord | None:
        return AppRecord.load(self.record_path)

    def require_record(self) -> AppRecord:
        record = self.record()
        if record is None:
            raise NotProvisionedError(f"the local target has no app yet; run {command('provision --target local')}")
        return record

    def api_key(self) -> str | None:
        """The local replica gets AITK_API_KEY from the toolkit's own environment, if set."""
        return os.environ.get("AITK_API_KEY")

    def other_server(self) -> str | None:
        """The local replica runs the template's command: never another server to switch from."""
        return None

    def old_layout(self) -> bool:
        record = self.record()
        if record is not None and f"{record.mount_path}/{LEGACY_CODE_DIR}" in " ".join(record.command):
            raise NotProvisionedError(f"the local app was provisioned for the old share layout ({LEGACY_CODE_DIR}/); run "
                                      f"{command('provision --target local')} again to start it in its own folder, then deploy")
        return False

    def remote(self) -> LocalFolderRemote:
        return LocalFolderRemote(Path(self.require_record().share))

    # -- the replica -----------------------------------------------------------------------------
    def replica(self) -> ReplicaProcess | None:
        """The replica last started (running or not), or None."""
        if not self.pid_path.exists():
            return None
        unreadable = (f"{self.pid_path} is not a replica record aitk-nb can read (truncated?), so no process was "
                      "signalled; if a replica still runs, stop it yourself, then delete the file and run again")
        try:
            return ReplicaProcess.from_json(read_json(self.pid_path, f"run {command('deploy')}"))
        except (ConfigError, ValueError):
            raise ConfigError(unreadable) from None

    def running(self) -> bool:
        replica = self.replica()
        return replica is not None and replica.alive()

    def stop(self, timeout: float = 15.0) -> str | None:
        """Stop the replica (its whole process group) if its record proves which process it is; what
        was done, or None when no replica was running."""
        replica = self.replica()
        if replica is None:
            return None
        outcome = replica.stop(timeout)
        self.pid_path.unlink(missing_ok=True)
        if outcome == NOT_OURS:
            return (f"{self.pid_path.name}: pid {replica.pid} is not the replica it recorded; not signalled "
                    "(if a replica still runs, stop it yourself)")
        return "replica stopped" if outcome == STOPPED else None

    def restart(self) -> None:
        """Replace the replica with a new one (the endpoint's `wait()` waits until it is ready)."""
        record = self.require_record()
        self.stop()  # a record that does not prove its process is dropped, and the port check below says the rest
        if not port_free(HOST, record.port):
            raise PortInUseError(
                f"port {record.port} on {HOST} is in use by another process; stop it, or provision the local "
                f"target on a free port: {command(f'provision --target local --port {record.port + 1}')}")
        python = os.environ.get("AITK_LOCAL_PYTHON", sys.executable)
        if python == sys.executable and importlib.util.find_spec("torch") is None:
            raise AitkError("the local target runs the inference app with this Python, which has no torch; "
                            "install the server extra (`pip install 'aitk-nb[server]'`) or set AITK_LOCAL_PYTHON "
                            "to a Python that has it")
        env = {**os.environ, **record.env,
               "AITK_MOUNT_ROOT": record.share, "PORT": str(record.port), "HOST": HOST,
               APP_NAME_ENV: record.name,  # as Container Apps sets it: the command finds the app's folder by it
               "AITK_PYTHON": python, "PYTHONUNBUFFERED": "1"}
        self.log.rotate()
        replica = ReplicaProcess.spawn(record.local_command(), cwd=record.share, env=env, log=self.log.path,
                                       port=record.port, app=asdict(record))
        write_json_atomic(self.pid_path, replica.to_json())

    # -- what the endpoint object asks -----------------------------------------------------------
    @property
    def readiness(self) -> Readiness:
        record = self.require_record()
        # the process is looked at on every turn (cheap): a crash is reported at once; a replica that
        # is not there (never started, or stopped) will not become ready by itself either
        return Readiness(record.readiness_path, record.startup_timeout, health_every=0.5, state_every=0.0,
                         gives_up_on=FAILURE_STATES | {EndpointStatus.STOPPED})

    def app_state(self) -> AppState:
        record = self.require_record()
        replica = self.replica()
        raw = {"app": asdict(record), "replica": replica and replica.to_json()}
        if replica is None:
            return AppState(EndpointStatus.STOPPED, "no replica", raw, running="Stopped", min_replicas=0, max_replicas=1,
                            replicas=0)
        if not replica.alive():
            code = replica.exit_code()
            how = "" if code is None else _exit_words(code)
            return AppState(EndpointStatus.FAILED, "replica exited" + how, raw, running="Running", min_replicas=1,
                            max_replicas=1, replicas=0)
        if changed := _outdated(replica, record):  # provisioned again since it started: deploy restarts it
            return AppState(EndpointStatus.DEGRADED, f"replica (pid {replica.pid}) started before provision changed "
                            f"{changed}", raw, running="Running", min_replicas=1, max_replicas=1, replicas=1)
        # Running means the process runs; whether it serves yet is what the health route says
        return AppState(EndpointStatus.RUNNING, f"replica running (pid {replica.pid})", raw, running="Running",
                        min_replicas=1, max_replicas=1, replicas=1)

    def failure(self, endpoint) -> AitkError:
        if endpoint.status is EndpointStatus.STOPPED:
            return NotProvisionedError(f"no replica is running; run {command('deploy')}")
        path = self.require_record().readiness_path
        if endpoint.status is EndpointStatus.DEGRADED:  # alive, but not the app as provisioned now
            return ReplicaOutdatedError(f"the {endpoint.detail}: it still runs as before, so {path} will not "
                                        f"answer as provisioned; run {command('deploy')} to restart it")
        return ReplicaCrashedError(
            f"the {endpoint.detail} before {path} answered; its log ({self.log.path}) says:\n"
            f"{self.log.crash_excerpt(LOG_TAIL)}\nfix the cause and run {command('deploy')} again")

    def status(self) -> Status:
        record = self.record()
        if record is None:
            return Status(self.name, None, None, "not provisioned")
        settings, _ = deployed_settings(self.remote(), record.name)
        replica = self.replica()
        code, health = self.health()
        if replica is None:
            state = "stopped"
        elif not replica.alive():
            state = "crashed"
        elif changed := _outdated(replica, record):
            state = f"running as provisioned before ({changed}); {command('deploy')} restarts it"
        else:
            state = "running" if code == 200 else "starting"
        return Status(self.name, record.endpoint, record.name, state, health if code == 200 else None,
                      settings, replica and replica.started, self.log.crash_excerpt(10) if state == "crashed" else "",
                      cost=self.cost())

    def cost(self):
        from ..cost import FREE_LOCAL, Cost

        return Cost([("cost", FREE_LOCAL)])

    def health(self) -> tuple[int | None, dict | None]:
        import httpx

        record = self.require_record()
        try:
            r = httpx.get(record.endpoint + record.readiness_path, timeout=3.0)
        except httpx.TransportError:
            return None, None
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    # -- logs and teardown ---------------------------------------------------------------------
    def log_tail(self, n: int | None) -> str:
        self.require_record()
        return self.log.tail(n)

    def follow(self, tail: int) -> Iterator[str]:
        """The last `tail` lines, then new ones while the replica runs (stop with an interrupt)."""
        self.require_record()
        return self.log.follow(self.running, tail)

    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool, start: bool) -> None:
        """The local target runs one replica: it can be stopped and started again (the app record and the
        share stay, so `deploy` starts it too), but has no replica bounds."""
        if stop:
            if (note := self.stop()) and note != "replica stopped":
                raise AitkError(note)
        elif start:
            self.restart()
        else:
            raise AitkError("--min and --max are for the azure target; the local target runs one replica: stop it "
                            f"with {command('scale --stop')}, start it again with {command('scale --start')}")

    def teardown_plan(self, *, app_only: bool) -> list[TeardownStep]:
        steps = []
        replica = self.replica()
        if replica is not None and replica.alive():
            steps.append(TeardownStep(f"replica (pid {replica.pid})", True, "started by aitk-nb deploy"))
        record = self.record()
        if record is not None:
            steps.append(TeardownStep(f"app record {self.record_path}", True, "written by aitk-nb provision",
                                      target=str(self.record_path)))
        shares = [Path(record.share)] if record is not None else sorted(p for p in (self.dir / "shares").glob("*") if p.is_dir())
        for share in shares:
            if not share.is_dir():
                continue
            owner = self._share_owner(share)
            if app_only:
                steps.append(TeardownStep(f"share folder {share}", False, APP_ONLY))
            elif owner is not None and (record is None or owner == record.name):
                steps.append(TeardownStep(f"share folder {share}", True, f"made by aitk-nb provision for {owner}",
                                          target=str(share)))
            else:
                why = (f"made by aitk-nb for another app ({owner})" if owner else
                       "existed before provision (not created by aitk-nb)")
                steps.append(TeardownStep(f"share folder {share}", False, why))
        return steps

    def teardown(self, plan: list[TeardownStep]) -> list[str]:
        removed = []
        if note := self.stop():  # a replica.json that does not prove its process: nothing signalled, said
            removed.append(note)
        for step in plan:
            if not (step.delete and step.target):
                continue
            path = Path(step.target)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            removed.append(f"{step.what} removed")
        if not any(s.why == APP_ONLY for s in plan):
            self.log.remove()
        for folder in (self.dir / "shares", self.dir):  # what is left of the environment, when empty
            try:
                folder.rmdir()
            except OSError:
                pass
        return removed


# what a change of each app record field means for a replica started before it (issue 20, item 1)
_RESTART_FIELDS = {"command": "command", "mount_path": "mount path", "share": "share folder", "env": "environment",
                   "readiness_path": "readiness route"}


def _outdated(replica: ReplicaProcess, record: AppRecord) -> str | None:
    """What provision changed since `replica` started that a restart would apply ("port 7911 -> 7912",
    "command"), or None. A record of an older version without the app knows only the port."""
    changed = [f"port {replica.port} -> {record.port}"] if replica.port != record.port else []
    if replica.app is not None:
        now = asdict(record)
        changed += [words for key, words in _RESTART_FIELDS.items() if replica.app.get(key) != now[key]]
    return ", ".join(changed) or None
