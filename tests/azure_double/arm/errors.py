"""Errors of the template language, as ARM reports them (code InvalidTemplate unless said)."""
from __future__ import annotations


class TemplateError(Exception):
    """A template, parameter or expression that ARM refuses; `message` is ARM's wording. `located`:
    the message already says where in the template (a parameter's own check), so an enclosing
    evaluation does not prefix it with its place again."""

    def __init__(self, message: str, code: str = "InvalidTemplate", *, located: bool = False):
        super().__init__(message)
        self.message, self.code, self.located = message, code, located
