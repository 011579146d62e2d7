"""Picking up where AI Toolkit fine-tuning left off: the files its remote fine-tuning writes into the
project (`infra/finetuning.config.json`, `infra/provision/finetuning.parameters.json`; DESIGN.md,
"Facts checked") give provision its defaults: subscription, resource group, storage account, file
share, environment, environment storage and Log Analytics workspace. A value the inference
parameters file (or the command line, or the form) sets wins; what neither names is the template's
default. Each value keeps where it came from, for the provision card and the form.

This module reads the files only; what must be looked up in Azure (the environment from the job,
the environment storage that links the share) is `aitk_nb.azure.handoff`'s."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import (NAME_RULES, InferenceConfig, Parameters, check_overrides, load_parameters, parameter_values,
                     read_json)
from .errors import ConfigError
from .project import Project

# where a value came from (the words the card and the form show)
GIVEN = "command line or form"
INFERENCE = "inference parameters"
FINETUNING = "fine-tuning"
TEMPLATE = "template default"
AZURE = "found in Azure"

# inference parameter -> where the fine-tuning keeps it: (file, key) in order of preference. The
# config holds the names the fine-tuning's provision resolved; its parameters file may hold null.
CONFIG, PARAMETERS = "finetuning.config.json", "finetuning.parameters.json"
DEFAULTS: dict[str, tuple[tuple[str, str], ...]] = {
    "storageAccountName": ((CONFIG, "STORAGE_ACCOUNT_NAME"), (PARAMETERS, "storageAccountName")),
    "fileShareName": ((CONFIG, "FILE_SHARE_NAME"), (PARAMETERS, "fileShareName")),
    "acaEnvironmentName": ((PARAMETERS, "acaEnvironmentName"),),
    "acaEnvironmentStorageName": ((PARAMETERS, "acaEnvironmentStorageName"),),
    "acaLogAnalyticsName": ((PARAMETERS, "acaLogAnalyticsName"),),
}


@dataclass(frozen=True)
class Origin:
    """A fine-tuning value's place, for messages: the file (from the project root) and the key."""

    file: str
    key: str

    def __str__(self) -> str:
        return f"{self.file} {self.key}"


@dataclass
class FineTuning:
    """What the fine-tuning files say (None where they say null or nothing)."""

    config_path: Path
    parameters_path: Path
    config: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)

    def _file(self, which: str) -> tuple[Path, dict[str, Any]]:
        return (self.config_path, self.config) if which == CONFIG else (self.parameters_path, self.parameters)

    def origin(self, path: Path, key: str) -> Origin:
        return Origin("/".join(path.parts[-3:] if path.parent.name == "provision" else path.parts[-2:]), key)

    def value(self, parameter: str) -> tuple[Any, Origin] | None:
        """The fine-tuning's value for an inference parameter, and where it is written."""
        for which, key in DEFAULTS.get(parameter, ()):
            path, values = self._file(which)
            if values.get(key) is not None:
                return values[key], self.origin(path, key)
        return None

    def setting(self, key: str) -> tuple[Any, Origin] | None:
        """SUBSCRIPTION_ID, RESOURCE_GROUP_NAME, ACA_JOB_NAME (the job also from acaJobName)."""
        if self.config.get(key) is not None:
            return self.config[key], self.origin(self.config_path, key)
        if key == "ACA_JOB_NAME" and self.parameters.get("acaJobName") is not None:
            return self.parameters["acaJobName"], self.origin(self.parameters_path, "acaJobName")
        return None


def load(project: Project) -> FineTuning | None:
    """The fine-tuning files of the project, checked (one line naming the file and field when wrong);
    None when the project has neither."""
    config_path = project.infra / CONFIG
    parameters_path = project.infra / "provision" / PARAMETERS
    if not config_path.exists() and not parameters_path.exists():
        return None
    ft = FineTuning(config_path, parameters_path)
    if config_path.exists():
        data = read_json(config_path, "")
        if not isinstance(data, dict):
            raise ConfigError(f"{config_path}: expected a JSON object (SUBSCRIPTION_ID, RESOURCE_GROUP_NAME, ...); fix the file")
        ft.config = data
    if parameters_path.exists():
        data = read_json(parameters_path, "")
        entries = data.get("parameters") if isinstance(data, dict) else None
        if not isinstance(entries, dict) or not all(isinstance(e, dict) and "value" in e for e in entries.values()):
            raise ConfigError(f'{parameters_path}: expected an ARM parameters file ("parameters": {{"name": {{"value": ...}}}}); fix the file')
        ft.parameters = {k: e["value"] for k, e in entries.items()}
    _check(ft)
    return ft


def _check(ft: FineTuning) -> None:
    for parameter, places in DEFAULTS.items():
        pattern, rule = NAME_RULES[parameter]
        for which, key in places:
            path, values = ft._file(which)
            value = values.get(key)
            if value is not None and not (isinstance(value, str) and re.fullmatch(pattern, value)):
                raise ConfigError(f"{path}: {key} {value!r} is not a valid name ({rule}); fix it or set it to null")
    for key in ("SUBSCRIPTION_ID", "RESOURCE_GROUP_NAME", "ACA_JOB_NAME"):
        value = ft.config.get(key)
        if value is not None and not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"{ft.config_path}: {key} must be a name or null, not {value!r}; fix the file")


def resolve(params: Parameters, file_values: dict[str, Any], given: dict[str, Any] | None,
            ft: FineTuning | None) -> tuple[Parameters, dict[str, str]]:
    """`params` with the fine-tuning's names where neither the inference parameters file nor the
    caller set one, and the source of every parameter value."""
    given = given or {}
    sources: dict[str, str] = {}
    values = params.values()
    for name, value in values.items():
        if given.get(name) is not None and given[name] != file_values.get(name):  # the form passes every value
            sources[name] = GIVEN
        elif file_values.get(name) is not None:
            sources[name] = INFERENCE
        elif ft is not None and (found := ft.value(name)) is not None:
            values[name] = found[0]
            sources[name] = f"{FINETUNING} ({found[1]})"
        else:
            sources[name] = TEMPLATE
    return Parameters.from_values(values, source="the parameters with the fine-tuning's defaults"), sources


def provision_parameters(project: Project, parameters: str | os.PathLike | None, overrides: dict[str, Any] | None,
                         config: InferenceConfig) -> tuple[Parameters, dict[str, str], FineTuning | None]:
    """The parameters provision deploys, with where each value came from: the command line (or the
    form), the inference parameters file, the fine-tuning's files (on Azure, when the inference goes to
    the fine-tuning's resource group: its names are of that group's resources), else the template's
    default. Returns the fine-tuning too (None when it does not apply)."""
    path = Path(parameters) if parameters else project.parameters_file  # the project's, else the packaged default
    if overrides:
        check_overrides(project.template_path, overrides, "overrides")
    params = load_parameters(path, overrides)
    ft = load(project) if config.TARGET == "azure" else None
    if ft is not None:
        group = (ft.setting("RESOURCE_GROUP_NAME") or (None,))[0]
        if group and config.RESOURCE_GROUP_NAME and group.lower() != config.RESOURCE_GROUP_NAME.lower():
            ft = None
    params, sources = resolve(params, parameter_values(path), overrides, ft)
    return params, sources, ft
