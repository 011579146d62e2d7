"""The transformers + PEFT engine: base model + adapter registry + continuous batching.

Routes never see a batch or a thread: they call ``generate(request)`` and iterate the
returned ``Generation`` (an async iterator of text deltas; ``interface.GenerationStream``). Behind it, ``batching.BatchScheduler``
runs continuous batching on one thread: a request joins the running batch at the next decode
step and leaves it when it finishes or its client goes away (issue 5).

Adapters are loaded side by side into one ``PeftModel``, then stacked per layer by ``lora.MultiLora``
(one masked matmul pair per layer applies each row's adapter; issue 12), so the active adapter is
never switched and one batch mixes variants. Adapters it cannot stack (LoRA on embeddings ...) keep PEFT's own
mixed-batch argument ``adapter_names`` (``"__base__"`` for the base model).

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
import os
import threading
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
    UnknownModelError,
)
from .interface import BASE, AdapterRegistry, GenerationRequest, InferenceEngine, SamplingParams, State
from .packed import pack_linears
from .adapter_set import LoadedAdapter, adapter_version, build, load_adapter
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
        self._max_token_chars = 1
        self._templated = False
        # live adapter changes (issue 17): the plain base model every adapter set is built on, the loaded adapter
        # versions under their internal names, public name -> internal name, and the base layers' packed twins
        self._skeleton = None
        self._loaded: dict[str, LoadedAdapter] = {}
        self._internal: dict[str, str] = {}
        self._packed: dict = {}
        self._prepared: dict = {}  # internal name -> the adapter's prepared stacked-LoRA weights (adapter_set.build)
        self._serial = 0
        self._apply_lock = threading.Lock()
        self.settings_hash = settings.settings_hash
        self.apply_error: dict | None = None  # the last live change refused: its settings hash and why

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
        model.eval()
        if self.registry.merged:
            model = self._merged(model)
            row_adapters = None
            pack_linears(model)
        else:
            # the plain base model stays as it is: every adapter set is built on a shell of it (adapter_set.py)
            self._skeleton = model
            loaded = self._load_adapters(self.settings, {})
            model, row_adapters = build(model, loaded, self._packed, self._prepared)
            self._loaded, self._internal = loaded, {a.name: internal for internal, a in loaded.items()}
        limits = [n for n in (self.settings.max_model_len, getattr(model.config, "max_position_embeddings", None)) if n]
        self.context_window = min(limits) if limits else None
        eos = model.generation_config.eos_token_id
        self._eos_ids = {e for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(self._eos_ids), 0)
        self.device = device
        # The most characters one token can stand for (byte-level BPE: a token's string has one character per
        # byte): a prompt of more than context_window times this many characters cannot fit, whatever it says.
        self._max_token_chars = max(map(len, tokenizer.get_vocab()), default=1)
        self._templated = getattr(tokenizer, "chat_template", None) is not None
        self.tokenizer, self.model = tokenizer, model
        self.scheduler = BatchScheduler(
            model, eos_ids=self._eos_ids, pad_id=pad,
            max_batch_size=self.settings.max_batch_size, row_adapters=row_adapters, prefix_ids=self._template_prefix(),
        )
        if self._skeleton is not None:
            self.scheduler.adapters = set(self._loaded)
        self.load_seconds = time.monotonic() - start
        self.state = State.OK

    def _merged(self, model):
        """The one adapter folded into the base weights (``merge_adapter``): W + scale * B @ A, once."""
        from peft import PeftModel

        name, path = next(iter(self.settings.adapters.items()))
        try:
            model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
        except Exception as e:  # noqa: BLE001
            raise ModelLoadError(f"adapter {name!r} at {path} failed to load onto {self.settings.base_model}: "
                                 f"{type(e).__name__}: {e}; was it trained from this base model?") from e
        log.info("adapter %r merged into the base weights (merge_adapter)", name)
        return model.merge_and_unload().eval()

    def _load_adapters(self, settings: Settings, current: dict[str, LoadedAdapter]) -> dict[str, LoadedAdapter]:
        """``settings``' adapters under internal names: a version already loaded keeps its own, a new or changed
        one is read and checked (``AdapterConfigError`` naming it)."""
        by_version = {(a.name, a.version): internal for internal, a in current.items()}
        loaded = {}
        for name, path in settings.adapters.items():
            if problem := reserved_name_problem(name, settings.base_model_id):
                raise AdapterConfigError(f"adapter {name!r} at {path}: {problem}; rename the adapter folder")
            version = adapter_version(path, settings.adapter_versions.get(name))
            if (internal := by_version.get((name, version))) is not None:
                loaded[internal] = current[internal]
                continue
            internal, self._serial = f"a{self._serial}", self._serial + 1
            loaded[internal] = load_adapter(name, path, version, served_id=settings.base_model_id,
                                            served=settings.base_model)
        return loaded

    def apply_adapters(self, settings: Settings) -> None:
        """Serve ``settings``' adapters (an adapter-only change; blocking, run it in a thread): every new or
        changed adapter is checked and the new set built beside the running one, then swapped in between two
        decode steps once no running request uses an adapter version it drops. The base model is not
        reloaded. On ``AdapterConfigError`` nothing served changes."""
        with self._apply_lock:
            loaded = self._load_adapters(settings, self._loaded)
            if loaded.keys() == self._loaded.keys():
                model, row_adapters = self.model, self.scheduler.row_adapters
                swapped = None
            else:
                model, row_adapters = build(self._skeleton, loaded, self._packed, self._prepared)
                swapped = self.scheduler.replace_model(model, row_adapters, set(loaded))
            # from here new requests go to the new versions (they wait in the queue for the swap)
            self._internal = {a.name: internal for internal, a in loaded.items()}
            self.registry = AdapterRegistry(settings)
            self.settings = settings
            if swapped is not None:
                swapped.result()
            self.model, self._loaded = model, loaded
            self.settings_hash, self.apply_error = settings.settings_hash, None

    async def load_async(self) -> None:
        try:
            await asyncio.to_thread(self.load)
        except Exception as e:
            self.state, self.error = State.FAILED, str(e)
            raise

    def health(self) -> dict:
        if self.state is State.OK:
            body = {"status": "ok", "model": self.settings.base_model_id, **self.registry.health_fields()}
            # which settings are served (deploy waits for its own hash), and which replica says so (issue 17)
            body["settings_hash"] = self.settings_hash
            if replica := os.environ.get("CONTAINER_APP_REPLICA_NAME"):
                body["replica"] = replica
            if self.apply_error:
                body["apply_error"] = self.apply_error
            return body
        body = {"status": self.state.value}
        if self.error:
            body["error"] = self.error
        return body

    def shutdown(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown()

    # ----- generation ----------------------------------------------------------------------
    async def generate(self, request: GenerationRequest) -> Generation:
        """Check the request and queue it; iterate the result for text deltas.

        Not-ready, unknown-model, overloaded and too-long errors raise here, before a streaming
        response has sent its headers. The slot is taken before the prompt is tokenized (so the
        bound covers tokenizing too), and tokenizing runs in a worker thread: a long prompt must
        not stall the event loop, which answers /health and /live (issue 12).
        ``max_new_tokens`` is clamped to what the context window leaves after the prompt.
        """
        if self.state is not State.OK:
            raise NotReadyError("the model is still loading; retry when GET /health answers 200")
        variant = self.resolve(request.variant)
        if self._active >= self.settings.max_concurrency:  # before tokenizing: a refusal costs next to nothing
            raise OverloadedError(f"server busy: {self._active} requests are queued or running (max_concurrency); "
                                  "retry shortly")
        self._active += 1
        started = time.monotonic()
        admitted = False
        try:
            inputs = await asyncio.to_thread(self._encode, request.messages)
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
                    sampling = dataclasses.replace(
                        sampling, max_new_tokens=window - prompt_tokens,
                        limit_note=f"max_tokens was lowered to {window - prompt_tokens}, what the context window of "
                                   f"{window} tokens leaves after the prompt",
                    )
            gen = Generation(self, inputs, variant, sampling, prompt_tokens, deadline=started + self.settings.max_request_seconds)
            admitted = True
            return gen
        finally:
            if not admitted:  # refused, failed or cancelled while tokenizing: the slot is free again
                self._active -= 1

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The prompt as text: the chat template's rendering, or the contents joined by newlines."""
        if self._templated:
            return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return "\n".join(m["content"] for m in messages)

    def _tokenize(self, text: str):
        # The chat template's text already holds its special tokens (apply_chat_template does the same).
        return self.tokenizer(text, add_special_tokens=not self._templated, return_tensors="pt")

    def _encode(self, messages: list[dict[str, str]]):
        """The prompt's token ids (worker thread). Its length in characters is checked first: a prompt
        longer than the context window could hold even at the tokenizer's longest token is refused
        without tokenizing it, as tokenizing megabytes takes seconds and gigabytes (issue 12)."""
        text = self._render(messages)
        if (window := self.context_window) is not None and len(text) > window * self._max_token_chars:
            raise PromptTooLongError(
                f"messages: the prompt is {len(text)} characters long, more than the context window of {window} tokens "
                f"can hold (at most {self._max_token_chars} characters per token with this tokenizer); shorten the messages"
            )
        return self._tokenize(text).to(self.device)

    def _template_prefix(self) -> list[int]:
        """The tokens every one-message prompt starts with (the template's default system prompt and the
        user turn's header): what two prompts that differ from their first character share. The
        scheduler computes their keys and values once per variant; a prompt that does not start with
        exactly these ids (its own system message, say) is prefilled whole."""
        if not self._templated:
            return []
        a, b = (self._tokenize(self._render([{"role": "user", "content": c}]))["input_ids"][0].tolist() for c in ("A", "1 2"))
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return a[:n]

    def _internal_name(self, variant: str) -> str:
        try:
            return self._internal[variant]
        except KeyError:  # removed by a live change after the request was admitted
            raise UnknownModelError(f"model {variant!r} was removed from the server while the request waited; "
                                    f"available: {', '.join(self.variants())}") from None

    def _sequence(self, gen: Generation, loop, queue) -> Sequence:
        sp = gen.sampling
        return Sequence(
            prompt_ids=gen.inputs["input_ids"][0].tolist(),
            adapter=PEFT_BASE if gen.variant == BASE or self.registry.merged else self._internal_name(gen.variant),
            max_new_tokens=sp.max_new_tokens, temperature=sp.temperature, top_p=sp.top_p, top_k=sp.top_k,
            seed=sp.seed, ignore_eos=sp.ignore_eos, loop=loop, queue=queue, deadline=gen.deadline,
        )


@dataclass
class Generation:
    """One admitted generation: an async iterator of text deltas; stats are set once it ends.

    It holds one of the engine's ``max_concurrency`` slots (taken by ``generate``) until it ends or
    is closed. It is queued in the scheduler when iteration starts; closing it (or abandoning the
    iteration) cancels it, and the scheduler drops its row at the next step.
    """

    engine: TransformersEngine
    inputs: object
    variant: str
    sampling: SamplingParams
    prompt_tokens: int
    deadline: float  # time.monotonic() past which the scheduler ends it (max_request_seconds)
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop" or "length" once finished
    note: str | None = None  # why a server limit ended it, when one did
    _seq: Sequence | None = None
    _released: bool = False

    def __post_init__(self):
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

    def _limit_note(self, reason: str | None) -> str | None:
        if reason == "time":
            limit = self.engine.settings.max_request_seconds
            if not self.completion_tokens:  # it never left the queue: the server was busy, not the request long
                return (f"not started: the request waited in the queue until the server's time limit of {limit:g} s "
                        "per request (max_request_seconds); the server is busy, retry later")
            return (f"stopped after {self.completion_tokens} tokens: the server's time limit of {limit:g} s per request "
                    "(max_request_seconds) was reached; ask for fewer tokens")
        if reason == "length" and self.sampling.limit_note and self.completion_tokens >= self.sampling.max_new_tokens:
            return f"stopped after {self.completion_tokens} tokens: {self.sampling.limit_note}"
        return None

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
            self.finish_reason = "stop" if matcher.matched or item.reason not in ("length", "time") else "length"
            self.note = self._limit_note(item.reason)
        finally:
            self._cancel()  # a no-op on normal completion; drops the row on disconnect
            self._release()


__all__ = ["BASE", "Generation", "GenerationRequest", "InferenceEngine", "SamplingParams", "State",
           "TransformersEngine", "check_adapters"]
