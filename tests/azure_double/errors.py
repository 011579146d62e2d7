"""The error a resource provider answers with: an ARM error body, or a failed deployment operation."""
from __future__ import annotations


class ResourceFailure(Exception):
    """A request ARM or a resource provider refuses: `{"error": {"code", "message"}}` with `status`;
    inside a deployment, the failed operation's statusMessage."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status
