"""Gradio UI at ``/`` and the Gradio API ``/generate`` used by ``%%aitk eval``.

``/generate`` takes exactly (prompt, adapter, max_new_tokens, temperature, top_p, top_k) and
streams the growing text; ``gradio_client``'s ``predict`` returns the final text. The prompt is
one user message through the same engine and chat template as the OpenAI route, so both routes
give the same greedy text for the same prompt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import gradio as gr
from pydantic import ValidationError

from .errors import EngineError
from .interface import GenerationRequest, InferenceEngine
from .middleware import send_error
from .params import to_sampling
from .protocol import SamplingFields, unicode_text
from .settings import Settings


_UI_FIELDS = {"model": "adapter", "messages": "prompt"}  # API field -> this form's field


def _ui_message(e: EngineError) -> str:
    """The engine's message, naming the form's field (adapter, prompt) rather than the API's."""
    text = str(e)
    field = _UI_FIELDS.get(e.param or "")
    if field is None:
        return text
    return f"{field}: {text.removeprefix(e.param + ': ')}"


def _refusal(message: str) -> gr.Error:
    """A request refused (bad input, busy server): the caller sees the message; the log gets no traceback."""
    return gr.Error(message, print_exception=False)


def build_ui(engine: InferenceEngine, settings: Settings) -> gr.Blocks:
    async def generate(
        prompt: str, adapter: str, max_new_tokens: float, temperature: float, top_p: float, top_k: float
    ) -> AsyncIterator[str]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise _refusal("prompt: enter a prompt")
        try:
            unicode_text(prompt)
        except ValueError as e:
            raise _refusal(f"prompt: {e}") from None
        try:
            fields = SamplingFields(
                max_tokens=int(max_new_tokens), temperature=temperature, top_p=top_p, top_k=int(top_k)
            )
            gen = await engine.generate(
                GenerationRequest([{"role": "user", "content": prompt}], str(adapter), to_sampling(fields, settings))
            )
        except ValidationError as e:
            err = e.errors()[0]
            raise _refusal(f"{err['loc'][0]}: {err['msg'].removeprefix('Value error, ')}") from None
        except EngineError as e:
            raise _refusal(_ui_message(e)) from None
        except (TypeError, ValueError) as e:
            raise _refusal(str(e)) from None
        text = ""
        try:
            async for delta in gen:
                text += delta
                yield text
            if gen.note:  # a server limit ended the answer: the reader sees why it stops there
                yield f"{text}\n\n[{gen.note}]"
        except EngineError as e:
            raise gr.Error(str(e)) from None
        finally:
            await gen.aclose()  # also runs when the browser tab goes away: stops generation

    with gr.Blocks(title="aitk-nb inference") as demo:
        gr.Markdown(f"## aitk-nb inference\nBase model **{settings.base_model_id}**")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=4, placeholder="Ask something...")
                output = gr.Textbox(label="Output", lines=10, interactive=False)
                with gr.Row():
                    run = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop")
            with gr.Column(scale=1):
                # Custom values reach generate(), which accepts the base model id too and names the
                # field when a name is unknown (Gradio's own check would say only "Value: ...").
                adapter = gr.Dropdown(engine.variants(), value=engine.variants()[0], label="Adapter", allow_custom_value=True)
                max_new_tokens = gr.Slider(1, settings.max_new_tokens_limit, value=settings.max_new_tokens, step=1, label="Max new tokens")
                temperature = gr.Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                top_p = gr.Slider(0.01, 1, value=1, step=0.01, label="Top-p")
                top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)")
        inputs = [prompt, adapter, max_new_tokens, temperature, top_p, top_k]
        event = run.click(generate, inputs, output, api_name="generate")
        prompt.submit(generate, inputs, output, api_name=False)
        stop.click(None, cancels=[event], api_name=False)
    # No concurrency limit of Gradio's own: each event reaches the engine at once, so the Gradio API
    # shares the OpenAI route's bound (max_concurrency) and its refusal ("server busy ... retry",
    # raised as gr.Error, which gradio_client reports as an AppError) instead of waiting in a queue
    # without bound (issue 12). max_size is a backstop for events of other kinds.
    demo.queue(default_concurrency_limit=None, max_size=settings.max_concurrency)
    _warm_up_gradio_calls()
    return demo


def _warm_up_gradio_calls() -> None:
    """Gradio wraps every call in a switch of matplotlib's backend, importing matplotlib on the event
    loop at the first call: half a second in which /health and /live did not answer (issue 12).
    Done once here, at start-up, instead."""
    manager = getattr(gr.utils, "MatplotlibBackendMananger", None)  # sic: Gradio's spelling
    if manager is not None:
        with manager():
            pass


class UnknownEventMiddleware:
    """A clean 404 for a Gradio event stream that does not exist (issue 12).

    Gradio 6 checks the event only inside its SSE response, after the headers are sent, and raises
    a 404 there: the client sees a dropped connection and the log a traceback. This checks first,
    the way Gradio's routes look the event up (``/gradio_api/queue/data?session_hash=`` and
    ``/gradio_api/call/<api>/<event id>``), and passes everything else through. It reads Gradio's
    queue, so if a Gradio version renames what it reads, the check steps aside (a test notices).
    """

    def __init__(self, app, blocks: gr.Blocks):
        self.app = app
        self.blocks = blocks

    def _session(self, scope) -> str | None:
        """The session an event-stream request asks for; None for any other request."""
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        path = scope["path"]
        if path == "/gradio_api/queue/data":
            return parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [""])[0]
        parts = path.split("/")
        if len(parts) != 5 or parts[:3] != ["", "gradio_api", "call"]:
            return None
        event_id = parts[4]
        queue = self.blocks._queue
        if (event := queue.event_ids_to_events.get(event_id)) is not None:
            return event.session_hash
        # A finished event is found through its session until its result is read (Gradio does the same).
        return next((s for s, ids in queue.pending_event_ids_session.items() if event_id in ids), event_id)

    async def __call__(self, scope, receive, send):
        try:
            session = self._session(scope)
            known = session is None or session in self.blocks._queue.pending_messages_per_session
        except AttributeError:  # another Gradio version: let its own route answer
            known = True
        if known:
            await self.app(scope, receive, send)
        else:
            await send_error(send, 404, "no such event: it finished and was read already, or never existed; "
                             "submit the request again", "event_not_found")
