"""The local app record: what the template's container app says (command, port, probes, mount path,
env), with the local port and the folder that plays the file share. Kept in `.aitk/local/app.json`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..arm import Template
from ..config import read_json, write_json_atomic
from ..errors import AitkError, ConfigError, NotProvisionedError
from ..invocation import command
from .shell import with_mount

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
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"--port {port}: a TCP port from 1 to 65535")
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
        fix = f"it is aitk-nb's record of the local app: run {command('provision --target local')} again to rewrite it"
        data = read_json(path, f"run {command('provision --target local')}", fix)
        if problem := _record_problem(data):
            raise NotProvisionedError(f"{path} {problem}; {fix}")
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json_atomic(path, asdict(self))

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def local_command(self) -> list[str]:
        """The container's command with the mount path pointing at the share folder (quoted where a
        shell reads it)."""
        return with_mount(self.command, self.mount_path, self.share)


_STRINGS = ("name", "share", "mount_path", "readiness_path")


def _record_problem(data) -> str | None:
    """What is wrong with an app record read from disk (hand-edited, or of another version), or None."""
    if not isinstance(data, dict):
        return "must hold a JSON object"
    missing = [f.name for f in fields(AppRecord) if f.name not in data]
    if missing:
        return f"misses the key{'s' * (len(missing) > 1)} {', '.join(missing)}"
    unknown = sorted(set(data) - {f.name for f in fields(AppRecord)})
    if unknown:
        return f"has unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}"
    port = data["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return f"key port must be a whole number from 1 to 65535, not {port!r}"
    for key in _STRINGS:
        if not isinstance(data[key], str) or not data[key]:
            return f"key {key} must be a non-empty string, not {data[key]!r}"
    if not isinstance(data["command"], list) or not all(isinstance(c, str) for c in data["command"]):
        return f"key command must be a list of strings, not {data['command']!r}"
    if not isinstance(data["env"], dict) or not all(isinstance(v, str) for v in data["env"].values()):
        return f"key env must be an object of strings, not {data['env']!r}"
    timeout = data["startup_timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return f"key startup_timeout must be a number of seconds, not {timeout!r}"
    return None
