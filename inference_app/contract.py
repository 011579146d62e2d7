"""The contract between the toolkit (``aitk_nb``, in the user's kernel) and this server (in the
container): where deploy puts things on the share, what ``settings.json`` holds, which names an
adapter may not take, and which variants a server serves.

Standard library only: the server imports it without the toolkit installed, and the toolkit
(installed with ``inference_app`` as a package beside it) imports it without torch or pydantic.

Share layout (the fine-tuning step writes model-cache/ and models/ the same, so its outputs are found)::

    aitk-nb/<app>/inference_app/   the app's server code    aitk-nb/<app>/settings.json   what it serves
    model-cache/<name>/            the base model           models/<name>/                one folder per adapter
    .venvs/<sha256>/               the server's venv, one per requirements.txt

Each container app has its own folder (`app_dir`), so several apps can mount one share (two projects in
one resource group, or two inference apps on one fine-tuning's share) and a deploy to one never changes
what another serves; model-cache/, models/ and .venvs/ are shared. The container finds its folder by its
own name: Container Apps sets ``CONTAINER_APP_NAME`` in every container (the local target does too).
``inference/`` is AI Toolkit's own server folder (and aitk-nb's before 0.2): never written.

Paths in ``settings.json`` are relative to the mount root (``/mount`` in the container, a folder on
the local target), so one file works in both.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

MOUNT_ROOT = "/mount"
APPS_DIR = "aitk-nb"  # one folder per app under it: its working folder; the settings file sits in it
APP_NAME_ENV = "CONTAINER_APP_NAME"  # set by Container Apps in every container (and by the local target)
LEGACY_CODE_DIR = "inference"  # AI Toolkit's server folder, and aitk-nb's single-app layout before app_dir
SETTINGS_FILE = "settings.json"
CODE_PACKAGE = "inference_app"
MODEL_DIR = "model-cache"
ADAPTER_DIR = "models"


def app_dir(app: str) -> str:
    """The app's own folder on the share (relative to the mount root): its code and settings."""
    if not app or "/" in app or app in (".", ".."):
        raise ValueError(f"not a container app name: {app!r}")
    return f"{APPS_DIR}/{app}"


def settings_path(app: str) -> str:
    return f"{app_dir(app)}/{SETTINGS_FILE}"


def code_dest(app: str) -> str:
    return f"{app_dir(app)}/{CODE_PACKAGE}"


DEPLOY_LOCK = ".aitk-deploy.lock"  # one deploy at a time per app: the lock file beside its settings.json


def lock_path(app: str) -> str:
    return f"{app_dir(app)}/{DEPLOY_LOCK}"


# the start commands of the single-app layout (before app_dir): an app started so runs in LEGACY_CODE_DIR
LEGACY_START_COMMANDS = [f"cd {MOUNT_ROOT}/{LEGACY_CODE_DIR}", f"bash {CODE_PACKAGE}/start.sh"]


def start_commands(mount_root: str = MOUNT_ROOT) -> list[str]:
    """The container's start commands (the template's defaultCommands): into the app's own folder, found by
    the name Container Apps gives the container, then the server's start script."""
    return [f"cd {mount_root}/{APPS_DIR}/${APP_NAME_ENV}", f"bash {CODE_PACKAGE}/start.sh"]


HEALTH_ROUTE = "/health"  # 200 once the model serves: the readiness probe, and what deploy waits for
LIVE_ROUTE = "/live"  # 200 while the process serves: the startup and liveness probes

BASE = "base"
# "__base__" is PEFT's name for "no adapter" in a mixed batch (`adapter_names`): an adapter of that
# name would be served as the base model
RESERVED_NAMES = frozenset({BASE, "__base__"})


def served_variants(adapters: Sequence[str], merge_adapter: bool) -> list[str]:
    """What a server serves: ``base`` and every adapter, unless the one adapter is merged into the
    base weights; then only that adapter (the unmerged base is gone)."""
    adapters = list(adapters)
    if merge_adapter and adapters:
        return adapters[:1]
    return [BASE, *adapters]


def settings_digest(data: bytes) -> str:
    """What ``/health`` reports as ``settings_hash``: the settings file's content, hashed (deploy computes the
    same from the bytes it wrote, and waits until the server reports it)."""
    return hashlib.sha256(data).hexdigest()[:16]


def reserved_name_problem(name: str, base_model_id: str | None = None) -> str | None:
    """Why ``name`` cannot name an adapter (it would mean the base model), or None if it can."""
    if name in RESERVED_NAMES or (base_model_id is not None and name == base_model_id):
        return f"the name {name!r} is reserved for the base model"
    return None


def base_model_id(value: str) -> str:
    """The id under which a ``base_model`` value is served beside ``base``: a folder's name
    (``model-cache/<name>`` or an absolute path), else the hub id as written."""
    if value.startswith((f"{MODEL_DIR}/", "/")):
        return value.rstrip("/").rsplit("/", 1)[-1]
    return value


def merged_change(served_merge: bool, new_merge: bool, served: tuple, new: tuple) -> bool:
    """Whether a change needs a restart because an adapter is merged into the base weights: merge_adapter
    turned on or off, or, while merged, the adapters or their weights changed (``served``/``new``: the
    adapters and their versions). The one rule for the server's live check and deploy's restart reasons."""
    return (served_merge or new_merge) and (served_merge != new_merge or served != new)


class SettingsFileError(ValueError):
    """``settings.json`` cannot be read; the message is what is wrong with it (the caller names the file)."""


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


@dataclass
class DeployedSettings:
    """The keys of ``settings.json`` that deploy writes (the server's ``SettingsFile`` reads them,
    beside keys set by hand such as ``engine``, which are kept here in ``other``)."""

    KEYS = ("base_model", "adapters", "merge_adapter", "adapter_versions")

    base_model: str | None = None  # "model-cache/<name>" or a hub id
    adapters: dict[str, str] = field(default_factory=dict)  # name -> "models/<name>"
    merge_adapter: bool = False
    other: dict = field(default_factory=dict)
    # name -> digest of the adapter folder's files on the share: weights changed in place change the file, so a
    # running server notices (issue 17); written by deploy after the sync
    adapter_versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes | str | None) -> "DeployedSettings":
        """The file's content (None or empty: nothing deployed yet)."""
        if not data:
            return cls()
        try:
            raw = json.loads(data)
        except json.JSONDecodeError as e:
            raise SettingsFileError(f"is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
        except UnicodeDecodeError as e:
            raise SettingsFileError(f"is not UTF-8 text (byte {e.object[e.start]:#x} at position {e.start})") from None
        if not isinstance(raw, dict):
            raise SettingsFileError(f"must hold a JSON object, not {_JSON_TYPES.get(type(raw), type(raw).__name__)}")
        base, adapters, merge = raw.get("base_model"), raw.get("adapters") or {}, raw.get("merge_adapter", False)
        if base is not None and not (isinstance(base, str) and base):
            raise SettingsFileError(f"field 'base_model' must be a share path or hub id, not {base!r}")
        if not (isinstance(adapters, dict) and all(isinstance(k, str) and k and isinstance(v, str) and v
                                                   for k, v in adapters.items())):
            raise SettingsFileError(f"field 'adapters' must be an object of adapter name to share path, not {adapters!r}")
        if not isinstance(merge, bool):
            raise SettingsFileError(f"field 'merge_adapter' must be true or false, not {merge!r}")
        versions = raw.get("adapter_versions") or {}
        if not (isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())):
            raise SettingsFileError(f"field 'adapter_versions' must be an object of adapter name to digest, not {versions!r}")
        return cls(base_model=base, adapters=dict(adapters), merge_adapter=merge,
                   other={k: v for k, v in raw.items() if k not in cls.KEYS}, adapter_versions=dict(versions))

    def dumps(self) -> bytes:
        body = {"base_model": self.base_model, "adapters": self.adapters, **self.other}
        if self.merge_adapter:
            body["merge_adapter"] = True
        if versions := {k: v for k, v in self.adapter_versions.items() if k in self.adapters}:
            body["adapter_versions"] = versions
        return json.dumps(body, indent=2).encode() + b"\n"

    def variants(self) -> list[str]:
        return served_variants(self.adapters, self.merge_adapter)
