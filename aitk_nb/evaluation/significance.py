"""Is the difference real? Each adapter against `base` on the same prompts (paired outcomes).

One answer per prompt (greedy, or `samples=1`): the 2x2 table of paired outcomes gives
- the accuracy difference (adapter minus base) with a 95% confidence interval by Newcombe's hybrid
  score method for paired proportions (Newcombe 1998, Stat Med 17:2635, method 10): the two Wilson
  score intervals (scipy's `BinomTestResult.proportion_ci(method="wilson")`) combined with the
  table's phi correlation;
- an exact McNemar test: a two-sided binomial test (`scipy.stats.binomtest`, p = 1/2) on the
  discordant pairs (prompts one variant got right and the other wrong).
With fewer than 6 discordant pairs no split of them can reach p < 0.05 (two-sided exact test:
2 x 0.5**5 = 0.0625), and the report says there are too few prompts to tell.

Several answers per prompt (`samples=N`, temperature > 0): each prompt's accuracy is the mean over
its samples; the difference is the mean over prompts of the per-prompt differences, with a paired
t interval and test over prompts (`scipy.stats.ttest_1samp`).

scipy is imported here only, when a comparison is computed (`import aitk_nb` stays light).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from .stats import Row

BASELINE = "base"
CONFIDENCE = 0.95
MIN_DISCORDANT = 6  # fewer discordant pairs can never give p < 0.05 with the exact test
NEWCOMBE = "Newcombe's paired score interval"
T_OVER_PROMPTS = "paired t over prompts"
SIGN_OVER_PROMPTS = "exact sign test over prompts"  # every prompt moved alike: no spread for a t test


@dataclass(frozen=True)
class Comparison:
    """`variant` against `baseline` on the prompts both answered (per `group`, or all when None)."""

    variant: str
    baseline: str
    group: str | None
    prompts: int            # paired prompts (both variants answered and were scored)
    variant_only: int       # discordant: the variant right, the baseline wrong (one sample per prompt)
    baseline_only: int      # discordant: the baseline right, the variant wrong
    difference: float | None  # variant accuracy minus baseline accuracy
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    samples: int = 1

    @property
    def discordant(self) -> int:
        return self.variant_only + self.baseline_only

    @property
    def too_few(self) -> bool:
        """No outcome on these prompts could show a difference at the 5% level."""
        if self.samples > 1:
            return self.prompts < 3 or self.p_value is None
        return self.discordant < MIN_DISCORDANT

    @property
    def verdict(self) -> str:
        if self.prompts == 0:
            return "no prompt answered by both"
        if self.too_few:
            if self.samples > 1:
                return f"too few prompts to tell ({self.prompts})"
            return (f"too few prompts to tell ({self.discordant} answered differently; "
                    f"at least {MIN_DISCORDANT} are needed for p < 0.05)")
        if self.p_value < 1 - CONFIDENCE:
            return f"{self.variant} is {'better' if self.difference > 0 else 'worse'} (p < 0.05)"
        return "no clear difference (p ≥ 0.05)"

    def line(self) -> str:
        """One line: "demo-facts vs base: +42 points [95% CI +13 to +63], McNemar exact p = 0.031 (5 vs 0
        of 12 prompts) — demo-facts is better (p < 0.05)"."""
        head = f"{self.variant} vs {self.baseline}" + (f" [{self.group}]" if self.group else "")
        if self.prompts == 0 or self.difference is None:
            return f"{head}: {self.verdict}"
        ci = "" if self.low is None else f" [95% CI {_points(self.low)} to {_points(self.high)}]"
        if self.samples > 1:
            name = "sign test" if self.method == SIGN_OVER_PROMPTS else "paired t"
            test = f", {name} p = {_p(self.p_value)} ({self.prompts} prompts x {self.samples} samples)"
        else:
            test = (f", McNemar exact p = {_p(self.p_value)} ({self.variant_only} vs {self.baseline_only} of "
                    f"{self.prompts} prompts)")
        return f"{head}: {_points(self.difference)} points{ci}{test} — {self.verdict}"

    def as_dict(self) -> dict:
        return {"variant": self.variant, "baseline": self.baseline, "group": self.group, "prompts": self.prompts,
                "samples": self.samples, "variant_only": self.variant_only, "baseline_only": self.baseline_only,
                "difference": self.difference, "ci_low": self.low, "ci_high": self.high, "p_value": self.p_value,
                "method": self.method, "verdict": self.verdict}


def _points(x: float) -> str:
    return f"{100 * x:+.0f}"


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (scipy)."""
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return ci.low, ci.high


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int) -> tuple[float, float, float]:
    """(difference, low, high) of p1 - p2 for paired binary outcomes, Newcombe's method 10: `first_only`
    counts pairs where the first is a success and the second not."""
    n = both + first_only + second_only + neither
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson(both + first_only, n)
    l2, u2 = wilson(both + second_only, n)
    denominator = (both + first_only) * (second_only + neither) * (both + second_only) * (first_only + neither)
    phi = (both * neither - first_only * second_only) / math.sqrt(denominator) if denominator else 0.0
    d1, e2 = p1 - l1, u2 - p2
    e1, d2 = u1 - p1, p2 - l2
    delta = math.sqrt(max(d1 * d1 - 2 * phi * d1 * e2 + e2 * e2, 0.0))
    epsilon = math.sqrt(max(e1 * e1 - 2 * phi * e1 * d2 + d2 * d2, 0.0))
    diff = p1 - p2
    return diff, max(diff - delta, -1.0), min(diff + epsilon, 1.0)


def mcnemar_exact(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2."""
    from scipy.stats import binomtest

    m = first_only + second_only
    return 1.0 if m == 0 else float(binomtest(first_only, m, 0.5).pvalue)


def _outcomes(rows: Iterable[Row], variant: str, group: str | None) -> dict[tuple[str, int], bool]:
    """(prompt, sample) -> right or wrong, for the answers received and scored."""
    return {(r.prompt, r.sample): bool(r.match) for r in rows
            if r.variant == variant and r.error is None and r.match is not None and (group is None or r.group == group)}


def compare(rows: list[Row], variant: str, baseline: str = BASELINE, group: str | None = None,
            samples: int = 1) -> Comparison:
    mine, theirs = _outcomes(rows, variant, group), _outcomes(rows, baseline, group)
    keys = [k for k in mine if k in theirs]
    if samples > 1:
        return _compare_samples(variant, baseline, group, keys, mine, theirs, samples)
    table = {(a, b): 0 for a in (True, False) for b in (True, False)}
    for k in keys:
        table[mine[k], theirs[k]] += 1
    both, v_only, b_only, neither = table[True, True], table[True, False], table[False, True], table[False, False]
    n = len(keys)
    if n == 0:
        return Comparison(variant, baseline, group, 0, 0, 0, None, None, None, None, NEWCOMBE)
    diff, low, high = newcombe_paired(both, v_only, b_only, neither)
    return Comparison(variant, baseline, group, n, v_only, b_only, diff, low, high, mcnemar_exact(v_only, b_only), NEWCOMBE)


def _compare_samples(variant, baseline, group, keys, mine, theirs, samples) -> Comparison:
    per_prompt: dict[str, list[float]] = {}
    for prompt, sample in keys:
        per_prompt.setdefault(prompt, []).append(float(mine[prompt, sample]) - float(theirs[prompt, sample]))
    diffs = [sum(d) / len(d) for d in per_prompt.values()]
    n = len(diffs)
    if n == 0:
        return Comparison(variant, baseline, group, 0, 0, 0, None, None, None, None, T_OVER_PROMPTS, samples)
    mean = sum(diffs) / n
    low = high = p = None
    if n >= 2 and any(d != diffs[0] for d in diffs):
        from scipy.stats import ttest_1samp

        test = ttest_1samp(diffs, 0.0)
        ci = test.confidence_interval(CONFIDENCE)
        low, high, p = float(ci.low), float(ci.high), float(test.pvalue)
    elif n >= 2:  # every prompt moved by the same amount: no spread to estimate, but a direction to test
        from scipy.stats import binomtest

        low = high = mean
        moved = sum(d != 0 for d in diffs)
        p = 1.0 if moved == 0 else float(binomtest(sum(d > 0 for d in diffs), moved, 0.5).pvalue)
        return Comparison(variant, baseline, group, n, sum(d > 0 for d in diffs), sum(d < 0 for d in diffs), mean,
                          low, high, p, SIGN_OVER_PROMPTS, samples)
    return Comparison(variant, baseline, group, n, sum(d > 0 for d in diffs), sum(d < 0 for d in diffs), mean, low,
                      high, p, T_OVER_PROMPTS, samples)


def mean_accuracy(rows: list[Row], variant: str, group: str | None = None) -> tuple[float, float, float] | None:
    """With several samples per prompt: the mean accuracy over prompts (each prompt's over its samples)
    and its 95% t interval; None without scored answers."""
    per_prompt: dict[str, list[bool]] = {}
    for (prompt, _), right in _outcomes(rows, variant, group).items():
        per_prompt.setdefault(prompt, []).append(right)
    means = [sum(v) / len(v) for v in per_prompt.values()]
    if not means:
        return None
    mean = sum(means) / len(means)
    if len(means) < 2 or all(m == means[0] for m in means):
        return mean, mean, mean
    from scipy.stats import ttest_1samp

    ci = ttest_1samp(means, mean).confidence_interval(CONFIDENCE)
    return mean, max(float(ci.low), 0.0), min(float(ci.high), 1.0)


def comparisons(rows: list[Row], variants: list[str], groups: list[str], samples: int = 1) -> list[Comparison]:
    """Each variant but the baseline against it: over all prompts, then per group."""
    if BASELINE not in variants:
        return []
    out = []
    for v in variants:
        if v == BASELINE:
            continue
        out.append(compare(rows, v, BASELINE, None, samples))
        out += [compare(rows, v, BASELINE, g, samples) for g in groups]
    return out
