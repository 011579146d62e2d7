"""Errors the engine raises; the routes map each to one HTTP status and OpenAI error shape."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the engine's user-facing errors."""

    status_code = 500
    error_type = "server_error"
    code: str | None = None
    param: str | None = None


class AdapterConfigError(EngineError):
    """An adapter configured at start-up is unusable (missing folder, no adapter_config.json)."""


class ModelLoadError(EngineError):
    """The base model or an adapter failed to load."""


class NotReadyError(EngineError):
    """The model is still loading."""

    status_code = 503
    error_type = "service_unavailable"
    code = "model_loading"


class OverloadedError(EngineError):
    """Too many requests are queued or running; the client should retry later."""

    status_code = 503
    error_type = "overloaded"
    code = "overloaded"


class UnknownModelError(EngineError):
    """The requested variant is neither ``base``, the base model id, nor a loaded adapter."""

    status_code = 404
    error_type = "invalid_request_error"
    code = "model_not_found"
    param = "model"


class EngineConfigError(EngineError):
    """The settings ask for an engine this machine cannot run (e.g. vLLM without vllm or a GPU)."""


class VariantNotServedError(EngineError):
    """The variant exists but this server does not serve it (``base`` when an adapter is merged)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "model_not_served"
    param = "model"


class PromptTooLongError(EngineError):
    """The prompt leaves no room for an answer in the context window."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "context_length_exceeded"
    param = "messages"


class InvalidRequestError(EngineError):
    """A request field is out of range for this server (e.g. max_tokens above the limit)."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param
