"""The baseline for benchmarks/serving.py: what the AI Toolkit's reference template does.

Each request gets its own ``model.generate`` in its own thread with a streamer; nothing is
batched and nothing is bounded. It speaks just enough of the OpenAI streaming route
(``POST /v1/chat/completions``, always streamed, with ``max_tokens``, ``ignore_eos``, usage in the
last chunk) and ``GET /health`` for the benchmark client to treat it like the real server.

    python benchmarks/baseline_server.py --model PATH --port 7861
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from transformers import AutoModelForCausalLM, AutoTokenizer, TextStreamer

_DONE = object()


class _QueueStreamer(TextStreamer):
    """TextIteratorStreamer with an asyncio queue, so waiting for text does not need a thread each."""

    def __init__(self, tokenizer, loop, queue):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.loop, self.queue, self.tokens = loop, queue, 0

    def put(self, value):
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.tokens += value.numel()
        super().put(value)

    def on_finalized_text(self, text, stream_end=False):
        if text:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, text)


def create_app(model_path: str) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        inputs = tokenizer.apply_chat_template(
            body["messages"], add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        max_new = int(body.get("max_tokens") or 256)
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        streamer = _QueueStreamer(tokenizer, loop, queue)
        kwargs = dict(inputs, max_new_tokens=max_new, streamer=streamer, do_sample=False,
                      pad_token_id=tokenizer.eos_token_id)
        if body.get("ignore_eos"):
            kwargs["min_new_tokens"] = max_new  # the same amount of work as the batched server

        def work():
            try:
                with torch.inference_mode():
                    model.generate(**kwargs)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        threading.Thread(target=work, daemon=True).start()

        async def events():
            while (item := await queue.get()) is not _DONE:
                yield "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": item}}]}) + "\n\n"
            usage = {"prompt_tokens": int(inputs["input_ids"].shape[1]), "completion_tokens": streamer.tokens}
            yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")  # always streams

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(args.model), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
