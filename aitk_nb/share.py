"""What deploy puts on the share, laid out as the fine-tuning step writes it (see DESIGN.md):

    inference/inference_app/   the server code        inference/settings.json   what it serves
    model-cache/<name>/        the base model         models/<name>/            one folder per adapter

`settings.json` holds paths relative to the mount root, so the same file works at `/mount` in the
container and in the local target's folder.
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DeployError
from .project import Project

CODE_DEST = "inference/inference_app"
SETTINGS_PATH = "inference/settings.json"
MODEL_DIR = "model-cache"
ADAPTER_DIR = "models"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


@dataclass
class Settings:
    """The inference app's settings file (inference_app/settings.py reads the same keys). Keys the
    toolkit does not set (`engine`, `max_model_len`, ... written by hand) are kept as they are."""

    base_model: str | None = None
    adapters: dict[str, str] = field(default_factory=dict)
    merge_adapter: bool = False
    other: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | None) -> "Settings":
        if not data:
            return cls()
        raw = json.loads(data)
        known = ("base_model", "adapters", "merge_adapter")
        return cls(base_model=raw.get("base_model"), adapters=dict(raw.get("adapters") or {}),
                   merge_adapter=bool(raw.get("merge_adapter", False)),
                   other={k: v for k, v in raw.items() if k not in known})

    def dumps(self) -> bytes:
        body = {"base_model": self.base_model, "adapters": self.adapters, **self.other}
        if self.merge_adapter:
            body["merge_adapter"] = True
        return json.dumps(body, indent=2).encode() + b"\n"


@dataclass(frozen=True)
class Upload:
    """A local folder and where it goes on the share."""

    source: Path
    dest: str


def code_source(project: Project) -> Path:
    """The project's own `inference_app/` if it has one (a user may change the server), else ours."""
    own = project.root / "inference_app"
    if (own / "__main__.py").is_file():
        return own
    spec = importlib.util.find_spec("inference_app")
    if spec is None or spec.origin is None:
        raise DeployError("no inference_app/ in the project and none installed; reinstall aitk-nb")
    return Path(spec.origin).parent


def adapter_upload(path: str | Path) -> tuple[str, Upload]:
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise DeployError(f"--adapter {path}: no such folder; pass the folder that holds adapter_config.json")
    if not (folder / "adapter_config.json").is_file():
        raise DeployError(f"--adapter {path}: no adapter_config.json in it; pass a PEFT adapter folder "
                          "(what `save_pretrained` of a PEFT model writes)")
    return folder.name, Upload(folder, f"{ADAPTER_DIR}/{folder.name}")


def model_upload(model: str | Path) -> tuple[str, Upload | None]:
    """(settings value, upload): a local model folder is synced; a hub id is passed through."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        if not (folder / "config.json").is_file():
            raise DeployError(f"--model {model}: no config.json in it; pass a transformers model folder "
                              "(what `save_pretrained` writes) or a hub id")
        return f"{MODEL_DIR}/{folder.name}", Upload(folder, f"{MODEL_DIR}/{folder.name}")
    if _HUB_ID.fullmatch(str(model)) and not str(model).startswith((".", "/", "~")):
        return str(model), None
    raise DeployError(f"--model {model}: no such folder; pass the base model's folder or a hub id like org/name")


def base_of(adapter: Path) -> str | None:
    """The base model an adapter was trained on, as its adapter_config.json records it."""
    try:
        return json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


def plan_deploy(project: Project, previous: Settings, adapters: list[str], model: str | None,
                merge_adapter: bool | None = None) -> tuple[Settings, list[Upload]]:
    """The new settings and the folders to sync. Without --adapter the served adapters stay as they were;
    without --model the base stays, or is taken from the adapters' adapter_config.json. `merge_adapter`
    None keeps the deployed choice."""
    uploads = [Upload(code_source(project), CODE_DEST)]
    new_adapters: dict[str, str] = {}
    if adapters:
        for path in adapters:
            name, up = adapter_upload(path)
            if name in new_adapters:
                raise DeployError(f"--adapter: two adapters are named {name!r} (the folder name); rename one folder")
            if name == "base":
                raise DeployError("--adapter: an adapter folder may not be named 'base' (that is the base model's variant)")
            new_adapters[name] = up.dest
            uploads.append(up)
    else:
        new_adapters = dict(previous.adapters)
    if model is None and previous.base_model is None:
        recorded = {base_of(u.source) for u in uploads[1:]} - {None}
        if len(recorded) == 1:
            model = recorded.pop()
        elif not recorded:
            raise DeployError("no base model to serve; pass --model PATH (the base model's folder or a hub id)")
        else:
            raise DeployError(f"the adapters name different base models ({', '.join(sorted(recorded))}); pass --model PATH")
    base = previous.base_model
    if model is not None:
        base, up = model_upload(model)
        if up is not None:
            uploads.append(up)
    merge = previous.merge_adapter if merge_adapter is None else merge_adapter
    if merge and len(new_adapters) != 1:
        raise DeployError(f"--merge-adapter folds one adapter into the base model, and {len(new_adapters)} would be "
                          "served; deploy exactly one --adapter, or pass --no-merge-adapter")
    return Settings(base_model=base, adapters=new_adapters, merge_adapter=merge, other=dict(previous.other)), uploads
