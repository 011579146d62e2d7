"""Targets: where the inference app runs. Each one provisions (`plan`/`provision` → config and
changes), exposes its file share as a sync `Remote` (`remote`), replaces the replica and waits for
its health route (`restart`), and reports `status`, `log_tail`/`follow`, `scale` and `teardown`. Verbs pick
one from `infra/inference.config.json`'s TARGET (or provision's --target)."""
from __future__ import annotations

from typing import Any

from ..config import TARGETS, InferenceConfig
from ..errors import ConfigError
from ..project import Project


_default_credential: Any = None


def set_credential(credential: Any) -> None:
    """The azure-core TokenCredential every verb uses when none is passed (None: DefaultAzureCredential,
    which works after `az login`, with a managed identity or with AZURE_CLIENT_ID/SECRET/TENANT_ID)."""
    global _default_credential
    _default_credential = credential


def get_target(config: InferenceConfig, project: Project, *, credential: Any = None):
    if config.TARGET == "local":
        from .local import LocalTarget

        return LocalTarget(project, config)
    if config.TARGET == "azure":
        from .azure import AzureTarget

        return AzureTarget(project, config, credential=credential or _default_credential)
    raise ConfigError(f"unknown target {config.TARGET!r}; choose one of {', '.join(TARGETS)}")
