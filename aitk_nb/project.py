"""Where a project's files live. The root is the nearest folder upward that holds `infra/`; with none,
the current folder (a project of the user's own starts empty: provision writes `infra/` there). A file
the project lacks is aitk-nb's packaged default (aitk_nb/packaged.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import packaged
from .errors import ProjectError


@dataclass(frozen=True)
class Project:
    root: Path
    # how the root was chosen when that is not obvious (no infra/ anywhere), for messages
    how_found: str | None = field(default=None, compare=False)

    @property
    def infra(self) -> Path:
        return self.root / "infra"

    @property
    def template_path(self) -> Path:
        """The template provision deploys: the project's `infra/provision/inference.json`, else the packaged one."""
        return packaged.resolve(self.root, packaged.TEMPLATE)[0]

    @property
    def parameters_path(self) -> Path:
        """Where the project's parameters file is (or is saved): always in the project."""
        return self.root / packaged.PARAMETERS

    @property
    def parameters_file(self) -> Path:
        """The parameters file provision reads: the project's, else the packaged default."""
        return packaged.resolve(self.root, packaged.PARAMETERS)[0]

    @property
    def config_path(self) -> Path:
        return self.infra / "inference.config.json"

    @property
    def state_dir(self) -> Path:
        """Toolkit state that is not the user's (the local target's environment); git-ignored."""
        return self.root / ".aitk"


def find_project(project: str | os.PathLike | None = None, *, start: str | os.PathLike | None = None) -> Project:
    """The project at `project`, or the nearest folder from `start` (default: cwd) upward with `infra/`;
    with none, `start` itself (said in `how_found`)."""
    if project is not None:
        root = Path(project).expanduser().resolve()
        if not root.is_dir():
            raise ProjectError(f"--project {project}: no such folder; pass your project's folder (it may be empty)")
        return Project(root)
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "infra").is_dir():
            return Project(folder)
    return Project(here, how_found=f"no infra/ folder in {here} or above: the project is this folder")
