"""`init`: write into a project what a user may want to edit (issue 16, item 2), and say where the files
a verb uses came from (the project's own, or aitk-nb's packaged defaults).

init writes the template (JSON and its Bicep twin), the parameters file and a copy of the walkthrough
notebook, each only where the project has no such file (an existing file is kept and said so), and adds
to `.gitignore` only the lines it lacks. With `migrate`, a parameters file of AI Toolkit's own server is
switched to aitk-nb's commands after asking (ai_toolkit.migrate: the old file kept as a backup).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import ai_toolkit, packaged
from .config import Parameters, parameter_values
from .errors import ConfirmationError
from .invocation import command
from .project import Project, find_project
from .results import Card, Displayable

WRITTEN = "written"
KEPT = "kept (exists)"
GITIGNORE = ".gitignore"
# what stays out of git: the toolkit's state and the written config (names of the user's resources)
GITIGNORE_LINES = (".aitk/", "infra/inference.config.json")
# what init copies into a project, in this order
INIT_FILES = (packaged.TEMPLATE, packaged.BICEP, packaged.PARAMETERS, packaged.NOTEBOOK)


@dataclass(repr=False)
class InitResult(Displayable):
    """What init did to each file: written, kept (and why), migrated."""

    root: Path
    steps: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[str]:
        return [name for name, what in self.steps if what == WRITTEN]

    def card(self) -> Card:
        return Card(f"aitk-nb project files in {self.root}", self.steps, self.notes)


def init(*, project: str | os.PathLike | None = None, migrate: bool = False, yes: bool = False,
         confirm: Callable[[str], bool] | None = None) -> InitResult:
    """Write aitk-nb's template (inference.json and inference.bicep), parameters file and walkthrough
    notebook into the project, where it has none (never over a file), and the `.gitignore` lines for
    `.aitk/` and `infra/inference.config.json` it lacks. `migrate`: switch a parameters file that starts
    AI Toolkit's server to aitk-nb's commands, after `confirm(question)` (default: ask on stdin) or with
    `yes`; the old file is kept beside it as a backup."""
    proj = find_project(project)
    steps: list[tuple[str, str]] = []
    notes = [proj.how_found] if proj.how_found else []
    params = proj.parameters_path
    if migrate and params.is_file():
        parameter_values(params)  # a file that cannot be read is named before anything is written
    toolkit = ai_toolkit.commands_text(params) if params.is_file() else None
    migrated_step = None
    if toolkit is not None and migrate:  # asked first: a refusal leaves every file as it was
        backup = ai_toolkit.backup_path(params)
        question = (f"{_shown(proj, params)} starts AI Toolkit's server ({toolkit!r}). Replace its defaultCommands "
                    f"with aitk-nb's ({'; '.join(ai_toolkit.default_commands())}), keep its other values, and keep the "
                    f"old file as {backup.name}? [y/N] ")
        if not yes:
            if confirm is None:
                from .verbs import ask_on_stdin as confirm
            if not confirm(question):
                raise ConfirmationError(f"migration of {_shown(proj, params)} not confirmed; nothing changed "
                                        f"(pass --yes to migrate without asking)")
        backup = ai_toolkit.migrate(params)
        migrated_step = (f"migrated: defaultCommands replaced by aitk-nb's, other values kept; "
                         f"the old file is {_shown(proj, backup)}")
    for relative in INIT_FILES:
        target = proj.root / relative
        if relative == packaged.PARAMETERS and migrated_step:
            steps.append((relative, migrated_step))
        elif relative == packaged.PARAMETERS and toolkit is not None:
            steps.append((relative, f"kept: its defaultCommands start AI Toolkit's server ({toolkit!r}); "
                                    f"{command('init --migrate')} switches it to aitk-nb's"))
        elif relative == packaged.BICEP and target.is_file() and not ai_toolkit.is_ours(target):
            steps.append((relative, "kept: not aitk-nb's template (AI Toolkit's); never used or overwritten by "
                                    f"aitk-nb, which deploys {packaged.TEMPLATE}"))
        elif relative == packaged.PARAMETERS and migrate and target.is_file():
            steps.append((relative, "kept (exists; its commands are not AI Toolkit's: nothing to migrate)"))
        else:
            steps.append((relative, WRITTEN if _copy_new(packaged.path(relative), target) else KEPT))
    steps.append((GITIGNORE, _gitignore(proj.root / GITIGNORE)))
    notes.append(f"next: {command('provision --target local')} (or --target azure); edit the files above first if "
                 "you like: the project's own files win over aitk-nb's packaged defaults")
    return InitResult(proj.root, steps, notes)


def _shown(proj: Project, path: Path) -> str:
    try:
        return str(path.relative_to(proj.root))
    except ValueError:
        return str(path)


def _copy_new(source: Path, target: Path) -> bool:
    """Copy `source` to `target` unless `target` exists (never over it, even one made meanwhile): the copy
    is whole or absent (written beside it, then linked into place). Whether it was written."""
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(source.read_bytes())
        try:
            os.link(tmp, target)  # fails if the target exists: no overwrite
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def _gitignore(path: Path) -> str:
    """Append the lines `.gitignore` lacks (an equivalent spelling counts); what was done."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    have = {line.strip().lstrip("/").rstrip("/") for line in text.splitlines()}
    missing = [line for line in GITIGNORE_LINES if line.rstrip("/") not in have]
    if not missing:
        return f"kept (has {', '.join(GITIGNORE_LINES)})"
    with open(path, "a", encoding="utf-8") as f:
        f.write(("\n" if text and not text.endswith("\n") else "") + "".join(f"{line}\n" for line in missing))
    return f"{'added' if text else 'written with'} {', '.join(missing)}"


def provenance(proj: Project, parameters: str | os.PathLike | None) -> list[str]:
    """Where the files provision uses came from: the project's own or aitk-nb's packaged defaults (and
    how the project was found when that was not obvious; a Bicep of AI Toolkit's, left alone)."""
    notes = [proj.how_found] if proj.how_found else []
    template, origin = packaged.resolve(proj.root, packaged.TEMPLATE)
    notes.append(f"template: {packaged.describe(template, origin, proj.root)}")
    if parameters:
        notes.append(f"parameters: {parameters} (--parameters)")
    else:
        notes.append(f"parameters: {packaged.describe(*packaged.resolve(proj.root, packaged.PARAMETERS), proj.root)}")
    bicep = ai_toolkit.foreign_bicep_note(proj.root, packaged.describe(template, origin, proj.root))
    if bicep:
        notes.append(bicep)
    if origin == packaged.PACKAGED:
        notes.append(f"{command('init')} writes the template and parameters into the project to edit")
    return notes


def provision_files(proj: Project, parameters: str | os.PathLike | None, params: Parameters,
                    sources: dict[str, str]) -> list[str]:
    """Before provision makes anything: refuse commands that start AI Toolkit's server (naming the file
    and field); then where each file came from, for the provision card."""
    from .finetuning import GIVEN

    given = sources.get("defaultCommands") == GIVEN
    ai_toolkit.refuse_toolkit_commands(
        params, "the defaultCommands given (command line, cell body or form)" if given
        else str(Path(parameters) if parameters else proj.parameters_file))
    return provenance(proj, parameters)
