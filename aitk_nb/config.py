"""The two JSON files the user owns: the ARM parameters file and `infra/inference.config.json`.

Both are validated on read with a message naming the file, the field and the fix, and written
atomically (temp file + rename) so a failure never leaves half a file.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from inference_app.contract import LEGACY_START_COMMANDS, start_commands

from .errors import ConfigError, NotProvisionedError
from .invocation import command

TARGETS = ("local", "azure")


def read_json(path: Path, what: str, fix: str = "fix the file and run again") -> Any:
    """The JSON in `path`; a missing file says `what` to do, an unreadable one what is wrong and `fix`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; {what}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.object[e.start]:#x} at position {e.start}); "
                          "save it as UTF-8 and run again") from None
    except OSError as e:
        raise ConfigError(f"{path} cannot be read ({e.strerror}); {fix}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {fix}") from None


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# -- infra/provision/inference.parameters.json ---------------------------------------------------
# Azure's naming rules for the resources the parameters file names (checked before anything runs).
NAME_RULES: dict[str, tuple[str, str]] = {
    "storageAccountName": (r"[a-z0-9]{3,24}", "3-24 lowercase letters and digits"),
    "fileShareName": (r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", "3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit"),
    "acaEnvironmentName": (r"(?!.*--)[a-z][a-z0-9-]{0,58}[a-z0-9]", "2-60 lowercase letters, digits and single hyphens, starting with a letter"),
    "acaEnvironmentStorageName": (r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}", "1-32 letters, digits, '-', '_' or '.'"),
    "acaAppName": (r"(?!.*--)[a-z][a-z0-9-]{0,30}[a-z0-9]", "2-32 lowercase letters, digits and single hyphens, starting with a letter"),
    "acaLogAnalyticsName": (r"[a-zA-Z0-9][a-zA-Z0-9-]{2,61}[a-zA-Z0-9]", "4-63 letters, digits and hyphens"),
}


@dataclass
class Parameters:
    """The deployment parameters (the `value` of each entry). None means "use the template's default"."""

    defaultCommands: list[str] = field(default_factory=start_commands)
    maximumInstanceCount: int = 1
    location: str | None = None
    storageAccountName: str | None = None
    fileShareName: str | None = None
    acaEnvironmentName: str | None = None
    acaEnvironmentStorageName: str | None = None
    acaAppName: str | None = None
    acaLogAnalyticsName: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as they are

    @classmethod
    def from_values(cls, values: dict[str, Any], source: str = "parameters") -> "Parameters":
        known = {f.name for f in fields(cls)} - {"extra"}
        p = cls()
        if values.get("defaultCommands") == LEGACY_START_COMMANDS:
            # the template's default before each app had its own folder: it meant "aitk-nb's server", which
            # now starts in the app's folder (deploy moves an app of that layout, issue 16)
            values = {**values, "defaultCommands": start_commands()}
        for key, value in values.items():
            if key in known:
                setattr(p, key, value)
            else:
                p.extra[key] = value
        p.validate(source)
        return p

    def validate(self, source: str) -> None:
        cmds = self.defaultCommands
        if not isinstance(cmds, list) or not cmds or not all(isinstance(c, str) and c.strip() for c in cmds):
            raise ConfigError(f"{source}: defaultCommands must be a non-empty list of shell commands, e.g. "
                              f"{json.dumps(start_commands())}")
        n = self.maximumInstanceCount
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10:
            raise ConfigError(f"{source}: maximumInstanceCount must be a whole number from 1 to 10, not {n!r}")
        if self.location is not None and not (isinstance(self.location, str) and re.fullmatch(r"[a-z0-9]+", self.location)):
            raise ConfigError(f"{source}: location must be an Azure region name such as 'eastus' or null, not {self.location!r}")
        for name, (pattern, rule) in NAME_RULES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, str) or not re.fullmatch(pattern, value):
                raise ConfigError(f"{source}: {name} {value!r} is not a valid name ({rule}); fix it or set it to null for the default")

    def values(self) -> dict[str, Any]:
        """Every parameter value, None included, in file order."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out.update(self.extra)
        return out

    def arm_values(self) -> dict[str, Any]:
        """What ARM is given: null entries are left out so the template's defaults apply."""
        return {k: v for k, v in self.values().items() if v is not None}


def parameter_values(path: Path) -> dict[str, Any]:
    """The values an ARM parameters file sets (null included)."""
    data = read_json(path, f"check the path, or leave it out for the project's own file or aitk-nb's default "
                           f"({command('init')} writes one into the project)")
    entries = data.get("parameters") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ConfigError(f'{path}: expected an ARM parameters file with a "parameters" object; fix the file')
    values = {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise ConfigError(f'{path}: parameter {key} must look like {{"value": ...}}; fix the file')
        values[key] = entry["value"]
    return values


def check_overrides(template_path: Path, overrides: dict[str, Any], source: str) -> None:
    """Overrides the caller gave (`source` names them where the user wrote them: the cell body, an option,
    `overrides=`) are parameters the template declares, each with a valid value (issue 20, item 9)."""
    template = read_json(template_path, "the project needs infra/provision/inference.json")
    declared = template.get("parameters", {}) if isinstance(template, dict) else {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ConfigError(f"{source}: parameter{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
                          f"{'are' if len(unknown) > 1 else 'is'} not declared by the template "
                          f"({template_path.name}); remove {'them' if len(unknown) > 1 else 'it'} from {source}, "
                          f"or use one of: {', '.join(declared)}")
    Parameters.from_values(overrides, source=source)


def load_parameters(path: Path, overrides: dict[str, Any] | None = None) -> Parameters:
    values = parameter_values(path)
    if overrides:
        values.update(overrides)
    return Parameters.from_values(values, source=str(path) + (" (with overrides)" if overrides else ""))


# -- infra/inference.config.json -----------------------------------------------------------------
CONFIG_KEYS = ("SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "STORAGE_ACCOUNT_NAME", "FILE_SHARE_NAME",
               "ACA_APP_NAME", "ACA_APP_ENDPOINT", "TARGET")


def endpoint_url(value: str | None) -> str | None:
    """An ACA_APP_ENDPOINT as a URL: AI Toolkit's template writes the ingress FQDN as it is, a bare host
    name, which Container Apps serves over HTTPS only (issue 16)."""
    if value and "://" not in value:
        return f"https://{value.strip().rstrip('/')}"
    return value


@dataclass
class InferenceConfig:
    """Where the deployment lives. Never holds a key, token or password."""

    TARGET: str = "azure"
    SUBSCRIPTION_ID: str | None = None
    RESOURCE_GROUP_NAME: str | None = None
    STORAGE_ACCOUNT_NAME: str | None = None
    FILE_SHARE_NAME: str | None = None
    ACA_APP_NAME: str | None = None
    ACA_APP_ENDPOINT: str | None = None

    @classmethod
    def load(cls, path: Path) -> "InferenceConfig":
        if not path.exists():
            raise NotProvisionedError(f"no {path.name} yet; run {command('provision')} first (or fill in {path} by hand)")
        data = read_json(path, f"run {command('provision')}")
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object with keys {', '.join(CONFIG_KEYS)}")
        unknown = sorted(set(data) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(CONFIG_KEYS)}")
        # A hand-filled file from the AI Toolkit template has no TARGET: it describes Azure resources.
        cfg = cls(**{**data, "TARGET": data.get("TARGET") or "azure"})
        cfg.ACA_APP_ENDPOINT = endpoint_url(cfg.ACA_APP_ENDPOINT)
        if cfg.TARGET not in TARGETS:
            raise ConfigError(f"{path}: TARGET must be one of {', '.join(TARGETS)}, not {cfg.TARGET!r}")
        return cfg

    def save(self, path: Path) -> None:
        write_json_atomic(path, {k: getattr(self, k) for k in CONFIG_KEYS})


def set_parameter_value(path: Path, key: str, value: Any) -> None:
    """Set one parameter's value in an ARM parameters file, leaving every other byte as it is where the
    entry is written `"key": {"value": null}` (how the template's file leaves a default); otherwise the file
    is written again as JSON with the entry set. Atomic either way."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r'("' + re.escape(key) + r'"\s*:\s*\{\s*"value"\s*:\s*)null(\s*\})')
    new, count = pattern.subn(lambda m: m.group(1) + json.dumps(value) + m.group(2), text, count=1)
    if count == 0:
        data = json.loads(text)
        data.setdefault("parameters", {}).setdefault(key, {})["value"] = value
        new = json.dumps(data, indent=2) + "\n"
    write_text_atomic(path, new)
