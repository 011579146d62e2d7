"""What the provision form asks, generated from the `Parameters` dataclass, and how each answer is
checked. No widgets here: the view in `provision.py` is built from these specs, and the checks are
the same ones the parameters file gets (`config.NAME_RULES`, `Parameters.validate`)."""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import NAME_RULES, Parameters, read_json, write_json_atomic
from ..errors import AitkError, ConfigError

# The template parameter the GPU workload profile picker sets (kept in Parameters.extra).
GPU_PROFILE_PARAMETER = "gpuWorkloadProfileType"


@dataclass(frozen=True)
class FieldSpec:
    """One form field: a `Parameters` field, the kind of widget it needs and its help text."""

    name: str
    kind: str  # "commands" (list of str), "count" (int), "location", "name" (checked against NAME_RULES)
    label: str
    help: str = ""
    placeholder: str = ""


def _label(name: str) -> str:
    words = re.sub(r"(?<!^)([A-Z])", r" \1", name).lower().replace("aca ", "Container Apps ")
    return words[:1].upper() + words[1:]


def parameter_fields(template: dict | None = None) -> list[FieldSpec]:
    """The form's fields in the dataclass's order; help and placeholders from the template's metadata.

    Checked before any widget is built: a `Parameters` field whose type the form cannot edit is a bug."""
    described = (template or {}).get("parameters", {})
    specs = []
    for f in fields(Parameters):
        if f.name == "extra":
            continue
        meta = described.get(f.name, {})
        help_text = meta.get("metadata", {}).get("description", "")
        default = meta.get("defaultValue")
        if f.name in NAME_RULES:
            kind = "name"
            placeholder = "default" if not isinstance(default, str) or default.startswith("[") else f"default: {default}"
        elif f.name == "location":
            kind, placeholder = "location", "default: the resource group's"
        elif str(f.type) == "list[str]":
            kind, placeholder = "commands", "one shell command per line"
        elif str(f.type) == "int":
            kind, placeholder = "count", ""
        else:
            raise TypeError(f"the provision form has no widget for Parameters.{f.name} ({f.type})")
        specs.append(FieldSpec(f.name, kind, _label(f.name), help_text, placeholder))
    return specs


def check_field(name: str, value: Any) -> str | None:
    """The message to show beside a field, or None if the value is fine. Blank means default."""
    if name in NAME_RULES:
        if value in (None, ""):
            return None
        pattern, rule = NAME_RULES[name]
        return None if re.fullmatch(pattern, value) else f"not a valid name: {rule}"
    if name == "location":
        return None if value in (None, "") or re.fullmatch(r"[a-z0-9]+", value) else \
            "a region name in lowercase letters and digits, such as 'swedencentral'"
    if name == "defaultCommands":
        return None if commands_from_text(value) else "enter at least one command"
    if name == "maximumInstanceCount":
        return None if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10 else "a whole number from 1 to 10"
    return None


def commands_from_text(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def form_value(name: str, value: Any) -> Any:
    """A widget's value as the parameters file holds it (blank text is null: the template's default)."""
    if name == "defaultCommands":
        return commands_from_text(value)
    if isinstance(value, str):
        return value.strip() or None
    return value


def to_parameters(base: Parameters, values: dict[str, Any], source: str = "the form") -> Parameters:
    """`base` (the file as loaded, unknown keys included) with the form's values; validated."""
    merged = {**base.values(), **values}
    return Parameters.from_values(merged, source=source)


def save_parameters(path: Path, params: Parameters) -> None:
    """Write the parameters back into the ARM parameters file, atomically, keeping everything the form
    does not edit: `$schema`, `contentVersion`, unknown parameters and any keys beside `value`."""
    try:
        data = read_json(path, "it is created on save")
    except ConfigError:
        if path.exists():
            raise
        data = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
                "contentVersion": "1.0.0.0", "parameters": {}}
    if not isinstance(data, dict) or not isinstance(data.get("parameters", {}), dict):
        raise AitkError(f'{path}: expected an ARM parameters file with a "parameters" object; fix the file')
    entries = data.setdefault("parameters", {})
    for key, value in params.values().items():
        entry = entries.get(key)
        entries[key] = {**entry, "value": value} if isinstance(entry, dict) else {"value": value}
    write_json_atomic(path, data)
