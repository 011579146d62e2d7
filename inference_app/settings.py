"""Server settings: a JSON file deployed next to the package, plus environment overrides.

Contract (DESIGN.md, "Inference server contract"):

* File: ``$AITK_SETTINGS``, default ``settings.json`` in the folder that holds the
  ``inference_app`` package (``/mount/inference/settings.json`` in the container). A missing
  file means all defaults; unknown keys are ignored so an older server reads a newer file.
* Paths in the file are relative to the mount root (``$AITK_MOUNT_ROOT``, default ``/mount``)
  or absolute. A ``base_model`` that is not an existing folder is treated as a hub id.
* Env overrides: ``AITK_BASE_MODEL``, ``AITK_DEVICE``, ``AITK_ENGINE``, ``AITK_MERGE_ADAPTER``
  (``1``/``true``/``0``/``false``), ``HOST`` (``0.0.0.0``), ``PORT`` (7860), ``AITK_API_KEY``.

Request limits (issue 12: no single request may stall the server): a request body larger than
``max_request_bytes`` is refused (413) on every route, Gradio's included; a request's
``max_tokens`` is clamped to ``max_new_tokens_limit`` and to what is left of the context window
(``max_model_len``, default the model's ``max_position_embeddings``) after its prompt; a prompt
that leaves no room for one new token is refused (400, ``messages``); a generation still running
``max_request_seconds`` after it was admitted ends with ``finish_reason`` "length" and a note;
past ``max_concurrency`` requests queued or running (OpenAI route and Gradio together), 503.

Keys of the file (all optional; ``SettingsFile`` below has the defaults)::

    {"base_model": "model-cache/<name>" or a hub id,   "adapters": {"<name>": "models/<name>"},
     "merge_adapter": false,      # true: fold the one adapter into the base weights (faster;
                                  #   only that adapter is served, "base" gets a 400 naming this key)
     "engine": "auto",            # "transformers" | "vllm" | "auto" (see factory.py)
     "max_new_tokens": 256, "max_new_tokens_limit": 1024, "max_model_len": null,
     "max_request_seconds": 180, "max_request_bytes": 1048576,
     "max_concurrency": 16, "max_batch_size": 16, "device": "auto"}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from .contract import MOUNT_ROOT as DEFAULT_MOUNT_ROOT
from .contract import SETTINGS_FILE, settings_digest

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
DEFAULT_BASE_MODEL = "model-cache/SmolLM2-135M-Instruct"


class SettingsError(Exception):
    """The settings file or an env var is unusable; the message says which and how to fix it."""


class SettingsFile(BaseModel):
    """What the deploy tool writes into ``settings.json``."""

    model_config = ConfigDict(extra="ignore")

    base_model: str = DEFAULT_BASE_MODEL
    adapters: dict[str, str] = Field(default_factory=dict)
    # name -> digest of the adapter folder's files, written by deploy: a change of weights in place changes
    # settings.json, so a running server notices it (issue 17)
    adapter_versions: dict[str, str] = Field(default_factory=dict)
    max_new_tokens: int = Field(256, ge=1, description="default when a request gives none")
    max_new_tokens_limit: int = Field(1024, ge=1, description="largest max_tokens; larger requests are clamped to it")
    max_model_len: int | None = Field(None, ge=2, description="context window (prompt + answer); default the model's")
    max_concurrency: int = Field(16, ge=1, description="requests queued or running; more get 503")
    max_batch_size: int = Field(16, ge=1, description="rows decoded together; more requests wait for a free row")
    # Under the 240 s Azure Container Apps ingress timeout, so a non-streamed answer still reaches the client.
    max_request_seconds: float = Field(180, gt=0, description="a generation still running this long after admission ends")
    max_request_bytes: int = Field(1 << 20, ge=1024, description="largest request body on any route; larger gets 413")
    device: str = Field("auto", description='"auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:1" ...')
    engine: Literal["auto", "transformers", "vllm"] = Field("auto", description="see factory.py")
    merge_adapter: bool = Field(False, description="fold the one adapter into the base weights; base is then not served")


class Settings(BaseModel):
    """Resolved settings the server runs with (paths made absolute, env applied)."""

    model_config = ConfigDict(frozen=True)

    settings_path: Path
    mount_root: Path
    base_model: str  # absolute folder path, or a hub id
    base_model_is_local: bool
    adapters: dict[str, Path]
    adapter_versions: dict[str, str] = {}
    settings_hash: str | None = None  # contract.settings_digest of the file's bytes (None: no file)
    max_new_tokens: int
    max_new_tokens_limit: int
    max_model_len: int | None = None
    max_concurrency: int
    max_batch_size: int = 16
    max_request_seconds: float = 180
    max_request_bytes: int = 1 << 20
    device: str = "auto"
    engine: str = "auto"
    merge_adapter: bool = False
    host: str = "0.0.0.0"
    port: int = 7860
    api_key: SecretStr | None = None

    @property
    def base_model_id(self) -> str:
        """The base model's id, accepted as an alias of ``base``: the folder name, or the hub id."""
        return Path(self.base_model).name if self.base_model_is_local else self.base_model


def _resolve(mount_root: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else mount_root / path


_BOOL = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def settings_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("AITK_SETTINGS") or PACKAGE_PARENT / SETTINGS_FILE)


def load_settings(env: Mapping[str, str] | None = None, data: bytes | None = None) -> Settings:
    """Read the settings file named by ``env`` (default ``os.environ``) and apply env overrides.
    ``data``: the file's content as already read (the settings watcher's), instead of reading it."""
    env = os.environ if env is None else env
    settings_path = settings_file(env)
    mount_root = Path(env.get("AITK_MOUNT_ROOT") or DEFAULT_MOUNT_ROOT).expanduser()

    raw: dict = {}
    if data is None and settings_path.is_file():
        data = settings_path.read_bytes()
    if data is not None:
        try:
            raw = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SettingsError(f"settings file {settings_path} is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise SettingsError(f"settings file {settings_path} must hold a JSON object")
    try:
        file = SettingsFile.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SettingsError(f"settings file {settings_path}: field {field!r}: {first['msg']}") from e

    overrides = {}
    if env.get("AITK_ENGINE"):
        overrides["engine"] = env["AITK_ENGINE"]
    if env.get("AITK_MERGE_ADAPTER"):
        if env["AITK_MERGE_ADAPTER"].lower() not in _BOOL:
            raise SettingsError(f"AITK_MERGE_ADAPTER must be 1/true or 0/false, got {env['AITK_MERGE_ADAPTER']!r}")
        overrides["merge_adapter"] = _BOOL[env["AITK_MERGE_ADAPTER"].lower()]
    try:
        file = SettingsFile.model_validate(file.model_dump() | overrides)
    except ValidationError as e:
        raise SettingsError(f"AITK_ENGINE must be auto, transformers or vllm, got {env['AITK_ENGINE']!r}") from e
    if file.merge_adapter and len(file.adapters) != 1:
        raise SettingsError(
            f"settings file {settings_path}: field 'merge_adapter': true needs exactly one adapter to merge into the "
            f"base model, and {len(file.adapters)} are configured; deploy one adapter or set merge_adapter to false"
        )

    base_value = env.get("AITK_BASE_MODEL") or file.base_model
    base_path = _resolve(mount_root, base_value)
    base_is_local = base_path.is_dir()
    try:
        port = int(env.get("PORT") or 7860)
    except ValueError as e:
        raise SettingsError(f"PORT must be an integer, got {env.get('PORT')!r}") from e
    api_key = env.get("AITK_API_KEY") or None

    return Settings(
        settings_path=settings_path,
        mount_root=mount_root,
        base_model=str(base_path) if base_is_local else base_value,
        base_model_is_local=base_is_local,
        adapters={name: _resolve(mount_root, p) for name, p in file.adapters.items()},
        adapter_versions=file.adapter_versions,
        settings_hash=settings_digest(data) if data is not None else None,
        max_new_tokens=file.max_new_tokens,
        max_new_tokens_limit=max(file.max_new_tokens_limit, file.max_new_tokens),
        max_model_len=file.max_model_len,
        max_concurrency=file.max_concurrency,
        max_batch_size=file.max_batch_size,
        max_request_seconds=file.max_request_seconds,
        max_request_bytes=file.max_request_bytes,
        device=env.get("AITK_DEVICE") or file.device,
        engine=file.engine,
        merge_adapter=file.merge_adapter,
        host=env.get("HOST") or "0.0.0.0",
        port=port,
        api_key=SecretStr(api_key) if api_key else None,
    )
