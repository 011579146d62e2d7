"""Targets: where the inference app runs. Each one provisions (`plan`/`provision` → config and
changes), exposes its file share as a sync `Remote` (`remote`), replaces the replica and waits for
its health route (`restart`), and reports `status`, `log_tail`/`follow` and `teardown`. Verbs pick
one from `infra/inference.config.json`'s TARGET (or provision's --target)."""
from __future__ import annotations

from typing import Any

from ..config import TARGETS, InferenceConfig
from ..errors import ConfigError
from ..project import Project


def get_target(config: InferenceConfig, project: Project, *, credential: Any = None):
    if config.TARGET == "local":
        from .local import LocalTarget

        return LocalTarget(project, config)
    if config.TARGET == "azure":
        from .azure import AzureTarget

        return AzureTarget(project, config, credential=credential)
    raise ConfigError(f"unknown target {config.TARGET!r}; choose one of {', '.join(TARGETS)}")
