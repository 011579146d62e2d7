"""Glue between a generate() call in a worker thread and the event loop.

* ``AsyncTextStreamer`` — transformers' ``TextStreamer`` decoding (whole words, no special
  tokens) that hands each text delta to an ``asyncio.Queue`` and counts generated tokens.
  It is ``TextIteratorStreamer`` with an asyncio queue instead of a blocking one, so the
  event loop awaits deltas rather than parking a thread on ``queue.get``.
* ``CancelCriteria`` — a stopping criteria that ends generation when a flag is set (client
  went away, a stop sequence matched).
* ``StopMatcher`` — OpenAI ``stop`` sequences: cuts the text before the first match and holds
  back a tail that could still become one, so a streamed client never sees part of a stop string.
"""

from __future__ import annotations

import asyncio
import threading

import torch
from transformers import StoppingCriteria, TextStreamer


class AsyncTextStreamer(TextStreamer):
    def __init__(self, tokenizer, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._loop = loop
        self._queue = queue
        self.generated_tokens = 0
        self.last_token: int | None = None

    def put(self, value):
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            flat = value.reshape(-1)
            self.generated_tokens += flat.numel()
            self.last_token = int(flat[-1])
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            send(self._loop, self._queue, text)


def send(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, item) -> None:
    """Put ``item`` on ``queue`` from a worker thread; a closed loop (shutdown) drops it."""
    try:
        loop.call_soon_threadsafe(queue.put_nowait, item)
    except RuntimeError:
        pass


class CancelCriteria(StoppingCriteria):
    def __init__(self, flag: threading.Event):
        self.flag = flag

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device)


class StopMatcher:
    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._pending = ""
        self.matched = False

    def feed(self, delta: str) -> str:
        """Return the text that is safe to emit now; sets ``matched`` when a stop string appears."""
        if not self.stops:
            return delta
        if self.matched:
            return ""
        self._pending += delta
        cut = min((i for i in (self._pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self._pending, self.matched = self._pending[:cut], "", True
            return out
        keep = self._partial_len(self._pending)
        out, self._pending = self._pending[: len(self._pending) - keep], self._pending[len(self._pending) - keep :]
        return out

    def _partial_len(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
        for n in range(min(self._hold, len(text)), 0, -1):
            if any(s.startswith(text[-n:]) for s in self.stops):
                return n
        return 0

    def flush(self) -> str:
        """The held-back tail, at the end of generation (it never became a stop string)."""
        out, self._pending = ("" if self.matched else self._pending), ""
        return out
