"""Where a project's files live. The root is the nearest folder upward that holds `infra/`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ProjectError


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def infra(self) -> Path:
        return self.root / "infra"

    @property
    def template_path(self) -> Path:
        return self.infra / "provision" / "inference.json"

    @property
    def parameters_path(self) -> Path:
        return self.infra / "provision" / "inference.parameters.json"

    @property
    def config_path(self) -> Path:
        return self.infra / "inference.config.json"

    @property
    def state_dir(self) -> Path:
        """Toolkit state that is not the user's (the local target's environment); git-ignored."""
        return self.root / ".aitk"


def find_project(project: str | os.PathLike | None = None, *, start: str | os.PathLike | None = None) -> Project:
    """The project at `project`, or the nearest folder from `start` (default: cwd) upward with `infra/`."""
    if project is not None:
        root = Path(project).expanduser().resolve()
        if not (root / "infra").is_dir():
            raise ProjectError(f"{root} has no infra/ folder; pass the folder that holds infra/ as --project")
        return Project(root)
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "infra").is_dir():
            return Project(folder)
    raise ProjectError(
        f"no infra/ folder in {here} or any parent; run from your project folder "
        "(the one with infra/provision/inference.json) or pass --project PATH"
    )
