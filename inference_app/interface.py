"""The engine seam: what the routes and the UI need from an engine, and nothing more.

An engine (``engine.TransformersEngine`` today; a vLLM engine with its LoRA support on a GPU
later, see ``factory.py``) provides:

* ``await generate(request)`` — checks the request (not ready, unknown model, prompt too long,
  overloaded: raised here, before a streaming response sends its headers) and returns a
  ``GenerationStream``: an async iterator of text deltas that also reports token counts, the
  finish reason and a note when a server limit ended it, and stops generating when closed (the
  client went away). It must not block the event loop (tokenizing runs in a thread);
* ``health()`` — the ``GET /health`` body; ``status == "ok"`` once requests can be served;
* the adapter registry — ``variants()`` and ``resolve(name)``, shared by every engine through
  ``AdapterRegistry`` so that model names mean the same whichever engine serves them;
* ``load_async()`` (start-up, in the background) and ``shutdown()``.

Requests are engine-neutral: chat messages, a variant name and ``SamplingParams``.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .contract import BASE, served_variants
from .errors import UnknownModelError, VariantNotServedError
from .settings import Settings


@dataclass(frozen=True)
class SamplingParams:
    """Decoding parameters after defaults are applied. ``temperature == 0`` means greedy."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k filtering
    seed: int | None = None
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False  # keep going past EOS up to max_new_tokens (benchmarks; vLLM has it too)
    limit_note: str | None = None  # set when a server limit lowered max_new_tokens: said if the answer reaches it


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict[str, str]]  # [{"role": ..., "content": str}, ...]
    variant: str  # "base", the base model id, or an adapter name
    sampling: SamplingParams


class State(str, enum.Enum):
    LOADING = "loading"
    OK = "ok"
    FAILED = "failed"


@runtime_checkable
class GenerationStream(Protocol):
    """One admitted generation. Iterate it for text deltas; the counts are final once it ends."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None  # "stop" or "length" once finished
    note: str | None  # once finished: why a server limit (time, max_tokens cap, context window) ended it, if one did

    def __aiter__(self) -> AsyncIterator[str]: ...
    async def __anext__(self) -> str: ...
    async def aclose(self) -> None:
        """Stop generating and free the slot; safe to call at any time, more than once."""


@runtime_checkable
class InferenceEngine(Protocol):
    settings: Settings
    registry: AdapterRegistry
    load_seconds: float | None
    context_window: int | None  # prompt + answer tokens a request may use, once loaded

    def variants(self) -> list[str]: ...
    def resolve(self, name: str) -> str: ...
    async def load_async(self) -> None: ...
    def health(self) -> dict: ...
    async def generate(self, request: GenerationRequest) -> GenerationStream: ...
    def shutdown(self) -> None: ...


class AdapterRegistry:
    """Model names → variants: ``base`` (alias: the base model id) and one name per adapter.

    With ``merge_adapter`` the single adapter is folded into the base weights, so only the
    adapter is served; asking for ``base`` is a 400 that names the setting.
    """

    def __init__(self, settings: Settings):
        self.base_id = settings.base_model_id
        self.adapters = list(settings.adapters)
        self.merged = self.adapters[0] if settings.merge_adapter and self.adapters else None
        self._settings_path = settings.settings_path

    def variants(self) -> list[str]:
        return served_variants(self.adapters, self.merged is not None)

    def resolve(self, name: str) -> str:
        """The variant a model name refers to; an error naming ``model`` and the choices otherwise."""
        if name in (BASE, self.base_id):
            if self.merged:
                raise VariantNotServedError(
                    f"model {name!r}: the base model is not served here, because adapter {self.merged!r} is merged "
                    f"into its weights (merge_adapter: true in {self._settings_path}); ask for model {self.merged!r}, "
                    "or set merge_adapter to false to serve the base model and its adapters side by side"
                )
            return BASE
        if name in self.adapters:
            return name
        raise UnknownModelError(f"model {name!r} does not exist; available: {', '.join(self.variants())}")

    def health_fields(self) -> dict:
        fields = {"adapters": list(self.adapters), "variants": self.variants()}
        if self.merged:
            fields["merged_adapter"] = self.merged
        return fields
