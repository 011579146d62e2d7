"""aitk-nb: provision GPU inference, deploy fine-tuned LoRA adapters and evaluate them, from Jupyter.

    %load_ext aitk_nb
    %aitk provision --target local
    %aitk deploy --adapter models/my-adapter

The verbs are also plain functions (imported on first use, so `import aitk_nb` stays light);
`begin_provision` / `begin_deploy` run the long ones in the background and return an `Operation`,
and `endpoint()` returns the deployed app as an `Endpoint` object.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "provision": "verbs", "deploy": "verbs", "status": "verbs", "endpoint": "verbs", "logs": "verbs",
    "scale": "verbs", "teardown": "verbs", "evaluate": "evaluation", "AitkError": "errors", "set_credential": "targets",
    "begin_provision": "verbs", "begin_deploy": "verbs", "Endpoint": "endpoints", "Operation": "operations",
    "init": "scaffold",
    "OperationCancelledError": "errors",
    "set_currency": "prices",
}
__all__ = [*_LAZY, "load_ipython_extension"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'aitk_nb' has no attribute {name!r}")


def load_ipython_extension(ipython) -> None:
    from .magics import load

    load(ipython)
