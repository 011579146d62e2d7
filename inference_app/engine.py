"""The engine: base model + adapter registry + generate.

Routes never see a batch or a thread: they call ``Engine.generate(request)`` and iterate the
returned ``Generation`` (an async iterator of text deltas). v1 serializes generation on one
worker thread (``ThreadPoolExecutor(max_workers=1)``) — requests queue there in arrival order —
so a later scheduler (continuous batching) can replace ``_generate_blocking`` without
touching the routes.

Adapters are loaded side by side into one ``PeftModel`` and picked per call with PEFT's
mixed-adapter batch argument ``adapter_names=[name]`` (``"__base__"`` for the base model), so
the active adapter is never switched and a future batch can mix variants.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .errors import (
    AdapterConfigError,
    EngineError,
    ModelLoadError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
    UnknownModelError,
)
from .settings import Settings
from .streaming import AsyncTextStreamer, CancelCriteria, StopMatcher, send

log = logging.getLogger("inference_app")

BASE = "base"
PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in adapter_names
_RESERVED = {BASE, PEFT_BASE}
_DONE = object()


@dataclass(frozen=True)
class SamplingParams:
    """Decoding parameters after defaults are applied. ``temperature == 0`` means greedy."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k filtering
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]  # [{"role": ..., "content": str}, ...]
    variant: str  # "base", the base model id, or an adapter name
    sampling: SamplingParams


class State(str, enum.Enum):
    LOADING = "loading"
    OK = "ok"
    FAILED = "failed"


def check_adapters(settings: Settings) -> None:
    """Fail fast on adapters configured at start-up that cannot load; raises ``AdapterConfigError``."""
    for name, path in settings.adapters.items():
        where = f"adapter {name!r} at {path}"
        fix = f"deploy the adapter folder (`%aitk deploy --adapter PATH`) or remove {name!r} from {settings.settings_path}"
        if name in _RESERVED or name == settings.base_model_id:
            raise AdapterConfigError(f"{where}: the name {name!r} is reserved for the base model; rename the adapter folder")
        if not path.is_dir():
            raise AdapterConfigError(f"{where}: folder does not exist; {fix}")
        if not (path / "adapter_config.json").is_file():
            raise AdapterConfigError(f"{where}: no adapter_config.json in the folder (not a PEFT adapter); {fix}")


class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = State.LOADING
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self._active = 0  # generations queued or running
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")

    # ----- adapter registry -------------------------------------------------------------
    def variants(self) -> list[str]:
        return [BASE, *self.settings.adapters]

    def resolve(self, name: str) -> str:
        """The variant a model name refers to; ``UnknownModelError`` naming the choices otherwise."""
        if name in (BASE, self.settings.base_model_id):
            return BASE
        if name in self.settings.adapters:
            return name
        raise UnknownModelError(f"model {name!r} does not exist; available: {', '.join(self.variants())}")

    # ----- loading -------------------------------------------------------------------------
    def load(self) -> None:
        """Load the base model and every adapter (blocking; run it in a thread)."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.monotonic()
        base = self.settings.base_model
        device = self.settings.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # float32 on CPU (half precision is slow there); bfloat16 on GPUs that have it.
        dtype = torch.float32
        if device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        try:
            tokenizer = AutoTokenizer.from_pretrained(base)
            model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
        except Exception as e:  # noqa: BLE001 — any loader failure becomes one clear message
            hint = (
                f"the folder exists but does not hold a loadable model"
                if self.settings.base_model_is_local
                else f"it is not a folder under {self.settings.mount_root} and could not be fetched from the hub "
                "(HF_HUB_OFFLINE set, or no network); deploy the model (`%aitk deploy --model PATH`) or fix base_model"
            )
            raise ModelLoadError(f"base model {base!r} failed to load: {hint}: {type(e).__name__}: {e}") from e
        if getattr(tokenizer, "chat_template", None) is None:
            log.warning("base model %s has no chat template; prompts are the message contents joined by newlines", base)
        for i, (name, path) in enumerate(self.settings.adapters.items()):
            try:
                if i == 0:
                    from peft import PeftModel

                    model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
                else:
                    model.load_adapter(str(path), adapter_name=name)
            except Exception as e:  # noqa: BLE001
                raise ModelLoadError(
                    f"adapter {name!r} at {path} failed to load onto {base}: {type(e).__name__}: {e}; "
                    "was it trained from this base model?"
                ) from e
        model.eval()
        self.device = device
        self.tokenizer, self.model = tokenizer, model
        self.load_seconds = time.monotonic() - start
        self.state = State.OK

    async def load_async(self) -> None:
        try:
            await asyncio.to_thread(self.load)
        except Exception as e:
            self.state, self.error = State.FAILED, str(e)
            raise

    def health(self) -> dict:
        if self.state is State.OK:
            return {"status": "ok", "model": self.settings.base_model_id, "adapters": list(self.settings.adapters)}
        body = {"status": self.state.value}
        if self.error:
            body["error"] = self.error
        return body

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ----- generation ----------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Generation:
        """Check the request and queue it; iterate the result for text deltas.

        A plain method (not an async generator) so that not-ready, unknown-model, overloaded
        and too-long errors raise here, before a streaming response has sent its headers.
        """
        if self.state is not State.OK:
            raise NotReadyError("the model is still loading; retry when GET /health answers 200")
        variant = self.resolve(request.variant)
        inputs = self._encode(request.messages)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit and prompt_tokens + request.sampling.max_new_tokens > limit:
            raise PromptTooLongError(
                f"prompt has {prompt_tokens} tokens; with max_tokens {request.sampling.max_new_tokens} "
                f"that exceeds the model's context of {limit} tokens"
            )
        if self._active >= self.settings.max_concurrency:
            raise OverloadedError(f"{self._active} requests are queued or running (max_concurrency); retry shortly")
        return Generation(self, inputs, variant, request.sampling, prompt_tokens)

    def _encode(self, messages: list[dict[str, str]]):
        tok = self.tokenizer
        if getattr(tok, "chat_template", None) is not None:
            inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
        else:
            inputs = tok("\n".join(m["content"] for m in messages), return_tensors="pt")
        return inputs.to(self.device)

    def _generate_blocking(self, inputs, variant, sampling, streamer, cancel, loop, queue) -> None:
        """Runs on the worker thread; every outcome ends with ``_DONE`` on the queue."""
        import torch
        from transformers import StoppingCriteriaList

        try:
            if cancel.is_set():  # the client left while queued
                return
            kwargs = dict(
                inputs,
                max_new_tokens=sampling.max_new_tokens,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([CancelCriteria(cancel)]),
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
            if sampling.temperature == 0:
                kwargs["do_sample"] = False
            else:
                kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=sampling.top_k)
            if self.settings.adapters:
                kwargs["adapter_names"] = [PEFT_BASE if variant == BASE else variant]
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)  # global RNG is safe: one worker thread
            with torch.inference_mode():
                self.model.generate(**kwargs)
        except Exception as e:  # noqa: BLE001 — reported to the request, the server keeps running
            log.exception("generation failed")
            send(loop, queue, e)
        finally:
            send(loop, queue, _DONE)


@dataclass
class Generation:
    """One queued generation: an async iterator of text deltas; stats are set once it ends."""

    engine: Engine
    inputs: object
    variant: str
    sampling: SamplingParams
    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop" or "length" once finished
    _cancel: threading.Event = field(default_factory=threading.Event)
    _released: bool = False

    def __post_init__(self):
        self.engine._active += 1
        self._iter = self._run()

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        return await self._iter.__anext__()

    async def aclose(self) -> None:
        """Stop generating (client gone); safe to call at any time, more than once."""
        self._cancel.set()
        await self._iter.aclose()
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.engine._active -= 1

    async def _run(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        streamer = AsyncTextStreamer(self.engine.tokenizer, loop, queue)
        matcher = StopMatcher(list(self.sampling.stop))
        loop.run_in_executor(
            self.engine._executor,
            self.engine._generate_blocking,
            self.inputs, self.variant, self.sampling, streamer, self._cancel, loop, queue,
        )
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise EngineError(f"generation failed: {type(item).__name__}: {item}") from item
                self.completion_tokens = streamer.generated_tokens
                text = matcher.feed(item)
                if matcher.matched:
                    self._cancel.set()  # drain until the worker notices, without yielding more
                if text:
                    yield text
            if tail := matcher.flush():
                yield tail
            self.completion_tokens = streamer.generated_tokens
            eos = self.engine.model.generation_config.eos_token_id
            eos_ids = set(eos if isinstance(eos, list) else [eos])
            hit_limit = streamer.generated_tokens >= self.sampling.max_new_tokens
            self.finish_reason = "length" if hit_limit and streamer.last_token not in eos_ids and not matcher.matched else "stop"
        finally:
            self._cancel.set()  # a no-op on normal completion; stops the worker on disconnect
            self._release()
