"""Notebook forms for the verbs: `%aitk provision` and `%aitk deploy` with no options in a notebook.

ipywidgets is imported only when a form is built, so `import aitk_nb` and `%load_ext aitk_nb`
stay light. The field logic (what the form asks, how a value is checked) lives in `model.py` and
needs no widgets; `provision.py` and `deploy.py` are the views.
"""
from __future__ import annotations

from typing import Any

from .providers import AzureChoices, azure_choices, set_azure_choices

__all__ = ["AzureChoices", "azure_choices", "set_azure_choices", "in_notebook", "provision_form", "deploy_form"]


def in_notebook(shell: Any = None) -> bool:
    """True in a kernel with a front end that renders widgets (Jupyter, VS Code), False in a terminal
    IPython, a plain InteractiveShell or the CLI."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is a dependency
            return False
        shell = get_ipython()
    # ipykernel's shell; a terminal IPython is TerminalInteractiveShell, tests use InteractiveShell
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def provision_form(**kwargs: Any):
    """The provision form (see `ProvisionForm`)."""
    from .provision import ProvisionForm

    return ProvisionForm(**kwargs)


def deploy_form(**kwargs: Any):
    """The deploy form (see `DeployForm`)."""
    from .deploy import DeployForm

    return DeployForm(**kwargs)
