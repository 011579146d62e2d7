"""The local app record: what the template's container app says (command, port, probes, mount path,
env), with the local port and the folder that plays the file share. Kept in `.aitk/local/app.json`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..arm import Template
from ..config import read_json, write_json_atomic
from ..errors import AitkError, NotProvisionedError
from ..invocation import command

HOST = "127.0.0.1"


@dataclass
class AppRecord:
    name: str
    share: str
    port: int
    mount_path: str
    command: list[str]
    env: dict[str, str]
    readiness_path: str  # the readiness probe's route: traffic goes to a replica once it answers 200
    startup_timeout: float  # the startup probe's budget: how long a start may take

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
            readiness_path=ready["httpGet"]["path"],
            startup_timeout=float(timeout),
        )

    @classmethod
    def load(cls, path: Path) -> "AppRecord | None":
        if not path.exists():
            return None
        data = read_json(path, f"run {command('provision --target local')}")
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict) or set(data) != set(names):
            raise NotProvisionedError(f"{path} is not an app record of this version of aitk-nb; run "
                                      f"{command('provision --target local')} again to rewrite it")
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def local_command(self) -> list[str]:
        """The container's command with the mount path pointing at the share folder."""
        return [part.replace(self.mount_path, self.share) for part in self.command]
