"""The deploy plan: which local folders go where on the share, which folders already on the share are
served where they are (`share:` paths, the fine-tuning's outputs), and the settings.json that serves
them (the layout and the file's keys are the contract in `inference_app/contract.py`).

An `--adapter` or `--model` value is a local folder, a folder on the share (`share:models/run/adapter`,
relative to the mount root), or for the model a hub id; an adapter may be named (`NAME=PATH`), else it
is served under its folder's name. Every input is checked, local or on the share, before anything is
sent or written."""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from inference_app.contract import (ADAPTER_DIR, APPS_DIR, LEGACY_CODE_DIR, MODEL_DIR, MOUNT_ROOT, SETTINGS_FILE, DeployedSettings,
                                    SettingsFileError, app_dir, base_model_id, code_dest, reserved_name_problem,
                                    settings_path)

from .errors import DeployError
from .invocation import command
from .project import Project
from .sync import OWNED_MARK, Remote

SHARE = "share:"
# on the share, beside settings.json: a deploy synced changes and has not restarted the replica (--no-restart,
# or stopped before the restart), so the next deploy restarts it even if it has nothing new to send
def restart_pending(app: str) -> str:
    return f"{app_dir(app)}/.aitk-restart-pending"


_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
_ADAPTER_FIX = "pass a PEFT adapter folder (what `save_pretrained` of a PEFT model writes)"


@dataclass(frozen=True)
class Upload:
    """A local folder and where it goes on the share; `option` and `value` are how the user named it
    (for messages). `reserved`: the share layout reserves the destination for the toolkit (the app's code)."""

    source: Path
    dest: str
    option: str = ""
    value: str = ""
    reserved: bool = False

    def served_elsewhere(self, apps: list[str], remote: Remote) -> DeployError:
        """The error for a destination that another app serves (its files would change under it)."""
        rename = " (--adapter NAME=PATH)" if self.option == "--adapter" else f" ({SHARE}{self.dest} serves it as it is)"
        return DeployError(
            f"{self.option} {self.value}: {remote.where(self.dest)} is served by {', '.join(apps)} (its settings.json "
            f"on the share) and differs from yours; deploy does not change what another app serves: send yours under "
            f"another name{rename}")

    def refusal(self, foreign: list[str], remote: Remote) -> DeployError:
        """The error for a destination that holds files the toolkit did not put there."""
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        rename = f"send yours under another name ({self.option} NAME=PATH)" if self.option == "--adapter" else ""
        served = self._served_there(remote)
        if served:  # a command that works as printed: the folder that holds the adapter (or model), same name
            name = split_name(self.value)[0] or PurePosixPath(self.dest).name
            named = f"{name}=" if self.option == "--adapter" and PurePosixPath(served).name != name else ""
            ways = f"serve what is there as it is: {command(f'deploy {self.option} {named}{SHARE}{served}')}"
            ways += f", or {rename}" if rename else ""
        else:
            ways = rename or "send yours from a folder of another name"
        return DeployError(
            f"{self.option} {self.value}: {remote.where(self.dest)} holds files aitk-nb did not put there ({shown}), "
            f"and deploy does not overwrite or delete them; {ways}")

    def _served_there(self, remote: Remote) -> str | None:
        """The share folder at or under `dest` that holds what this option serves (a fine-tuning's
        models/<run> keeps its adapter in models/<run>/adapter), or None."""
        marker = "adapter_config.json" if self.option == "--adapter" else "config.json"
        if remote.exists(f"{self.dest}/{marker}"):
            return self.dest
        found = sorted(name.rpartition("/")[0] for name in remote.list_names(self.dest, 3)
                       if name.rpartition("/")[2] == marker and "/" in name)
        return f"{self.dest}/{found[0]}" if found else None


@dataclass
class DeployPlan:
    settings: DeployedSettings
    uploads: list[Upload]
    on_share: list[str] = field(default_factory=list)  # "what: share path" served in place, nothing sent


def deployed_settings(remote: Remote, app: str | None) -> tuple[DeployedSettings, bytes | None]:
    """What the app's settings.json on the share says is deployed, and its bytes (None: nothing deployed yet).
    `app` None: the single-app layout's file (inference/settings.json), what an app of that layout served."""
    path = settings_path(app) if app else f"{LEGACY_CODE_DIR}/{SETTINGS_FILE}"
    data = remote.read_bytes(path)
    try:
        return DeployedSettings.parse(data), data
    except SettingsFileError as e:
        raise DeployError(f"{remote.where(path)} {e}; fix it, or delete it and deploy with --model "
                          "(and --adapter)") from None


def served_by_others(remote: Remote, app: str, dest: str) -> list[str]:
    """The other apps on the share whose settings.json serves the folder `dest` (a base model or adapter
    in model-cache/ or models/, which apps share): changing it would change what they serve."""
    names = []
    for name in remote.list_names(APPS_DIR, 1):
        other, _, file = name.partition("/")
        if file != SETTINGS_FILE or other == app:
            continue
        try:
            settings = DeployedSettings.parse(remote.read_bytes(f"{APPS_DIR}/{name}"))
        except SettingsFileError:
            continue  # that app's deploy and status say what is wrong with its file
        if dest in (settings.base_model, *settings.adapters.values()):
            names.append(other)
    return names


def share_adapters(remote: Remote, depth: int = 4) -> list[str]:
    """`share:` paths of the adapter folders already on the share (folders under models/ that hold an
    adapter_config.json, as the fine-tuning leaves them), outside the folders deploy itself sends."""
    names = remote.list_names(ADAPTER_DIR, depth)
    marked = {name.rpartition("/")[0] for name in names if name.rpartition("/")[2] == OWNED_MARK}
    found = []
    for name in names:
        folder, _, file = name.rpartition("/")
        if file == "adapter_config.json" and folder and folder not in marked:
            found.append(f"{SHARE}{ADAPTER_DIR}/{folder}")
    return found


def code_source(project: Project) -> Path:
    """The project's own `inference_app/` if it has one (a user may change the server), else ours."""
    own = project.root / "inference_app"
    if (own / "__main__.py").is_file():
        return own
    spec = importlib.util.find_spec("inference_app")
    if spec is None or spec.origin is None:
        raise DeployError("no inference_app/ in the project and none installed; reinstall aitk-nb")
    return Path(spec.origin).parent


# -- reading a folder, local or on the share -------------------------------------------------------
@dataclass(frozen=True)
class _Folder:
    """A folder to check before it is served: `read(name)` gives a file's bytes (None: no such file)."""

    where: Callable[[str], str]
    read: Callable[[str], bytes | None]
    has: Callable[[str], bool]

    @classmethod
    def local(cls, folder: Path) -> "_Folder":
        def read(name: str) -> bytes | None:
            try:
                return (folder / name).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                return None

        return cls(lambda name: str(folder / name), read, lambda name: (folder / name).is_file())

    @classmethod
    def on_share(cls, remote: Remote, rel: str) -> "_Folder":
        return cls(lambda name: remote.where(f"{rel}/{name}"), lambda name: remote.read_bytes(f"{rel}/{name}"),
                   lambda name: remote.exists(f"{rel}/{name}"))

    def json_object(self, name: str, flag: str, fix: str) -> dict | None:
        """A JSON object file of the folder, None if it is missing; malformed is an error naming it."""
        data = self.read(name)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except json.JSONDecodeError as e:
            raise DeployError(f"{flag}: {self.where(name)} is not valid JSON (line {e.lineno}, column {e.colno}: "
                              f"{e.msg}); {fix}") from None
        except UnicodeDecodeError:
            raise DeployError(f"{flag}: {self.where(name)} is not UTF-8 text; {fix}") from None
        if not isinstance(value, dict):
            raise DeployError(f"{flag}: {self.where(name)} must hold a JSON object; {fix}")
        return value


def _adapter_base(folder: _Folder, flag: str, missing: str) -> str | None:
    """Check an adapter folder (its config and weights); the base model its config records."""
    config = folder.json_object("adapter_config.json", flag, _ADAPTER_FIX)
    if config is None:
        raise DeployError(f"{flag}: {missing}; {_ADAPTER_FIX}")
    if not any(folder.has(name) for name in ADAPTER_WEIGHTS):
        raise DeployError(f"{flag}: no {ADAPTER_WEIGHTS[0]} (or {ADAPTER_WEIGHTS[1]}) beside "
                          f"{folder.where('adapter_config.json')}; {_ADAPTER_FIX}")
    base = config.get("base_model_name_or_path")
    return base if isinstance(base, str) and base else None


def _check_model(folder: _Folder, flag: str, missing: str) -> None:
    fix = "pass a transformers model folder (what `save_pretrained` writes) or a hub id"
    if folder.json_object("config.json", flag, fix) is None:
        raise DeployError(f"{flag}: {missing}; {fix}")


# -- the values of --adapter and --model ------------------------------------------------------------
def split_name(value: str) -> tuple[str | None, str]:
    """`NAME=PATH` -> (NAME, PATH); a value that is an existing path, or has no `=`, is a path."""
    name, sep, rest = value.partition("=")
    if not sep or "/" in name or Path(value).expanduser().exists():
        return None, value
    if not _NAME.fullmatch(name):
        raise DeployError(f"--adapter {value}: the name {name!r} must be 1-64 letters, digits, '.', '_' or '-', "
                          "starting with a letter or digit")
    return name, rest


def share_path(value: str, flag: str) -> str:
    """`share:PATH` -> PATH relative to the share's root (`/mount/...` is taken as the mount root)."""
    text = value[len(SHARE):].strip()
    if text.startswith(MOUNT_ROOT + "/"):
        text = text[len(MOUNT_ROOT) + 1:]
    path = PurePosixPath(text)
    if not text or path.is_absolute() or ".." in path.parts or path.as_posix() == ".":
        raise DeployError(f"{flag}: a folder on the share, relative to its root, like {SHARE}models/my-run/adapter")
    return path.as_posix()


def _on_share(path: Path, remote: Remote) -> str | None:
    """A local folder that is inside the local target's share, as a share path (it is served in place)."""
    root = getattr(remote, "root", None)
    if root is None:
        return None
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None


@dataclass
class _Adapter:
    name: str
    dest: str  # where it is served from, relative to the share's root
    upload: Upload | None  # None: already on the share
    base: str | None  # the base model its adapter_config.json records


def adapter_source(value: str, remote: Remote) -> _Adapter:
    name, location = split_name(value)
    flag = f"--adapter {value}"
    if location.startswith(SHARE):
        rel = share_path(location, flag)
        base = _adapter_base(_Folder.on_share(remote, rel), flag, f"no adapter_config.json at {remote.where(rel)}")
        return _Adapter(name or PurePosixPath(rel).name, rel, None, base)
    folder = Path(location).expanduser().resolve()
    if not folder.is_dir():
        raise DeployError(f"{flag}: no such folder; pass the folder that holds adapter_config.json")
    base = _adapter_base(_Folder.local(folder), flag, "no adapter_config.json in it")
    if (rel := _on_share(folder, remote)) is not None:
        return _Adapter(name or folder.name, rel, None, base)
    name = name or folder.name
    dest = f"{ADAPTER_DIR}/{name}"
    return _Adapter(name, dest, Upload(folder, dest, "--adapter", value), base)


@dataclass
class _Model:
    value: str  # settings.json's base_model: a share path or a hub id
    upload: Upload | None  # None: on the share already, or a hub id
    folder: bool  # a folder on the share (served under its folder's name), not a hub id

    @property
    def served_id(self) -> str:
        """The id the server accepts for it beside `base`, as the server computes it."""
        return PurePosixPath(self.value).name if self.folder else self.value


def model_source(model: str, remote: Remote, flag: str | None = None) -> _Model:
    """A local model folder is synced; a share folder or a hub id is not. `flag`: how to name it."""
    flag = flag or f"--model {model}"
    if model.startswith(SHARE):
        rel = share_path(model, flag)
        _check_model(_Folder.on_share(remote, rel), flag, f"no config.json at {remote.where(rel)}")
        return _Model(rel, None, True)
    folder = Path(model).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        _check_model(_Folder.local(folder), flag, "no config.json in it")
        if (rel := _on_share(folder, remote)) is not None:
            return _Model(rel, None, True)
        dest = f"{MODEL_DIR}/{folder.name}"
        return _Model(dest, Upload(folder, dest, "--model", model), True)
    if _HUB_ID.fullmatch(model) and not model.startswith((".", "/", "~")):
        return _Model(model, None, False)
    raise DeployError(f"{flag}: no such folder; pass the base model's folder, {SHARE}PATH for one on the share, "
                      "or a hub id like org/name")


def recorded_base(base: str, remote: Remote) -> str:
    """The --model value an adapter's recorded base model stands for: a path under the mount root (as a
    fine-tuning job in the container records it) is that folder on the share; a hub id whose download
    the fine-tuning left in model-cache/ is that folder; anything else as it is."""
    if base.startswith(MOUNT_ROOT + "/"):
        return SHARE + base
    if _HUB_ID.fullmatch(base) and remote.exists(f"{MODEL_DIR}/{base}/config.json"):
        return f"{SHARE}{MODEL_DIR}/{base}"
    return base


def plan_deploy(project: Project, previous: DeployedSettings, adapters: list[str], model: str | None,
                merge_adapter: bool | None = None, *, remote: Remote, app: str) -> DeployPlan:
    """The new settings, the folders to sync and those served from the share. Without --adapter the served
    adapters stay as they were; without --model the base stays, or is the one the adapters record.
    `merge_adapter` None keeps the deployed choice."""
    uploads = [Upload(code_source(project), code_dest(app), reserved=True)]
    on_share: list[str] = []
    new_adapters: dict[str, str] = {}
    recorded: set[str] = set()
    for value in adapters:
        adapter = adapter_source(value, remote)
        if adapter.name in new_adapters:
            raise DeployError(f"--adapter: two adapters are named {adapter.name!r}; rename one (--adapter NAME=PATH)")
        new_adapters[adapter.name] = adapter.dest
        if adapter.upload is None:
            on_share.append(f"adapter {adapter.name}: {adapter.dest}")
        else:
            uploads.append(adapter.upload)
        if adapter.base:
            recorded.add(adapter.base)
    if not adapters:
        new_adapters = dict(previous.adapters)
    flag = None
    if model is None and previous.base_model is None:
        if len(recorded) > 1:
            raise DeployError(f"the adapters name different base models ({', '.join(sorted(recorded))}); pass --model PATH")
        if not recorded:
            raise DeployError("no base model to serve; pass --model PATH (the base model's folder, "
                              f"{SHARE}PATH for one on the share, or a hub id)")
        base = recorded.pop()
        model, flag = recorded_base(base, remote), f"the adapter's base model {base} (its adapter_config.json)"
    base, base_id = previous.base_model, previous.base_model and base_model_id(previous.base_model)
    if model is not None:
        chosen = model_source(model, remote, flag)
        base, base_id = chosen.value, chosen.served_id
        if chosen.upload is not None:
            uploads.append(chosen.upload)
        elif chosen.folder:
            on_share.append(f"base model: {base}")
    for name in new_adapters:  # the server serves the base model as `base` and under its own id
        if problem := reserved_name_problem(name, base_id):
            raise DeployError(f"--adapter {name}: {problem} ({base}); rename the adapter (--adapter NAME=PATH)")
    merge = previous.merge_adapter if merge_adapter is None else merge_adapter
    if merge and len(new_adapters) != 1:
        raise DeployError(f"--merge-adapter folds one adapter into the base model, and {len(new_adapters)} would be "
                          "served; deploy exactly one --adapter, or pass --no-merge-adapter")
    settings = DeployedSettings(base_model=base, adapters=new_adapters, merge_adapter=merge, other=dict(previous.other))
    return DeployPlan(settings, uploads, on_share)
