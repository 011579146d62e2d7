"""Commands named the way the user runs them: `%aitk provision` in a notebook, `aitk provision` in a
terminal; `%aitk help` shows the magics' own syntax (issue 10, item 9)."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, free_port


def aitk(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aitk_nb.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def test_help_shows_each_verb_as_it_is_typed_in_a_notebook(shell, capsys):
    shell.run_line_magic("aitk", "help")
    text = capsys.readouterr().out
    for verb in ("provision", "deploy", "status", "endpoint", "logs", "scale", "teardown"):
        assert f"\n%aitk {verb} [" in "\n" + text, verb
    assert "\n%%aitk eval [" in text
    assert "%%aitk provision" not in text and "%%%aitk" not in text
    assert not [line for line in text.splitlines() if line.strip() == "::"]
    assert text == shell.find_line_magic("aitk").__doc__.split("\n\n", 1)[1] + "\n"


def test_the_cli_names_cli_commands_and_the_magic_names_magics(shell, project, monkeypatch):
    run = aitk("status", "--project", str(project))
    config = project / "infra/inference.config.json"
    assert run.returncode == 1 and run.stderr == (
        f"aitk status: error: no inference.config.json yet; run `aitk provision --project {project}` first (or fill "
        f"in {config} by hand)\n")
    monkeypatch.chdir(project)
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"run `%aitk provision` first"):
        shell.run_line_magic("aitk", "status")


def test_messages_built_in_a_verb_s_background_thread_name_cli_commands(project):
    params = json.loads((project / "infra/provision/inference.parameters.json").read_text())
    params["parameters"]["defaultCommands"]["value"] = ["echo 'fatal: no GPU' >&2", "exit 3"]
    crashing = project / "crashing.parameters.json"
    crashing.write_text(json.dumps(params))
    assert aitk("provision", "--project", str(project), "--port", str(free_port()),
                "--parameters", str(crashing)).returncode == 0
    run = aitk("deploy", "--project", str(project), "--model", "org/base")
    assert run.returncode == 1 and f"fatal: no GPU\nfix the cause and run `aitk deploy --project {project}` again" in run.stderr
    assert "%aitk" not in run.stderr and "Traceback" not in run.stderr
    aitk("teardown", "--project", str(project), "--yes")


def _messages(path: Path):
    """Every string constant of a module that is not a docstring, with its line."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


def test_no_message_spells_a_command_for_one_place_only():
    """A message that names a command builds it with `aitk_nb.invocation.command` (so a terminal user
    is not told to run a magic); the magics' own module and the notebook-only forms may spell it."""
    notebook_only = {"magics.py", "invocation.py"}
    found = [f"{path.relative_to(REPO)}:{line}: {text!r}"
             for path in sorted((REPO / "aitk_nb").rglob("*.py"))
             if path.name not in notebook_only and "widgets" not in path.parts
             for line, text in _messages(path) if "%aitk" in text or "`aitk " in text]
    assert not found, "\n".join(found)
