"""`%aitk <verb>` and `%%aitk <verb>`: parse, call the verb, return its result for display."""
from __future__ import annotations

import os


from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split

from . import commands
from .errors import AitkError
from .invocation import for_project


@magics_class
class AitkMagics(Magics):
    @line_cell_magic
    def aitk(self, line: str, cell: str | None = None):
        verb, _, rest = _drop_comment(line).strip().partition(" ")
        if verb in ("", "status") and cell is None and not rest.strip():
            verb = "status"
        if verb in ("help", "-h", "--help"):
            print(commands.overview())
            return None
        handler = commands.VERBS.get(verb)
        if handler is None:
            raise UsageError(f"unknown verb {verb!r}; use one of: {', '.join(commands.VERBS)} (see `%aitk help`)")
        if verb in FORMS and cell is None and not rest.strip() and _in_notebook(self.shell):
            return _form(verb)  # no options in a notebook: the form (a terminal keeps the defaults)
        if verb == "eval" and cell is None and "--resume" not in rest:
            raise UsageError("eval is a cell magic: put `%%aitk eval` on the first line and the prompts below it")
        # posix splitting, so a quoted path ("{assets.adapter}" with spaces) loses its quotes as in a shell
        args = handler.parser.parse_args(arg_split(rest, posix=os.name == "posix"))
        try:
            with for_project(args.project):  # suggested commands name the --project given
                return handler(args, cell)
        except AitkError as e:
            # exactly UsageError: IPython shows it as one line, no traceback (STYLE.md)
            raise UsageError(str(e)) from None


FORMS = ("provision", "deploy")


def _drop_comment(line: str) -> str:
    """The line without a trailing `# comment` (as a shell reads it: a `#` that starts a word, outside
    quotes), so `%aitk status  # what runs` works as the README writes it (issue 20)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _in_notebook(shell) -> bool:
    from .widgets import in_notebook

    return in_notebook(shell)


def _form(verb: str):
    from . import widgets

    try:
        return widgets.provision_form() if verb == "provision" else widgets.deploy_form()
    except AitkError as e:
        raise UsageError(str(e)) from None
    except ModuleNotFoundError as e:
        if e.name != "ipywidgets":
            raise
        raise UsageError(f"the {verb} form needs ipywidgets (`pip install ipywidgets`); or pass options, "
                         f"see `%aitk {verb} --help`") from None


AitkMagics.aitk.__doc__ = "aitk-nb: provision, deploy and evaluate fine-tuned adapters.\n\n" + commands.overview()


def load(ipython) -> None:
    ipython.register_magics(AitkMagics)

