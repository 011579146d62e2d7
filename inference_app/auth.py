"""API-key check for every route but /health and /live (the probes), as pure ASGI middleware.

Pure ASGI (see middleware.py), so it also guards the mounted Gradio app's own routes (/config,
/gradio_api/...). Accepted credentials:

* ``Authorization: Bearer <key>`` — the OpenAI SDK and ``gradio_client.Client(headers=...)``;
* ``Authorization: Basic <user:key>`` (any user) — a browser cannot send a bearer header, so a
  401 carries ``WWW-Authenticate: Basic`` and the browser asks for the key as a password.

The comparison is constant-time; the key is never logged.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from .middleware import send_error

OPEN_PATHS = frozenset({"/health", "/live"})
REALM = "aitk-nb"


def _presented_key(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer":
        return value
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


class ApiKeyMiddleware:
    def __init__(self, app, api_key: str):
        self.app = app
        self._key = api_key.encode("utf-8")

    def _authorized(self, scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                presented = _presented_key(value.decode("latin-1"))
                return presented is not None and secrets.compare_digest(presented.encode("utf-8"), self._key)
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "invalid or missing API key"})
            return
        has_header = any(name == b"authorization" for name, _ in scope.get("headers", ()))
        message = "invalid API key" if has_header else "missing API key: send 'Authorization: Bearer <key>'"
        await send_error(send, 401, message, "invalid_api_key",
                         [(b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode())])
