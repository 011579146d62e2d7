"""The two ways to ask a deployed app: the Gradio API `/generate` (what the UI calls; text only) and
the OpenAI-compatible `POST /v1/chat/completions` (text and the completion's token count); and what
the app serves, from its health route."""
from __future__ import annotations

import threading

from inference_app.contract import HEALTH_ROUTE, served_variants

from ..errors import EvalError
from ..invocation import command
from .auth import api_key_problem

APIS = ("gradio", "openai")


class GradioBackend:
    """Answers through the Gradio API `/generate` (what the UI calls): text only."""

    def __init__(self, endpoint: str, headers: dict | None):
        from gradio_client import Client

        try:
            self.client = Client(endpoint, headers=headers, verbose=False, download_files=False, analytics_enabled=False)
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
            return job.result(), None
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

    def __init__(self, endpoint: str, headers: dict | None):
        import httpx

        self.url = endpoint.rstrip("/") + "/v1/chat/completions"
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(600.0, connect=10.0))

    def ask(self, prompt: str, variant: str, max_new_tokens: int, temperature: float) -> tuple[str, int | None]:
        r = self.http.post(self.url, json={"model": variant, "messages": [{"role": "user", "content": prompt}],
                                           "max_tokens": max_new_tokens, "temperature": temperature, "top_p": 1.0})
        if r.status_code != 200:
            raise EvalError(f"HTTP {r.status_code}: {r.text[:300]}")
        body = r.json()
        return body["choices"][0]["message"]["content"], (body.get("usage") or {}).get("completion_tokens")

    def cancel(self) -> None:
        self.http.close()



def open_backend(api: str, endpoint: str, headers: dict | None):
    """The backend for `api` (one of APIS)."""
    return GradioBackend(endpoint, headers) if api == "gradio" else OpenAIBackend(endpoint, headers)


def served_by(endpoint: str, headers: dict | None) -> list[str]:
    """The variants the app at `endpoint` serves (its health route lists them)."""
    import httpx

    try:
        r = httpx.get(endpoint.rstrip("/") + HEALTH_ROUTE, headers=headers, timeout=10.0)
    except httpx.TransportError as e:
        raise EvalError(f"cannot reach {endpoint} ({e}); is it deployed and running? see {command('status')}") from None
    if r.status_code != 200:
        raise EvalError(f"{endpoint}/health answered {r.status_code}; the app is not ready, see {command('status')} and {command('logs')}")
    body = r.json()
    # the server lists what it serves; one deployed by an earlier version lists its adapters only
    return body.get("variants") or served_variants(body.get("adapters", []), bool(body.get("merged_adapter")))
