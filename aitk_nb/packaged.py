"""The project files aitk-nb ships, and which copy a project uses (DESIGN.md, "In the user's own project").

The repository keeps one copy of each (its own `infra/`, `notebooks/`, `demo/`); the wheel carries them
under `aitk_nb/_packaged/`, copied there at build time by setup.py, which reads `SHIPPED` below. An
editable install or a checkout has no `_packaged/`: the files are the checkout's own.

A project's own file wins where it exists (as `inference_app/` does, deploy_plan.code_source); each
file is returned with where it came from, for messages.

Stdlib only at module level: setup.py loads this file by path, before aitk_nb is importable.
"""
from __future__ import annotations

from pathlib import Path

TEMPLATE = "infra/provision/inference.json"
BICEP = "infra/provision/inference.bicep"
PARAMETERS = "infra/provision/inference.parameters.json"
NOTEBOOK = "notebooks/remote_inference.ipynb"
DEMO = "demo"
# what the wheel carries beside the two packages (a folder: its files, without caches)
SHIPPED = (TEMPLATE, BICEP, PARAMETERS, NOTEBOOK, DEMO)
PACKAGED_DIR = "_packaged"  # inside aitk_nb/, in a wheel

PACKAGED = "packaged default"
PROJECT = "project"


def root() -> Path:
    """The folder holding the shipped files: the wheel's `aitk_nb/_packaged/`, else the checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / PACKAGED_DIR, here.parent):
        if (candidate / TEMPLATE).is_file():
            return candidate
    from .errors import ProjectError

    raise ProjectError(f"aitk-nb's packaged files are missing ({here / PACKAGED_DIR / TEMPLATE} not found); "
                       "reinstall aitk-nb (`pip install --force-reinstall aitk-nb`)")


def path(relative: str) -> Path:
    """The packaged copy of `relative` (one of SHIPPED, or a file under one)."""
    return root() / relative


def resolve(project_root: Path, relative: str) -> tuple[Path, str]:
    """The project's own `relative` when it has one, else the packaged default; and which it is."""
    own = project_root / relative
    if own.is_file():
        return own, PROJECT
    return path(relative), PACKAGED


def describe(file: Path, origin: str, project_root: Path) -> str:
    """`infra/provision/inference.json (project)` or `/…/aitk_nb/_packaged/… (packaged default)`."""
    try:
        shown = str(file.relative_to(project_root)) if origin == PROJECT else str(file)
    except ValueError:
        shown = str(file)
    return f"{shown} ({origin})"


def ignored(name: str) -> bool:
    """What a shipped folder's copy leaves out: caches and build locks."""
    return name in ("__pycache__", ".ipynb_checkpoints") or name.endswith((".pyc", ".lock"))
