"""The transformers + PEFT engine: base model + adapter registry + continuous batching.

Routes never see a batch or a thread: they call ``generate(request)`` and iterate the
returned ``Generation`` (an async iterator of text deltas; ``interface.GenerationStream``). Behind it, ``batching.BatchScheduler``
runs continuous batching on one thread: a request joins the running batch at the next decode
step and leaves it when it finishes or its client goes away (issue 5).

Adapters are loaded side by side into one ``PeftModel`` and picked per row with PEFT's
mixed-adapter batch argument ``adapter_names`` (``"__base__"`` for the base model), so the
active adapter is never switched and one batch mixes variants.

With ``merge_adapter`` the single adapter is merged into the base weights at load
(``merge_and_unload``): no LoRA matmuls per step, and only that adapter is served.

The seam for other engines (a vLLM engine with its LoRA support on a GPU, say) is
``interface.InferenceEngine``: the routes and the UI use only what it lists; ``factory.py``
chooses the engine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .batching import PEFT_BASE, BatchScheduler, Finished, Sequence
from .contract import reserved_name_problem
from .errors import (
    AdapterConfigError,
    EngineError,
    InvalidRequestError,
    ModelLoadError,
    NotReadyError,
    OverloadedError,
    PromptTooLongError,
)
from .interface import BASE, AdapterRegistry, GenerationRequest, InferenceEngine, SamplingParams, State
from .settings import Settings
from .streaming import StopMatcher, TextDeltas

log = logging.getLogger("inference_app")


def check_adapters(settings: Settings) -> None:
    """Fail fast on adapters configured at start-up that cannot load; raises ``AdapterConfigError``."""
    for name, path in settings.adapters.items():
        where = f"adapter {name!r} at {path}"
        fix = f"deploy the adapter folder (`%aitk deploy --adapter PATH`) or remove {name!r} from {settings.settings_path}"
        if problem := reserved_name_problem(name, settings.base_model_id):
            raise AdapterConfigError(f"{where}: {problem}; rename the adapter folder")
        if not path.is_dir():
            raise AdapterConfigError(f"{where}: folder does not exist; {fix}")
        if not (path / "adapter_config.json").is_file():
            raise AdapterConfigError(f"{where}: no adapter_config.json in the folder (not a PEFT adapter); {fix}")


class TransformersEngine:
    """The transformers + PEFT engine (CPU or one GPU) with continuous batching."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.registry = AdapterRegistry(settings)
        self.context_window: int | None = None
        self.state = State.LOADING
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.model = None
        self.tokenizer = None
        self.device = "cpu"
        self._active = 0  # generations queued or running
        self.scheduler: BatchScheduler | None = None
        self._eos_ids: set[int] = set()

    # ----- adapter registry -------------------------------------------------------------
    def variants(self) -> list[str]:
        return self.registry.variants()

    def resolve(self, name: str) -> str:
        return self.registry.resolve(name)

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
                "the folder exists but does not hold a loadable model"
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
        if self.registry.merged:
            model = model.merge_and_unload()  # W + scale * B @ A, once; the PEFT wrapper is gone
            log.info("adapter %r merged into the base weights (merge_adapter)", self.registry.merged)
        model.eval()
        limits = [n for n in (self.settings.max_model_len, getattr(model.config, "max_position_embeddings", None)) if n]
        self.context_window = min(limits) if limits else None
        eos = model.generation_config.eos_token_id
        self._eos_ids = {e for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self._eos_ids), 0)
        self.device = device
        self.tokenizer, self.model = tokenizer, model
        self.scheduler = BatchScheduler(
            model, eos_ids=self._eos_ids, pad_id=pad,
            max_batch_size=self.settings.max_batch_size,
            use_adapters=bool(self.settings.adapters) and not self.registry.merged,
        )
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
            return {"status": "ok", "model": self.settings.base_model_id, **self.registry.health_fields()}
        body = {"status": self.state.value}
        if self.error:
            body["error"] = self.error
        return body

    def shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()

    # ----- generation ----------------------------------------------------------------------
    def generate(self, request: GenerationRequest) -> Generation:
        """Check the request and queue it; iterate the result for text deltas.

        A plain method (not an async generator) so that not-ready, unknown-model, overloaded
        and too-long errors raise here, before a streaming response has sent its headers.
        ``max_new_tokens`` is clamped to what the context window leaves after the prompt.
        """
        if self.state is not State.OK:
            raise NotReadyError("the model is still loading; retry when GET /health answers 200")
        variant = self.resolve(request.variant)
        if self._active >= self.settings.max_concurrency:  # before tokenizing: a refusal costs next to nothing
            raise OverloadedError(f"{self._active} requests are queued or running (max_concurrency); retry shortly")
        inputs = self._encode(request.messages)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        if prompt_tokens == 0:
            raise InvalidRequestError("messages", "messages: the prompt is empty; give at least one message with content")
        sampling = request.sampling
        if (window := self.context_window) is not None:
            if prompt_tokens >= window:
                raise PromptTooLongError(
                    f"messages: the prompt is {prompt_tokens} tokens long and the context window is {window} tokens "
                    "(prompt and answer together), which leaves no room for an answer; shorten the messages"
                )
            if sampling.max_new_tokens > window - prompt_tokens:
                sampling = dataclasses.replace(sampling, max_new_tokens=window - prompt_tokens)
        return Generation(self, inputs, variant, sampling, prompt_tokens)

    def _encode(self, messages: list[dict[str, str]]):
        tok = self.tokenizer
        if getattr(tok, "chat_template", None) is not None:
            inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
        else:
            inputs = tok("\n".join(m["content"] for m in messages), return_tensors="pt")
        return inputs.to(self.device)

    def _sequence(self, gen: Generation, loop, queue) -> Sequence:
        sp = gen.sampling
        return Sequence(
            prompt_ids=gen.inputs["input_ids"][0].tolist(),
            adapter=PEFT_BASE if gen.variant == BASE or self.registry.merged else gen.variant,
            max_new_tokens=sp.max_new_tokens, temperature=sp.temperature, top_p=sp.top_p, top_k=sp.top_k,
            seed=sp.seed, ignore_eos=sp.ignore_eos, loop=loop, queue=queue,
        )


@dataclass
class Generation:
    """One admitted generation: an async iterator of text deltas; stats are set once it ends.

    It is queued in the scheduler when iteration starts; closing it (or abandoning the
    iteration) cancels it, and the scheduler drops its row at the next step.
    """

    engine: TransformersEngine
    inputs: object
    variant: str
    sampling: SamplingParams
    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop" or "length" once finished
    _seq: Sequence | None = None
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
        self._cancel()
        await self._iter.aclose()
        self._release()

    def _cancel(self) -> None:
        if self._seq is not None and not self._seq.cancel.is_set():
            self._seq.cancel.set()
            self.engine.scheduler.wake()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self.engine._active -= 1

    async def _run(self) -> AsyncIterator[str]:
        queue: asyncio.Queue = asyncio.Queue()
        self._seq = self.engine._sequence(self, asyncio.get_running_loop(), queue)
        text = TextDeltas(self.engine.tokenizer)
        matcher = StopMatcher(list(self.sampling.stop))
        self.engine.scheduler.submit(self._seq)
        try:
            while not isinstance(item := await queue.get(), Finished):
                if isinstance(item, Exception):
                    raise EngineError(f"generation failed: {type(item).__name__}: {item}") from item
                self.completion_tokens += 1
                if matcher.matched:
                    continue  # drain until the scheduler drops the row, without yielding more
                out = matcher.feed(text.push(item))
                if matcher.matched:
                    self._cancel()
                if out:
                    yield out
            if not matcher.matched and (out := matcher.feed(text.finish()) + matcher.flush()):
                yield out
            self.completion_tokens = item.completion_tokens
            self.finish_reason = "stop" if matcher.matched or item.reason != "length" else "length"
        finally:
            self._cancel()  # a no-op on normal completion; drops the row on disconnect
            self._release()


__all__ = ["BASE", "Generation", "GenerationRequest", "InferenceEngine", "SamplingParams", "State",
           "TransformersEngine", "check_adapters"]
