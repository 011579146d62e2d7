"""The two ways to ask a deployed app: the Gradio API `/generate` (what the UI calls; text only) and
the OpenAI-compatible `POST /v1/chat/completions` (text and the completion's token count); and what
the app serves, from its health route."""
from __future__ import annotations

import threading
from typing import Any

from inference_app.contract import served_variants

from ..errors import EvalError
from ..invocation import command
from .auth import api_key_problem

APIS = ("gradio", "openai")
# One answer's time limit: the Container Apps ingress ends a request after 240 s (with a 504, which is
# retried); a little more here, so the ingress's answer, not a client timeout, says what happened.
REQUEST_TIMEOUT = 250.0
BUSY_STATUSES = (502, 503, 504)  # the ingress: no replica ready yet, or its time limit


class IngressBusy(Exception):
    """A 502/503/504: the ingress had no replica to answer (retried with backoff)."""

    def __init__(self, status: int, retry_after: float | None, text: str):
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status, self.retry_after = status, retry_after


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (RFC 9110: delay-seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        from email.utils import parsedate_to_datetime
        import datetime as dt

        try:
            return max((parsedate_to_datetime(value) - dt.datetime.now(dt.timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return None


def busy(exc: BaseException | None) -> float | None:
    """For an error that is the ingress's 502/503/504 (ours, or httpx's inside gradio_client): the
    seconds its Retry-After asks for (0 when it gives none); None for any other error. gradio_client
    turns a 503 of its queue's join into its own QueueError ("Queue is full!"), Retry-After lost."""
    import sys

    import httpx

    gradio_utils = sys.modules.get("gradio_client.utils")  # loaded when the Gradio backend is in use
    queue_error = getattr(gradio_utils, "QueueError", None)
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, IngressBusy):
            return exc.retry_after or 0.0
        if queue_error is not None and isinstance(exc, queue_error):
            return 0.0
        if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in BUSY_STATUSES:
            return _retry_after(exc.response.headers.get("retry-after")) or 0.0
        exc = exc.__cause__ or exc.__context__
    return None


class GradioBackend:
    """Answers through the Gradio API `/generate` (what the UI calls): text only."""

    def __init__(self, endpoint: str, headers: dict | None, verify: Any = True):
        from gradio_client import Client

        try:
            self.client = Client(endpoint, headers=headers, verbose=False, download_files=False, analytics_enabled=False,
                                 ssl_verify=verify)
        except Exception as e:  # gradio_client raises many types for an unreachable or foreign endpoint
            raise EvalError(api_key_problem(endpoint, headers) or
                            f"cannot open the Gradio API at {endpoint} ({type(e).__name__}: {e}); "
                            f"check {command('status')}") from e
        self.jobs: set = set()
        self.lock = threading.Lock()

    def ask(self, prompt: str, variant: str, max_new_tokens: int, temperature: float) -> tuple[str, int | None]:
        job = self.client.submit(prompt, variant, max_new_tokens, temperature, 1.0, 50, api_name="/generate")
        with self.lock:
            self.jobs.add(job)
        try:
            return job.result(timeout=REQUEST_TIMEOUT), None
        finally:
            with self.lock:
                self.jobs.discard(job)

    def cancel(self) -> None:
        """Stop what is still running on the server (the app stops generating when a job is cancelled)."""
        with self.lock:
            jobs = list(self.jobs)
        for job in jobs:
            try:
                job.cancel()
            except Exception:  # best effort: the interrupt has already been honoured
                pass


class OpenAIBackend:
    """Answers through `POST /v1/chat/completions` (not streamed): text and the completion's token count."""

    def __init__(self, endpoint: str, headers: dict | None, verify: Any = True):
        import httpx

        self.url = endpoint.rstrip("/") + "/v1/chat/completions"
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(REQUEST_TIMEOUT, connect=10.0), verify=verify)

    def ask(self, prompt: str, variant: str, max_new_tokens: int, temperature: float) -> tuple[str, int | None]:
        r = self.http.post(self.url, json={"model": variant, "messages": [{"role": "user", "content": prompt}],
                                           "max_tokens": max_new_tokens, "temperature": temperature, "top_p": 1.0})
        if r.status_code in BUSY_STATUSES:
            raise IngressBusy(r.status_code, _retry_after(r.headers.get("retry-after")), r.text)
        if r.status_code != 200:
            raise EvalError(f"HTTP {r.status_code}: {r.text[:300]}")
        body = r.json()
        return body["choices"][0]["message"]["content"], (body.get("usage") or {}).get("completion_tokens")

    def cancel(self) -> None:
        self.http.close()



def open_backend(api: str, endpoint: str, headers: dict | None, verify: Any = True):
    """The backend for `api` (one of APIS); `verify`: TLS trust for the endpoint (httpx's)."""
    return (GradioBackend if api == "gradio" else OpenAIBackend)(endpoint, headers, verify)


def served_by(health: dict) -> list[str]:
    """The variants an app serves, from its health route's body."""
    # the server lists what it serves; one deployed by an earlier version lists its adapters only
    return health.get("variants") or served_variants(health.get("adapters", []), bool(health.get("merged_adapter")))
