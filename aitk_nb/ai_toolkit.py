"""AI Toolkit's own inference files in a project (issue 16, item 3): recognised before anything is made,
never silently used with aitk-nb's server, migrated only when the user says so.

- `infra/provision/inference.parameters.json` whose `defaultCommands` start AI Toolkit's server
  (`python3 ./gradio_chat.py`, /work/shared/aitk-inference-example): provision refuses it, naming the
  file and the field; `init --migrate` replaces the commands with aitk-nb's (taken from the packaged
  default parameters file), keeps every other value, and keeps the old file beside it as a backup.
- `infra/provision/inference.bicep` that is not aitk-nb's (ours tags what it makes `aitk-nb-owner`;
  AI Toolkit's tags nothing): never overwritten, never deployed (aitk-nb deploys inference.json).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import packaged
from .config import Parameters, parameter_values, read_json, write_json_atomic
from .errors import ConfigError
from .invocation import command

# how AI Toolkit's inference server is started (its template's defaultCommands)
TOOLKIT_SERVER = "gradio_chat.py"
# what every resource aitk-nb's template declares carries (DESIGN.md, ownership); AI Toolkit's has none
OUR_TEMPLATE_MARKER = "aitk-nb-owner"
BACKUP_SUFFIX = ".bak"


def toolkit_command(commands: Any) -> str | None:
    """The command that starts AI Toolkit's server, if these commands have one."""
    if isinstance(commands, list):
        return next((c for c in commands if isinstance(c, str) and TOOLKIT_SERVER in c), None)
    return None


def refuse_toolkit_commands(params: Parameters, source: str) -> None:
    """Before anything is made: commands that start AI Toolkit's server are refused, naming `source`
    (the file, or where the override came from) and the field, and what to run."""
    found = toolkit_command(params.defaultCommands)
    if found is None:
        return
    raise ConfigError(
        f"{source}: defaultCommands starts AI Toolkit's own server ({found!r}), not aitk-nb's; nothing was made. "
        f"Run {command('init --migrate')} to switch the file to aitk-nb's commands (the old file is kept as a "
        "backup beside it), or set defaultCommands to aitk-nb's (" + "; ".join(default_commands()) + ")")


def default_commands() -> list[str]:
    """aitk-nb's commands, from the packaged default parameters file (the one source of them)."""
    return list(_packaged_parameters()["defaultCommands"]["value"])


def _packaged_parameters() -> dict[str, Any]:
    data = read_json(packaged.path(packaged.PARAMETERS), "reinstall aitk-nb")
    return data["parameters"]


def is_ours(template: Path) -> bool:
    """Whether a template file is aitk-nb's (edited or not): it tags what it makes as ours."""
    try:
        return OUR_TEMPLATE_MARKER in template.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def foreign_bicep_note(project_root: Path, deployed: str) -> str | None:
    """What happens to a project's Bicep that is not aitk-nb's (AI Toolkit's): said, never used."""
    bicep = project_root / packaged.BICEP
    if not bicep.is_file() or is_ours(bicep):
        return None
    return (f"{packaged.BICEP} is not aitk-nb's template (AI Toolkit's, by its content): left as it is, not used; "
            f"provision deploys {deployed}")


def backup_path(path: Path) -> Path:
    """A free name beside `path` for its backup: NAME.bak, else NAME.bak.1, .2, ..."""
    candidate = path.with_name(path.name + BACKUP_SUFFIX)
    n = 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}{BACKUP_SUFFIX}.{n}")
    return candidate


def migrated(path: Path) -> dict[str, Any]:
    """The parameters file at `path` with aitk-nb's commands: every other value kept, the parameters
    aitk-nb's default has and it lacks added as in the default. Checked before it is written."""
    parameter_values(path)  # checks the shape, naming the file
    data = read_json(path, "")
    defaults = _packaged_parameters()
    entries = dict(data["parameters"])
    entries["defaultCommands"] = {"value": default_commands()}
    for key, entry in defaults.items():
        entries.setdefault(key, entry)
    Parameters.from_values({k: e["value"] for k, e in entries.items()}, source=f"{path} (migrated)")
    return {**data, "parameters": entries}


def migrate(path: Path) -> Path:
    """Migrate the parameters file at `path` (after the caller asked): the old file is copied beside it
    first (never over an existing file), then the new one replaces it atomically. Returns the backup."""
    new = migrated(path)
    backup = backup_path(path)
    original = path.read_bytes()
    with open(backup, "xb") as f:  # x: never over a file that appeared meanwhile
        f.write(original)
        f.flush()
        os.fsync(f.fileno())
    write_json_atomic(path, new)
    return backup


def commands_text(path: Path) -> str | None:
    """The command of a parameters file that starts AI Toolkit's server (None: not AI Toolkit's, or unreadable)."""
    try:
        return toolkit_command(parameter_values(path).get("defaultCommands"))
    except ConfigError:
        return None

