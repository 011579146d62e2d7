"""Real replicas for the double's container apps (opt-in: `AzureDouble.run_replicas()`).

What Container Apps does with a revision, done on this machine: the container's command runs with
the Azure Files share "mounted" (its folder in the double) in place of the volume's mount path, the
container's env (secretRef values resolved from the app's secrets), and the ingress proxying to it.
A restart replaces the process; its output becomes the app's log stream; a process that exits
makes the revision Degraded. No image is pulled: the command runs with this Python
(AITK_PYTHON), as the local target runs it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .apps import AppRecord, Apps, Revision


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReplicaRunner:
    def __init__(self, apps: "Apps", python: str = sys.executable, extra_env: dict[str, str] | None = None):
        self.apps, self.python, self.extra_env = apps, python, dict(extra_env or {})
        self.procs: dict[str, subprocess.Popen] = {}   # app name -> its one replica
        self._lock = threading.Lock()

    def start(self, rec: "AppRecord", rev: "Revision") -> None:
        self.stop(rec.name)
        container = (rev.template.get("containers") or [{}])[0]
        mounts = container.get("volumeMounts") or []
        share_dir = self._share_dir(rec, rev, mounts[0]["volumeName"]) if mounts else None
        mount_path = mounts[0]["mountPath"] if mounts else "/mount"
        secrets_ = self.apps.d.state.app_secrets.get(rec.id.lower(), {})
        env = {**os.environ, **self.extra_env}
        for e in container.get("env") or []:
            env[e["name"]] = secrets_.get(e["secretRef"], "") if "secretRef" in e else str(e.get("value", ""))
        port = _free_port()
        # the variables Container Apps sets in every container ("Built-in environment variables")
        env.update({"CONTAINER_APP_NAME": rec.name, "CONTAINER_APP_REVISION": rev.name,
                    "CONTAINER_APP_REPLICA_NAME": f"{rev.name}-{rev.replica_suffix}"})
        env.update({"PORT": str(port), "HOST": "127.0.0.1", "AITK_PYTHON": self.python, "PYTHONUNBUFFERED": "1",
                    "AITK_MOUNT_ROOT": str(share_dir),
                    # what Container Apps sets in every replica's container (its name, as the replicas API lists it)
                    "CONTAINER_APP_REPLICA_NAME": self.apps.replica_name(rev, 0)})
        command = [c.replace(mount_path, str(share_dir)) for c in [*container.get("command", []), *container.get("args", [])]]
        proc = subprocess.Popen(command, cwd=share_dir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        with self._lock:
            self.procs[rec.name] = proc
        self.apps.upstreams[rec.name] = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._pump, args=(rec.name, proc), daemon=True).start()

    def _pump(self, app: str, proc: subprocess.Popen) -> None:
        for raw in proc.stdout:
            self.apps.d.state.add_log(app, raw.decode(errors="replace").rstrip("\n"))

    def _share_dir(self, rec: "AppRecord", rev: "Revision", volume: str):
        vol = next(v for v in rev.template.get("volumes") or [] if v.get("name") == volume)
        storage = next(s for s in self.apps.d.state.of_type("Microsoft.App/managedEnvironments/storages")
                       if s["name"].split("/")[-1].lower() == str(vol["storageName"]).lower())
        azure_file = storage["properties"]["azureFile"]
        return self.apps.d.state.share_path(azure_file["accountName"], azure_file["shareName"])

    def exited(self, app: str) -> bool:
        proc = self.procs.get(app)
        return proc is not None and proc.poll() is not None

    def stop(self, app: str) -> None:
        with self._lock:
            proc = self.procs.pop(app, None)
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)

    def close(self) -> None:
        for app in list(self.procs):
            self.stop(app)
