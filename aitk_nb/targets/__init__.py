"""Targets: where the inference app runs. Each one provisions, exposes its file share as a sync
`Remote`, restarts the replica and reports status, logs and teardown. Verbs pick one from
`infra/inference.config.json`'s TARGET (or provision's --target)."""
from __future__ import annotations

from ..config import TARGETS
from ..errors import ConfigError, AitkError
from ..project import Project


def get_target(name: str, project: Project):
    if name == "local":
        from .local import LocalTarget
        return LocalTarget(project)
    if name == "azure":
        raise AitkError("the azure target is not available in this version yet; use --target local")
    raise ConfigError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
