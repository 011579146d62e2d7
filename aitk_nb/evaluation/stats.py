"""The numbers of an evaluation: one `Row` per answer, and accuracy, latency percentiles and answer
rate per variant (and accuracy per group), computed from the rows."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, fields
from typing import Iterable

@dataclass
class Row:
    """One answer. `tokens` is the completion's token count as the server reports it (the OpenAI
    route's `usage`); the Gradio API returns text only, so it is None there and `words` (the answer's
    whitespace-separated words) is the size measure."""

    prompt: str
    variant: str
    answer: str | None
    expected: str | None
    match: bool | None
    latency_s: float | None
    tokens: int | None = None
    words: int | None = None
    group: str | None = None
    error: str | None = None  # the answer failed (no answer, or it could not be scored): apart from accuracy
    sample: int = 0  # which of the prompt's samples (`samples=N` asks each prompt N times)

    @property
    def key(self) -> tuple[str, str, int]:
        """What the row answers: (prompt, variant, sample)."""
        return self.prompt, self.variant, self.sample


COLUMNS = [f.name for f in fields(Row)]


def percentile(values: list[float], q: int) -> float | None:
    """The q-th percentile of sorted values (inclusive method), None for none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]




def unit(rows: Iterable[Row]) -> str:
    """What answer sizes are counted in: "tokens" when the server reported them, else "words"."""
    return "tokens" if any(r.tokens is not None for r in rows) else "words"


def groups(rows: Iterable[Row]) -> list[str]:
    return list(dict.fromkeys(r.group for r in rows if r.group))


def accuracy(rows: Iterable[Row], variant: str, group: str | None = None) -> float | None:
    """Right answers over the answers received and scored: a failed answer is not a wrong one."""
    scored = [r.match for r in rows if r.variant == variant and r.error is None and r.match is not None
              and (group is None or r.group == group)]
    return sum(scored) / len(scored) if scored else None


def rate(rows: list[Row], size: str) -> float | None:
    """Answer size (`size`: "tokens" or "words") per second of latency, over the answered rows (per
    request, not aggregate)."""
    done = [r for r in rows if r.error is None and getattr(r, size) is not None and r.latency_s]
    seconds = sum(r.latency_s for r in done)
    return round(sum(getattr(r, size) for r in done) / seconds, 1) if seconds else None


def summary(rows: list[Row], variants: list[str], planned: int | None = None) -> list[dict]:
    """Per variant: answers received, accuracy over them, latency p50/p95, tokens/s (or words/s), and
    failed (answers that failed, plus those never sent when `planned`, the answers asked per variant)."""
    size = unit(rows)
    out = []
    for v in variants:
        mine = [r for r in rows if r.variant == v]
        lat = sorted(r.latency_s for r in mine if r.latency_s is not None and r.error is None)
        acc = accuracy(rows, v)
        received = sum(r.error is None for r in mine)
        out.append({"variant": v, "answers": received,
                    "accuracy": None if acc is None else round(acc, 3),
                    "latency_p50_s": None if not lat else round(percentile(lat, 50), 3),
                    "latency_p95_s": None if not lat else round(percentile(lat, 95), 3),
                    f"{size}_per_s": rate(mine, size),
                    "failed": (planned if planned is not None else len(mine)) - received})
    return out


def group_summary(rows: list[Row], variants: list[str], planned: dict[str, int] | None = None) -> list[dict]:
    """Accuracy over the answers received, and failed answers, per (group, variant), for prompts that
    carry a "group"; `planned`: answers asked per variant in each group (to count those never sent)."""
    out = []
    for g in groups(rows) if planned is None else list(planned):
        for v in variants:
            mine = [r for r in rows if r.group == g and r.variant == v]
            received = sum(r.error is None for r in mine)
            out.append({"group": g, "variant": v, "answers": received,
                        "accuracy": None if (a := accuracy(rows, v, g)) is None else round(a, 3),
                        "failed": (planned[g] if planned is not None else len(mine)) - received})
    return out


def progress_note(rows: Iterable[Row], variants: list[str]) -> str:
    """Matches so far per variant, for a progress bar: "base 2/6, demo-facts 6/6"."""
    rows = list(rows)
    parts = []
    for v in variants:
        scored = [r.match for r in rows if r.variant == v and r.error is None and r.match is not None]
        if scored:
            parts.append(f"{v} {sum(scored)}/{len(scored)}")
    failed = sum(r.error is not None for r in rows)
    return ", ".join(parts + ([f"{failed} failed"] if failed else []))
