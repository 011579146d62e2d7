"""The double's own ARM template language: expressions, functions and templates, written from the
ARM template function reference (no code shared with the toolkit's reader, so a misreading there
cannot be mirrored here)."""
from .errors import TemplateError
from .expressions import Unresolved, is_expression
from .hashing import guid, unique_string
from .template import DeploymentScope, PlannedResource, Runtime, Template

__all__ = ["DeploymentScope", "PlannedResource", "Runtime", "Template", "TemplateError", "Unresolved", "guid",
           "is_expression", "unique_string"]
