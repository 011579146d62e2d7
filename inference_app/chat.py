"""Service for POST /v1/chat/completions: turns a validated request into a response.

Generation stops when the client disconnects: a streaming response is cancelled by Starlette
(the SSE generator's ``finally`` closes the generation); a non-streaming one is raced against a
disconnect watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from .errors import EngineError
from .interface import GenerationRequest, GenerationStream, InferenceEngine
from .params import to_sampling
from .protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorDetail,
    ErrorResponse,
    Usage,
    completion_id,
    now,
)
from .settings import Settings

log = logging.getLogger("inference_app")
DISCONNECT_POLL_SECONDS = 0.25


def _messages(req: ChatCompletionRequest) -> list[dict[str, str]]:
    # "developer" is OpenAI's newer name for the system role; chat templates know "system".
    return [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in req.messages]


def _usage(gen: GenerationStream) -> Usage:
    return Usage(
        prompt_tokens=gen.prompt_tokens,
        completion_tokens=gen.completion_tokens,
        total_tokens=gen.prompt_tokens + gen.completion_tokens,
    )


def _with_note(body: dict, gen: GenerationStream) -> dict:
    """An extension field, present only when a server limit ended the answer (issue 12): finish_reason
    "length" alone cannot tell the client's own max_tokens from the server's time or token limit."""
    if gen.note:
        body["note"] = gen.note
    return body


async def create_chat_completion(req: ChatCompletionRequest, engine: InferenceEngine, settings: Settings, request: Request):
    gen = await engine.generate(GenerationRequest(_messages(req), req.model, to_sampling(req, settings)))
    if req.stream:
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        return StreamingResponse(
            _sse(gen, req.model, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    text = await _collect_unless_disconnected(gen, request)
    if text is None:  # client gone; nobody reads this
        return JSONResponse({}, status_code=499)
    body = ChatCompletion(
        id=completion_id(),
        created=now(),
        model=req.model,
        choices=[Choice(message=AssistantMessage(content=text), finish_reason=gen.finish_reason or "stop")],
        usage=_usage(gen),
    )
    return JSONResponse(_with_note(body.model_dump(exclude={"note"}), gen))


async def _collect(gen: GenerationStream) -> str:
    try:
        return "".join([delta async for delta in gen])
    finally:
        await gen.aclose()


async def _watch_disconnect(request: Request) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(DISCONNECT_POLL_SECONDS)


async def _collect_unless_disconnected(gen: GenerationStream, request: Request) -> str | None:
    collect = asyncio.create_task(_collect(gen))
    watch = asyncio.create_task(_watch_disconnect(request))
    try:
        await asyncio.wait({collect, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not collect.done():
            collect.cancel()  # closes the generation, which sets its cancel flag
            with contextlib.suppress(asyncio.CancelledError):
                await collect
    if collect.cancelled():
        log.info("client disconnected; generation stopped")
        return None
    return collect.result()


def _event(payload: dict | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload, separators=(',', ':'))}\n\n"


async def _sse(gen: GenerationStream, model: str, include_usage: bool) -> AsyncIterator[str]:
    cid, created = completion_id(), now()

    def chunk(delta: Delta, finish_reason=None) -> str:
        c = ChatCompletionChunk(id=cid, created=created, model=model, choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)])
        body = c.model_dump(exclude={"usage", "note"})
        body["choices"][0]["delta"] = delta.model_dump(exclude_none=True)
        return _event(_with_note(body, gen) if finish_reason else body)

    finished = False
    try:
        yield chunk(Delta(role="assistant", content=""))
        async for text in gen:
            yield chunk(Delta(content=text))
        yield chunk(Delta(), gen.finish_reason or "stop")
        if include_usage:
            c = ChatCompletionChunk(id=cid, created=created, model=model, choices=[], usage=_usage(gen))
            yield _event(c.model_dump(exclude={"note"}))
        finished = True
    except EngineError as e:
        # Headers are sent already: report in-band, as OpenAI does (the SDK raises APIError on it).
        log.warning("stream failed: %s", e)
        yield _event(ErrorResponse(error=ErrorDetail(message=str(e), type=e.error_type, code=e.code)).model_dump())
        finished = True
    finally:
        if not finished:
            log.info("client disconnected; stream stopped after %d tokens", gen.completion_tokens)
        await gen.aclose()
    yield _event("[DONE]")
