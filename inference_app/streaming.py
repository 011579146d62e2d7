"""Token ids to the text a client sees.

* ``TextDeltas`` — transformers' ``TextStreamer`` decoding (whole words, no special tokens),
  fed one token id at a time on the event loop, so the scheduler thread only samples ids.
* ``StopMatcher`` — OpenAI ``stop`` sequences: cuts the text before the first match and holds
  back a tail that could still become one, so a streamed client never sees part of a stop string.
"""

from __future__ import annotations

import torch
from transformers import TextStreamer


class TextDeltas(TextStreamer):
    """Token ids in, text deltas out: ``TextStreamer``'s whole-word decoding without a console.

    ``push(token)`` returns the text that became final (possibly ""), ``finish()`` the rest.
    """

    def __init__(self, tokenizer):
        super().__init__(tokenizer, skip_prompt=False, skip_special_tokens=True)
        self._out: list[str] = []

    def on_finalized_text(self, text: str, stream_end: bool = False):
        if text:
            self._out.append(text)

    def _take(self) -> str:
        out, self._out = "".join(self._out), []
        return out

    def push(self, token: int) -> str:
        self.put(torch.tensor([token]))
        return self._take()

    def finish(self) -> str:
        self.end()
        return self._take()


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
