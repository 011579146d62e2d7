"""Continuous batching on one scheduler thread: every decode step runs all live sequences at once.

Why hand-written (issue 5, DESIGN.md "Facts"): transformers' own continuous-batching manager
cannot run a different LoRA adapter per row, and PEFT's ``adapter_names`` can — in ``forward``
as well as in ``generate``. So the loop here calls the model's ``forward`` directly:

* One batched KV cache (a ``DynamicCache``) with a 0/1 column mask per row: dead columns (padding)
  are masked out by the attention mask. Positions (RoPE) are per row (the row's live columns so
  far), so a row's numbers do not depend on who else is in the batch.
* A request **joins at the next step**: new arrivals are prefilled together (their own padded
  mini-batch), then their cache is left-padded to the running length (or the running cache to
  theirs) and concatenated along the batch axis. Finished or cancelled rows are dropped with
  ``index_select``; leading columns that are dead in every row are trimmed, so memory follows
  the live requests, not the history.
* **The chat template's prefix is computed once per variant** (issue 12): every one-message prompt
  starts with the same tokens (the template's default system prompt and the user turn's header;
  24 of the demo model's ~38 prompt tokens). Its keys and values are kept per variant and copied
  in front of each new row, so a prefill runs only the rest of the prompt. A row that joins that
  way has padding between the prefix and its own tokens (hence the mask rather than a count).
* ``row_adapters`` gives each row its variant before every forward (``lora.MultiLora``: stacked
  adapters, one masked matmul pair per layer; or PEFT's ``adapter_names``); admission takes the
  waiting requests round-robin across variants, so one adapter's backlog cannot starve another's.
* Sampling is per row (greedy, or temperature / top-k / top-p with the row's own
  ``torch.Generator``), so a seed reproduces a text whatever else is batched with it.

Only the token ids cross to the event loop (``call_soon_threadsafe``); detokenizing happens
there, off the scheduler's critical path. Full-attention decoder caches only (Llama, Qwen,
Phi, SmolLM ...); a sliding-window model would need its own cache surgery.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

log = logging.getLogger("inference_app")

PEFT_BASE = "__base__"  # PEFT's name for "no adapter" in adapter_names
ADMISSION_WINDOW_S = 0.025  # how long an idle scheduler waits for a burst to arrive


@dataclass(frozen=True)
class Finished:
    """The last item a sequence sends: why it ended and how many tokens it made."""

    reason: str | None  # "stop" (EOS), "length" (max_new_tokens), "time" (deadline), None (cancelled)
    completion_tokens: int


@dataclass(eq=False)
class Sequence:
    """One request's row: its prompt, decoding parameters and where its tokens go."""

    prompt_ids: list[int]
    adapter: str  # PEFT adapter name, or PEFT_BASE
    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int | None
    ignore_eos: bool
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue  # receives int token ids, then one Finished (or an Exception)
    deadline: float = math.inf  # time.monotonic() at which the row ends, finished or not
    cancel: threading.Event = field(default_factory=threading.Event)
    generated: int = 0
    next_token: int | None = None  # sampled, not yet fed through the model
    generator: torch.Generator | None = None

    def __post_init__(self):
        if self.temperature > 0:
            self.generator = torch.Generator()
            if self.seed is None:
                self.generator.seed()
            else:
                self.generator.manual_seed(self.seed % 2**64)  # any int the API accepts is a valid seed

    def send(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the event loop closed (shutdown): nobody is listening
            pass


class BatchScheduler:
    """Owns the model's forward passes. ``submit`` from any thread; results arrive on each queue."""

    def __init__(self, model, *, eos_ids: set[int], pad_id: int, max_batch_size: int,
                 row_adapters: Callable[[list[str]], dict] | None = None, prefix_ids: list[int] = ()):
        """``row_adapters``: called with each row's adapter before a forward; returns extra forward
        arguments. ``None`` when the model serves one variant (no adapters, or one merged).
        ``prefix_ids``: tokens most prompts start with, whose keys and values are computed once."""
        self.model = model
        self.eos_ids = eos_ids
        self.pad_id = pad_id
        self.max_batch_size = max_batch_size
        self.row_adapters = row_adapters
        self.prefix_ids = list(prefix_ids)
        self._prefix_kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}  # adapter -> per layer
        self.device = next(model.parameters()).device
        self._waiting: dict[str, collections.deque[Sequence]] = {}
        self._rotation: collections.deque[str] = collections.deque()  # variants, in round-robin order
        self._cond = threading.Condition()
        self._stopping = False
        # Running batch (scheduler thread only).
        self._rows: list[Sequence] = []
        self._mask: torch.Tensor | None = None  # [rows, columns]: 1 where a cache column is live
        self._cache = None
        self.steps = 0  # decode steps run, for tests and stats
        self.peak_batch = 0
        # live adapter changes (issue 17): the adapters the model holds (None: whatever rows ask) and a model
        # waiting to replace it: (model, row_adapters, adapters, future)
        self.adapters: set[str] | None = None
        self._replacement: tuple | None = None
        self._thread = threading.Thread(target=self._run, name="batch-scheduler", daemon=True)
        self._thread.start()

    # ----- any thread -----------------------------------------------------------------------
    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if seq.adapter not in self._waiting:
                self._waiting[seq.adapter] = collections.deque()
                self._rotation.append(seq.adapter)
            self._waiting[seq.adapter].append(seq)
            self._cond.notify()

    def wake(self) -> None:
        """Look at cancel flags now (a waiting request may have gone away)."""
        with self._cond:
            self._cond.notify()

    def replace_model(self, model, row_adapters, adapters: set[str]) -> concurrent.futures.Future:
        """Serve ``model`` (its ``row_adapters``, holding ``adapters``) from the next step boundary at which no
        running or waiting request uses an adapter it drops; those finish on the weights they started with.
        Requests for an adapter only the new model holds wait in the queue until then. The future is done
        once the new model serves."""
        done: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._replacement is not None:  # a newer set supersedes one not yet swapped in
                self._replacement[3].set_result(False)
            self._replacement = (model, row_adapters, set(adapters), done)
            self._cond.notify()
        return done

    def _servable(self, adapter: str) -> bool:
        return self.adapters is None or adapter == PEFT_BASE or adapter in self.adapters

    def _swap_model(self) -> None:
        """Under the lock, between steps: swap in the replacement model once nothing uses what it drops."""
        if self._replacement is None:
            return
        model, row_adapters, adapters, done = self._replacement
        dropped = (self.adapters if self.adapters is not None else {s.adapter for s in self._rows}) - adapters - {PEFT_BASE}
        busy = {s.adapter for s in self._rows} | {a for a, q in self._waiting.items() if q}
        if busy & dropped:
            return
        self.model, self.row_adapters, self.adapters = model, row_adapters, adapters
        for adapter in list(self._prefix_kv):
            if adapter not in adapters and adapter != PEFT_BASE:
                del self._prefix_kv[adapter]
        for adapter in [a for a, q in self._waiting.items() if not q and not self._servable(a)]:
            del self._waiting[adapter]
            self._rotation.remove(adapter)
        self._replacement = None
        done.set_result(True)

    @property
    def running(self) -> int:
        return len(self._rows)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop after the current step; running requests end as cancelled."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # ----- scheduler thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                self._drop_cancelled_waiting()
                self._swap_model()
                while not self._stopping and not self._rows and not self._admissible():
                    self._cond.wait()
                    self._drop_cancelled_waiting()
                    self._swap_model()
                if self._stopping:
                    break
                if not self._rows:
                    # Idle: requests that arrive together (a client's burst) are usually a few ms
                    # apart; one short window lets them share a single prefill instead of joining
                    # one by one, each join padding the shared cache.
                    deadline = time.monotonic() + ADMISSION_WINDOW_S
                    while self.waiting < self.max_batch_size and (left := deadline - time.monotonic()) > 0:
                        self._cond.wait(left)
                admitted = self._admit(self.max_batch_size - len(self._rows))
            try:
                with torch.inference_mode():
                    if admitted:
                        self._prefill(admitted)
                    self._drop_finished()
                    if self._rows:
                        self._decode_step()
                        self._drop_finished()
            except Exception as e:  # noqa: BLE001 — every live request learns of it; the server keeps running
                log.exception("batched step failed; failing %d request(s)", len(self._rows) + len(admitted))
                for seq in {*self._rows, *admitted}:
                    seq.send(e)
                self._rows, self._mask, self._cache = [], None, None
        for seq in self._rows:
            seq.send(Finished(None, seq.generated))

    def _drop_cancelled_waiting(self) -> None:
        """Waiting requests that were cancelled or ran out of time leave the queue unstarted."""
        now = time.monotonic()
        for adapter, q in self._waiting.items():
            kept = [s for s in q if not s.cancel.is_set() and s.deadline > now]
            if len(kept) != len(q):
                for s in q:
                    if s not in kept:
                        s.send(Finished(None if s.cancel.is_set() else "time", 0))
                self._waiting[adapter] = collections.deque(kept)

    def _admissible(self) -> int:
        """Waiting requests the model serves now (one for an adapter being swapped in waits for the swap)."""
        return sum(len(q) for a, q in self._waiting.items() if self._servable(a))

    def _admit(self, slots: int) -> list[Sequence]:
        """Up to ``slots`` waiting requests, one per variant in turn (fair across adapters)."""
        admitted: list[Sequence] = []
        while slots > 0 and self._admissible():
            adapter = self._rotation[0]
            self._rotation.rotate(-1)
            if self._waiting[adapter] and self._servable(adapter):
                admitted.append(self._waiting[adapter].popleft())
                slots -= 1
        return admitted

    def _forward(self, input_ids, attention_mask, position_ids, cache, adapters: list[str]):
        kwargs = dict(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        )
        if self.row_adapters is not None:
            kwargs |= self.row_adapters(adapters)
        return self.model(**kwargs).logits[:, -1, :]

    def _prefill(self, seqs: list[Sequence]) -> None:
        """New rows' first token: those that start with the template prefix reuse its keys and values."""
        p = len(self.prefix_ids)
        reuse = [s for s in seqs if p and len(s.prompt_ids) > p and s.prompt_ids[:p] == self.prefix_ids]
        rest = [s for s in seqs if s not in reuse]
        for group, known in ((reuse, p), (rest, 0)):
            if group:
                self._prefill_group(group, known)

    def _prefill_group(self, seqs: list[Sequence], known: int) -> None:
        """Prefill ``seqs`` whose first ``known`` tokens are the template prefix (0: none), left-padded."""
        from transformers import DynamicCache

        cache = self._prefix_cache(seqs) if known else DynamicCache(config=self.model.config)
        tails = [s.prompt_ids[known:] for s in seqs]
        width = max(map(len, tails))
        ids = torch.tensor([[self.pad_id] * (width - len(t)) + t for t in tails], device=self.device)
        mask = torch.tensor([[1] * known + [0] * (width - len(t)) + [1] * len(t) for t in tails], device=self.device)
        positions = (mask.cumsum(-1) - 1)[:, known:].clamp(min=0)
        logits = self._forward(ids, mask, positions, cache, [s.adapter for s in seqs])
        self._emit(seqs, logits)
        self._merge(seqs, mask, cache)

    def _prefix_cache(self, seqs: list[Sequence]):
        """A cache holding the template prefix's keys and values for each row's variant."""
        from transformers import DynamicCache

        for adapter in {s.adapter for s in seqs} - self._prefix_kv.keys():
            alone = DynamicCache(config=self.model.config)
            ids = torch.tensor([self.prefix_ids], device=self.device)
            positions = torch.arange(len(self.prefix_ids), device=self.device)[None, :]
            self._forward(ids, torch.ones_like(ids), positions, alone, [adapter])
            self._prefix_kv[adapter] = [(layer.keys, layer.values) for layer in alone.layers]
        cache = DynamicCache(config=self.model.config)
        for i in range(len(self._prefix_kv[seqs[0].adapter])):
            cache.update(torch.cat([self._prefix_kv[s.adapter][i][0] for s in seqs]),
                         torch.cat([self._prefix_kv[s.adapter][i][1] for s in seqs]), i)
        return cache

    def _decode_step(self) -> None:
        ids = torch.tensor([[s.next_token] for s in self._rows], device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones(len(self._rows), 1)], dim=1)
        positions = self._mask.sum(-1, keepdim=True)  # the row's live tokens before this one
        logits = self._forward(ids, mask, positions, self._cache, [s.adapter for s in self._rows])
        self._mask = mask
        self.steps += 1
        self._emit(self._rows, logits)

    def _emit(self, seqs: list[Sequence], logits: torch.Tensor) -> None:
        tokens = sample(logits, seqs)
        for seq, token in zip(seqs, tokens):
            seq.next_token = token
            seq.generated += 1
            seq.send(token)

    def _finish_reason(self, seq: Sequence) -> str | None | bool:
        """False while the row should keep going; else the reason it ends."""
        if seq.cancel.is_set():
            return None
        if not seq.ignore_eos and seq.next_token in self.eos_ids:
            return "stop"
        if seq.generated >= seq.max_new_tokens:
            return "length"
        if time.monotonic() >= seq.deadline:
            return "time"
        return False

    def _drop_finished(self) -> None:
        keep = []
        for i, seq in enumerate(self._rows):
            reason = self._finish_reason(seq)
            if reason is False:
                keep.append(i)
            else:
                seq.send(Finished(reason, seq.generated))
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._mask, self._cache = [], None, None
            return
        index = torch.tensor(keep, device=self.device)
        self._rows = [self._rows[i] for i in keep]
        mask = self._mask.index_select(0, index)
        trim = int(mask.any(0).long().argmax())  # leading columns dead in every remaining row
        self._mask = mask[:, trim:]
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, trim:]
            layer.values = layer.values.index_select(0, index)[:, :, trim:]

    def _merge(self, seqs: list[Sequence], mask: torch.Tensor, cache) -> None:
        """Append freshly prefilled rows to the running batch, left-padding the shorter side."""
        live = [i for i, s in enumerate(seqs) if self._finish_reason(s) is False]
        for i, s in enumerate(seqs):
            if i not in live:
                s.send(Finished(self._finish_reason(s), s.generated))
        if not live:
            return
        seqs = [seqs[i] for i in live]
        if len(live) != len(mask):
            index = torch.tensor(live, device=self.device)
            mask = mask.index_select(0, index)
            for layer in cache.layers:
                layer.keys, layer.values = layer.keys.index_select(0, index), layer.values.index_select(0, index)
        if self._cache is None:
            self._rows, self._mask, self._cache = list(seqs), mask, cache
        else:
            old, new = self._mask.shape[1], mask.shape[1]
            width = max(old, new)
            for mine, theirs in zip(self._cache.layers, cache.layers):
                mine.keys = torch.cat([_left_pad(mine.keys, width - old), _left_pad(theirs.keys, width - new)])
                mine.values = torch.cat([_left_pad(mine.values, width - old), _left_pad(theirs.values, width - new)])
            self._mask = torch.cat([_left_pad(self._mask, width - old), _left_pad(mask, width - new)])
            self._rows += seqs
        self.peak_batch = max(self.peak_batch, len(self._rows))


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` zero columns in front: along dim 2 of a cache tensor, dim 1 of a mask."""
    if n == 0:
        return t
    dim = 2 if t.dim() == 4 else 1
    shape = list(t.shape)
    shape[dim] = n
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def sample(logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
    """One token per row: argmax for greedy rows, else temperature, top-k, top-p, then a draw."""
    tokens = logits.argmax(-1).tolist()
    for i, seq in enumerate(seqs):
        if seq.temperature > 0:
            try:
                tokens[i] = _draw(logits[i], seq)
            except RuntimeError:  # e.g. no finite probability left: one row must not fail the batch
                log.warning("sampling failed for one row; using its most likely token")
    return tokens


def _draw(logits: torch.Tensor, seq: Sequence) -> int:
    # A temperature near 0 would overflow the division; below 1e-3 it is greedy in all but name.
    row = logits.float() / max(seq.temperature, 1e-3)
    if seq.top_k > 0:
        kth = torch.topk(row, min(seq.top_k, row.numel())).values[-1]
        row = row.masked_fill(row < kth, float("-inf"))
    if seq.top_p < 1:
        ordered, order = row.sort(descending=True)
        probs = ordered.softmax(-1)
        drop = probs.cumsum(-1) - probs >= seq.top_p  # keep the smallest prefix reaching top_p
        row = row.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    return int(torch.multinomial(row.softmax(-1), 1, generator=seq.generator))


__all__ = ["BatchScheduler", "Finished", "PEFT_BASE", "Sequence", "sample"]
