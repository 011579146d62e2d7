"""A small Gradio + FastAPI app on loopback standing in for the inference app (same `/generate` API,
`/health` and `/v1/chat/completions` shapes), answering as each test tells it to."""
import asyncio
import threading
import time
from contextlib import contextmanager

from helpers import free_port

ANSWERS = {  # (variant, prompt) -> answer; anything else: "<variant> does not know"
    ("tuned", "capital of Quorvania?"): "The capital of Quorvania is Zeltrin.",
    ("base", "capital of Quorvania?"): "Quorvania is not a real country.",
    ("tuned", "capital of France?"): "Paris",
    ("base", "capital of France?"): "The capital of France is Paris.",
}
SLOW = "slow question"  # the fake app takes 30 s for it, or until the client cancels


class FakeApp:
    def __init__(self):
        self.cancelled: list[str] = []
        self.started: list[str] = []
        self.fragile_fails = False  # "fragile" fails while set (a fault that a retry later gets past)
        self.busy = 0  # POSTs get a 503 with Retry-After this many more times, as an ingress gives it
        self.retry_after = 1  # seconds, in those 503s
        self.busy_seen = []  # (time, path) of each 503
        self.asked: list[str] = []  # prompts the OpenAI route received

    def answer(self, prompt: str, variant: str) -> str:
        if prompt == "boom":
            raise ValueError("prompt: the engine refused it")
        if prompt == "fragile":
            if self.fragile_fails:
                raise ValueError("engine: out of memory (injected)")
            return "fragile but fine"
        return ANSWERS.get((variant, prompt), f"{variant} does not know")

    def build(self, ui: bool = True):
        import gradio as gr
        from fastapi import FastAPI
        from fastapi.responses import JSONResponse

        app = FastAPI()

        @app.middleware("http")
        async def ingress_busy(request, call_next):  # a 503 as an ingress gives it, on any route but /health
            if self.busy > 0 and request.url.path != "/health" and request.method == "POST":
                self.busy -= 1
                self.busy_seen.append((time.monotonic(), request.url.path))
                return JSONResponse({"error": "no replica ready"}, status_code=503, headers={"Retry-After": str(self.retry_after)})
            return await call_next(request)

        @app.get("/health")
        def health():
            return {"status": "ok", "model": "fake", "adapters": ["tuned"]}

        @app.post("/v1/chat/completions")
        def chat(body: dict):
            prompt = body["messages"][-1]["content"]
            self.asked.append(prompt)
            try:
                text = self.answer(prompt, body["model"])
            except ValueError as e:
                return JSONResponse({"error": {"message": str(e)}}, status_code=400)
            return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2 * len(text.split()), "total_tokens": 0}}

        async def generate(prompt, adapter, max_new_tokens, temperature, top_p, top_k):
            self.started.append(prompt)
            if prompt == SLOW:
                try:
                    await asyncio.sleep(30)
                except asyncio.CancelledError:
                    self.cancelled.append(prompt)
                    raise
            try:
                text = self.answer(prompt, adapter)
            except ValueError as e:
                raise gr.Error(str(e)) from None
            out = ""
            for word in text.split(" "):  # streamed, as the real app does
                out = f"{out} {word}".strip()
                yield out

        if not ui:
            return app
        with gr.Blocks() as blocks:
            inputs = [gr.Textbox(), gr.Textbox(), gr.Number(), gr.Number(), gr.Number(), gr.Number()]
            gr.Button().click(generate, inputs, gr.Textbox(), api_name="generate", concurrency_limit=None)
        return gr.mount_gradio_app(app, blocks, path="/")



@contextmanager
def serving(app: "FakeApp", ui: bool = True):
    """The app on a free loopback port (`app.url`) while the block runs; `ui=False`: the FastAPI
    routes only (no Gradio)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app.build(ui), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the fake app did not start"
        time.sleep(0.05)
    app.url = f"http://127.0.0.1:{port}"
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
