"""The local target: the Azure setup mirrored on one machine.

Provision reads the container app out of the same ARM template the Azure target deploys (command,
port, startup probe, mount path, env) into an app record, and makes a folder that plays the file
share. A replica is a subprocess running the template's command with the mount path pointing at
that folder; readiness means the startup probe's route answers 200, as in Container Apps.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..arm import Template
from inference_app.contract import SETTINGS_PATH, DeployedSettings

from ..config import InferenceConfig, Parameters, read_json, write_json_atomic
from ..errors import NotProvisionedError, PortInUseError, ReadinessTimeoutError, ReplicaCrashedError, AitkError
from ..project import Project
from ..results import Status
from ..sync import LocalFolderRemote

HOST = "127.0.0.1"
LOG_TAIL = 25


@dataclass
class AppRecord:
    """What the template says about the container app, plus the local port and share folder."""

    name: str
    share: str
    port: int
    mount_path: str
    command: list[str]
    env: dict[str, str]
    probe_path: str
    startup_timeout: float

    @classmethod
    def from_template(cls, template: Template, share: Path, port: int | None) -> "AppRecord":
        app = template.resource("Microsoft.App/containerApps")
        container = app["properties"]["template"]["containers"][0]
        mounts = container.get("volumeMounts") or []
        if not mounts:
            raise AitkError("the template's container app mounts no volume; the inference app expects the share at /mount")
        probes = {p.get("type"): p for p in container.get("probes", [])}
        startup = probes.get("Startup")
        if startup is None:
            raise AitkError("the template's container has no Startup probe; add one (on /live) so start-up has a limit")
        # ready = the readiness probe's route answers (traffic is routed then); the startup probe's
        # route may answer earlier, while the model is still loading
        ready = probes.get("Readiness", startup)
        # Container Apps gives up after initialDelay + period x failureThreshold: wait as long.
        timeout = (startup.get("initialDelaySeconds", 0)
                   + startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3))
        return cls(
            name=app["name"],
            share=str(share),
            port=int(port or app["properties"]["configuration"]["ingress"]["targetPort"]),
            mount_path=mounts[0]["mountPath"],
            command=[*container.get("command", []), *container.get("args", [])],
            env={e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e},
            probe_path=ready["httpGet"]["path"],
            startup_timeout=float(timeout),
        )

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def local_command(self) -> list[str]:
        """The container's command with the mount path pointing at the share folder."""
        return [part.replace(self.mount_path, self.share) for part in self.command]


# Replicas this process started: reaping them is what turns a crashed child into an exit code.
_children: dict[int, subprocess.Popen] = {}


class LocalTarget:
    name = "local"

    def __init__(self, project: Project, config: InferenceConfig | None = None):
        self.project = project
        self.dir = project.state_dir / "local"
        self.record_path = self.dir / "app.json"
        self.pid_path = self.dir / "replica.json"
        self.log_path = self.dir / "replica.log"

    # -- provision -------------------------------------------------------------------------------
    def plan(self, params: Parameters, *, port: int | None = None) -> tuple[InferenceConfig, list[tuple[str, str]]]:
        _, config, changes = self._plan(params, port)
        return config, changes

    def _plan(self, params: Parameters, port: int | None) -> tuple[AppRecord, InferenceConfig, list[tuple[str, str]]]:
        template = Template(read_json(self.project.template_path, "the project needs infra/provision/inference.json"),
                            params.arm_values())
        share_name = template.parameter("fileShareName")
        record = AppRecord.from_template(template, self.dir / "shares" / share_name, port)
        config = InferenceConfig(TARGET="local", FILE_SHARE_NAME=share_name, ACA_APP_NAME=record.name,
                                 ACA_APP_ENDPOINT=record.endpoint)
        old = self.record()
        changes = [
            ("file share (folder)", "no change" if Path(record.share).is_dir() else "create"),
            ("container app (record)", "create" if old is None else "no change" if old == record else "modify"),
        ]
        return record, config, changes

    def provision(self, params: Parameters, *, port: int | None = None, progress: bool = True) -> tuple[InferenceConfig, list]:
        record, config, changes = self._plan(params, port)
        Path(record.share).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.record_path, record.__dict__)
        return config, changes

    def record(self) -> AppRecord | None:
        if not self.record_path.exists():
            return None
        return AppRecord(**read_json(self.record_path, "run `%aitk provision --target local`"))

    def require_record(self) -> AppRecord:
        record = self.record()
        if record is None:
            raise NotProvisionedError("the local target has no app yet; run `%aitk provision --target local`")
        return record

    def api_key(self) -> str | None:
        """The local replica gets AITK_API_KEY from the toolkit's own environment, if set."""
        return os.environ.get("AITK_API_KEY")

    def remote(self) -> LocalFolderRemote:
        return LocalFolderRemote(Path(self.require_record().share))

    # -- replica ---------------------------------------------------------------------------------
    def replica(self) -> dict | None:
        """The running replica's {pid, port, started}, or None. A dead one is reported by `exit_code`."""
        if not self.pid_path.exists():
            return None
        return json.loads(self.pid_path.read_text())

    def running(self) -> bool:
        info = self.replica()
        return info is not None and _alive(info["pid"], info.get("proc_start"))

    def exit_code(self) -> int | None:
        info = self.replica()
        child = _children.get(info["pid"]) if info else None
        return child.poll() if child else None

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the replica (its whole process group). True if one was running."""
        info = self.replica()
        if info is None:
            return False
        pid, was_running = info["pid"], _alive(info["pid"], info.get("proc_start"))
        if was_running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid, info.get("proc_start")) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        child = _children.pop(pid, None)
        if child is not None:
            child.wait(timeout=timeout)
        self.pid_path.unlink(missing_ok=True)
        return was_running

    def restart(self, *, wait: bool = True, timeout: float | None = None, progress: bool = True) -> dict | None:
        """Replace the replica with a new one; with `wait`, return its health once the probe answers."""
        self.start()
        return self.wait_ready(timeout=timeout, progress=progress) if wait else None

    def status(self) -> Status:
        record = self.record()
        if record is None:
            return Status(self.name, None, None, "not provisioned")
        settings = DeployedSettings.parse(self.remote().read_bytes(SETTINGS_PATH))
        info = self.replica()
        code, health = self.health()
        if info is None:
            state = "stopped"
        elif not self.running():
            state = "crashed"
        else:
            state = "running" if code == 200 else "starting"
        return Status(self.name, record.endpoint, record.name, state, health if code == 200 else None,
                      settings, info and info.get("started"), self.log_tail(10) if state == "crashed" else "")

    def start(self) -> dict:
        record = self.require_record()
        self.stop()
        if not _port_free(record.port):
            raise PortInUseError(
                f"port {record.port} on {HOST} is in use by another process; stop it, or provision the local "
                f"target on a free port: `%aitk provision --target local --port {record.port + 1}`")
        python = os.environ.get("AITK_LOCAL_PYTHON", sys.executable)
        if python == sys.executable and importlib.util.find_spec("torch") is None:
            raise AitkError("the local target runs the inference app with this Python, which has no torch; "
                            "install the server extra (`pip install 'aitk-nb[server]'`) or set AITK_LOCAL_PYTHON "
                            "to a Python that has it")
        env = {**os.environ, **record.env,
               "AITK_MOUNT_ROOT": record.share, "PORT": str(record.port), "HOST": HOST,
               "AITK_PYTHON": python, "PYTHONUNBUFFERED": "1"}
        if self.log_path.exists():
            os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
        with open(self.log_path, "ab") as log:
            child = subprocess.Popen(record.local_command(), cwd=record.share, env=env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _children[child.pid] = child
        info = {"pid": child.pid, "proc_start": _proc_start(child.pid), "port": record.port,
                "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        write_json_atomic(self.pid_path, info)
        return info

    def wait_ready(self, timeout: float | None = None, progress: bool = True) -> dict:
        """Poll the startup probe until it answers 200; report a crash with the log's tail."""
        import httpx
        from tqdm.auto import tqdm

        record = self.require_record()
        info = self.replica()
        if info is None:
            raise NotProvisionedError("no replica is running; run `%aitk deploy`")
        url = record.endpoint + record.probe_path
        limit = record.startup_timeout if timeout is None else timeout
        start = time.monotonic()
        # no total: the wait has a limit, not a known length (a notebook shows a full bar that ends
        # green, or red on a crash or timeout; a terminal a counter with the last HTTP status)
        with tqdm(total=None, desc=f"waiting for {record.probe_path} (up to {limit:.0f} s)", unit="s",
                  disable=not progress, bar_format="{desc}: {n:.0f} s{postfix}") as bar, \
                httpx.Client(timeout=5.0) as client:
            while True:
                if not _alive(info["pid"], info.get("proc_start")):
                    _failed(bar, "replica exited")
                    code = self.exit_code()
                    raise ReplicaCrashedError(
                        f"the replica exited{f' with code {code}' if code is not None else ''} before {record.probe_path} "
                        f"answered; last lines of its log ({self.log_path}):\n{self.log_tail(LOG_TAIL)}\n"
                        "fix the cause and run `%aitk deploy` again")
                with contextlib.suppress(httpx.TransportError):
                    r = client.get(url)
                    bar.set_postfix_str(f"HTTP {r.status_code}")
                    if r.status_code == 200:
                        bar.set_postfix_str("ready")
                        return r.json()
                elapsed = time.monotonic() - start
                bar.n = elapsed
                bar.refresh()
                if elapsed > limit:
                    _failed(bar, "timed out")
                    raise ReadinessTimeoutError(
                        f"{url} did not answer 200 within {limit:.0f} s; see `%aitk logs`, or wait longer with "
                        "`%aitk deploy --no-restart` once it is up")
                time.sleep(0.5)

    def health(self) -> tuple[int | None, dict | None]:
        import httpx

        record = self.require_record()
        try:
            r = httpx.get(record.endpoint + record.probe_path, timeout=3.0)
        except httpx.TransportError:
            return None, None
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, None

    # -- logs and teardown ---------------------------------------------------------------------
    def log_tail(self, n: int | None) -> str:
        self.require_record()
        if not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines if n is None else lines[-n:])

    def follow(self, poll: float = 0.5) -> Iterator[str]:
        """Yield new log lines while the replica runs (stop with an interrupt)."""
        with open(self.log_path, errors="replace") as f:
            f.seek(0, os.SEEK_END)
            while True:
                line = f.readline()
                if line:
                    yield line.rstrip("\n")
                elif not self.running():
                    return
                else:
                    time.sleep(poll)

    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool, start: bool) -> dict:
        raise AitkError("scale is for the azure target; the local target runs one replica "
                        "(stop it with `%aitk teardown --app-only`, start it with `%aitk deploy`)")

    def teardown(self, *, app_only: bool) -> list[str]:
        removed = []
        if self.stop():
            removed.append("replica stopped")
        if app_only:
            if self.record_path.exists():
                self.record_path.unlink()
                removed.append("app record removed (share kept)")
        elif self.dir.exists():
            shutil.rmtree(self.dir)
            removed.append(f"local environment {self.dir} removed")
        return removed


def _failed(bar, why: str) -> None:
    """Mark a progress bar as failed: tqdm.notebook's bar turns red (it would close green)."""
    bar.set_postfix_str(why)
    if hasattr(bar, "container"):  # tqdm.notebook
        bar.disp(bar_style="danger")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as uvicorn does: connections of a stopped replica in TIME_WAIT do not make the port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _proc_start(pid: int) -> str | None:
    """The process's start time (Linux), so a recycled pid is not taken for our replica."""
    stat = _proc_stat(pid)
    return stat[19] if stat else None


def _alive(pid: int, proc_start: str | None) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc: trust kill(0)
    return stat[0] != "Z" and (proc_start is None or stat[19] == proc_start)
