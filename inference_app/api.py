"""FastAPI app: OpenAI routes, /health, error shapes, auth, and the Gradio UI mounted at ``/``.

API routes are registered before the Gradio mount, so they win over its catch-all ``/``.
Every error answer has OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``;
validation errors are 400 (not FastAPI's 422) and name the field in ``param``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import ApiKeyMiddleware
from .chat import create_chat_completion
from .errors import EngineError, OverloadedError, NotReadyError
from .interface import BASE, InferenceEngine
from .middleware import BodyLimitMiddleware
from .protocol import ChatCompletionRequest, ModelCard, ModelList

log = logging.getLogger("inference_app")


def error_response(status: int, message: str, type_: str, param: str | None = None, code: str | None = None, headers=None):
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}, status_code=status, headers=headers
    )


def _field_path(loc: tuple) -> str | None:
    """("body", "messages", 0, "content") -> "messages[0].content"."""
    parts = list(loc[1:] if loc and loc[0] in ("body", "query", "path") else loc)
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if errors[0].get("type") == "json_invalid":
            detail = errors[0].get("ctx", {}).get("error", "")
            return error_response(400, f"request body is not valid JSON: {detail}", "invalid_request_error")
        params = [_field_path(tuple(e.get("loc", ()))) for e in errors]
        if params[0] is None:  # no body at all
            return error_response(400, "request body is required: a JSON object sent with Content-Type: application/json", "invalid_request_error")
        # param names the first bad field (OpenAI has one); the message lists every problem.
        message = "; ".join(f"{p}: {str(e.get('msg', 'invalid value')).removeprefix('Value error, ')}" for p, e in zip(params, errors))
        return error_response(400, message, "invalid_request_error", param=params[0])

    @app.exception_handler(EngineError)
    async def _engine(request: Request, exc: EngineError):
        headers = {"Retry-After": "1"} if isinstance(exc, OverloadedError) else {"Retry-After": "5"} if isinstance(exc, NotReadyError) else None
        if exc.status_code >= 500 and not isinstance(exc, (OverloadedError, NotReadyError)):
            log.error("request failed: %s", exc)
        return error_response(exc.status_code, str(exc), exc.error_type, exc.param, exc.code, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}", "server_error")


def create_app(
    engine: InferenceEngine,
    *,
    background_load: Callable[[], Awaitable[None]] | None = None,
    with_ui: bool = True,
) -> FastAPI:
    """The whole server. ``background_load`` runs as a task after start-up (the model load)."""
    settings = engine.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(background_load()) if background_load else None
        try:
            yield
        finally:
            if task and not task.done():
                task.cancel()
            engine.shutdown()

    # The OpenAPI document is served (behind the key, like every route) for clients and the
    # schemathesis run in the tests; the interactive docs pages are not.
    app = FastAPI(title="aitk-nb inference", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    _install_error_handlers(app)

    @app.get("/live")
    async def live():
        """The startup and liveness probes: the process serves (the model may still be loading)."""
        return {"status": "alive"}

    @app.get("/health")
    async def health():
        body = engine.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    def card(variant: str) -> ModelCard:
        return ModelCard(id=variant, root=settings.base_model_id, parent=None if variant == BASE else BASE,
                         max_model_len=engine.context_window)

    @app.get("/v1/models")
    async def list_models():
        return ModelList(data=[card(v) for v in engine.variants()]).model_dump()

    @app.get("/v1/models/{model:path}")
    async def get_model(model: str):
        return card(engine.resolve(model)).model_dump() | {"id": model}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await create_chat_completion(body, engine, settings, request)

    if with_ui:
        import gradio as gr

        from .ui import UnknownEventMiddleware, build_ui

        blocks = build_ui(engine, settings)
        app = gr.mount_gradio_app(app, blocks, path="/", footer_links=["api", "gradio"])
        app.add_middleware(UnknownEventMiddleware, blocks=blocks)
    # add_middleware puts the latest outermost: the key is checked before a body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    if settings.api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=settings.api_key.get_secret_value())
    return app
