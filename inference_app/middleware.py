"""Pure ASGI middleware pieces: the request body limit, and the error answer it shares with auth.py.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses and disconnect detection pass
through untouched, and so they also cover the mounted Gradio app's routes and unknown paths.
"""

from __future__ import annotations

import json


async def send_error(send, status: int, message: str, code: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """One OpenAI-shaped error answer (``{"error": {...}}``), sent straight from a middleware."""
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
    })
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse a request body over ``max_bytes`` with 413 before any route sees it (issue 12).

    A declared ``Content-Length`` over the limit is refused without reading the body; otherwise the
    body is read here (at most ``max_bytes``, so a chunked upload is bounded too) and handed to the
    app as one message. After it, ``receive`` passes through, so routes still see a disconnect.
    The limit covers every route and every field, known or not: a 50 MB string in a field the
    OpenAI route ignores would otherwise still be parsed into memory.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send) -> None:
        await send_error(
            send, 413,
            f"request body is larger than {self.max_bytes} bytes, this server's limit (max_request_bytes in its "
            "settings); send a shorter request", "request_too_large", [(b"connection", b"close")],
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before its body arrived
                pending = [message]
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                break

        async def replay():
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)
