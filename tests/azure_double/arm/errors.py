"""Errors of the template language, as ARM reports them (code InvalidTemplate unless said)."""
from __future__ import annotations


class TemplateError(Exception):
    """A template, parameter or expression that ARM refuses; `message` is ARM's wording."""

    def __init__(self, message: str, code: str = "InvalidTemplate"):
        super().__init__(message)
        self.message, self.code = message, code
