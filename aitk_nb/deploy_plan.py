"""The deploy plan: which local folders go where on the share, and the settings.json that serves
them (the layout and the file's keys are the contract in `inference_app/contract.py`)."""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from inference_app.contract import (ADAPTER_DIR, CODE_DEST, MODEL_DIR, DeployedSettings, base_model_id,
                                    reserved_name_problem)

from .errors import DeployError
from .project import Project

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


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


def plan_deploy(project: Project, previous: DeployedSettings, adapters: list[str], model: str | None,
                merge_adapter: bool | None = None) -> tuple[DeployedSettings, list[Upload]]:
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
    for name in new_adapters:  # the server serves the base model as `base` and under its own id
        if problem := reserved_name_problem(name, base_model_id(base)):
            raise DeployError(f"--adapter {name}: {problem} ({base}); rename the adapter folder")
    merge = previous.merge_adapter if merge_adapter is None else merge_adapter
    if merge and len(new_adapters) != 1:
        raise DeployError(f"--merge-adapter folds one adapter into the base model, and {len(new_adapters)} would be "
                          "served; deploy exactly one --adapter, or pass --no-merge-adapter")
    return DeployedSettings(base_model=base, adapters=new_adapters, merge_adapter=merge, other=dict(previous.other)), uploads
