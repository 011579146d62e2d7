"""Gradio UI at ``/`` and the Gradio API ``/generate`` used by ``%%aitk eval``.

``/generate`` takes exactly (prompt, adapter, max_new_tokens, temperature, top_p, top_k) and
streams the growing text; ``gradio_client``'s ``predict`` returns the final text. The prompt is
one user message through the same engine and chat template as the OpenAI route, so both routes
give the same greedy text for the same prompt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import gradio as gr
from pydantic import ValidationError

from .errors import EngineError
from .interface import GenerationRequest, InferenceEngine
from .params import to_sampling
from .protocol import SamplingFields
from .settings import Settings


_UI_FIELDS = {"model": "adapter", "messages": "prompt"}  # API field -> this form's field


def _ui_message(e: EngineError) -> str:
    """The engine's message, naming the form's field (adapter, prompt) rather than the API's."""
    text = str(e)
    field = _UI_FIELDS.get(e.param or "")
    if field is None:
        return text
    return f"{field}: {text.removeprefix(e.param + ': ')}"


def build_ui(engine: InferenceEngine, settings: Settings) -> gr.Blocks:
    async def generate(
        prompt: str, adapter: str, max_new_tokens: float, temperature: float, top_p: float, top_k: float
    ) -> AsyncIterator[str]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise gr.Error("prompt: enter a prompt")
        try:
            fields = SamplingFields(
                max_tokens=int(max_new_tokens), temperature=temperature, top_p=top_p, top_k=int(top_k)
            )
            gen = engine.generate(
                GenerationRequest([{"role": "user", "content": prompt}], str(adapter), to_sampling(fields, settings))
            )
        except ValidationError as e:
            err = e.errors()[0]
            raise gr.Error(f"{err['loc'][0]}: {err['msg'].removeprefix('Value error, ')}") from None
        except EngineError as e:
            raise gr.Error(_ui_message(e)) from None
        except (TypeError, ValueError) as e:
            raise gr.Error(str(e)) from None
        text = ""
        try:
            async for delta in gen:
                text += delta
                yield text
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
    demo.queue(default_concurrency_limit=settings.gradio_concurrency)
    return demo
