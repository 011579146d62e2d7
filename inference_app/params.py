"""The one place API fields become generation parameters and defaults are applied.

Defaults: ``max_tokens`` = settings ``max_new_tokens``, clamped to ``max_new_tokens_limit`` (the
engine clamps it again to what the context window leaves after the prompt: ``finish_reason``
"length", ``usage`` and a ``note`` tell the client when a clamped answer reaches it); ``temperature`` = 0, i.e. greedy
decoding (unlike OpenAI's 1) so that evaluation runs are reproducible unless sampling is asked
for; ``top_p`` = 1 and ``top_k`` = 0 (both off).
"""

from __future__ import annotations

from .interface import SamplingParams
from .protocol import SamplingFields
from .settings import Settings


def to_sampling(fields: SamplingFields, settings: Settings) -> SamplingParams:
    # OpenAI deprecated max_tokens in favour of max_completion_tokens; accept both, prefer the new one.
    max_new = fields.max_completion_tokens or fields.max_tokens or settings.max_new_tokens
    limit = settings.max_new_tokens_limit
    return SamplingParams(
        max_new_tokens=min(max_new, limit),
        limit_note=f"max_tokens {max_new} was lowered to {limit}, the server's limit (max_new_tokens_limit)" if max_new > limit else None,
        temperature=0.0 if fields.temperature is None else fields.temperature,
        top_p=1.0 if fields.top_p is None else fields.top_p,
        top_k=fields.top_k or 0,
        seed=fields.seed,
        stop=tuple(fields.stop or ()),
        ignore_eos=bool(fields.ignore_eos),
    )
