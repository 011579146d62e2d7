"""Is the difference real? The paired comparison of an adapter against base, checked against a hand
computation on a fixed table of outcomes (Newcombe's paired score interval, exact McNemar)."""
import math

import pytest

from aitk_nb.evaluation import EvalResult, Prompt, Row
from aitk_nb.evaluation.significance import MIN_DISCORDANT

Z = 1.959963984540054  # the 97.5% point of the standard normal


def wilson_by_hand(x: int, n: int) -> tuple[float, float]:
    """Wilson's score interval: (x + z²/2)/(n + z²) ± z/(n + z²)·sqrt(x(n−x)/n + z²/4)."""
    centre = (x + Z * Z / 2) / (n + Z * Z)
    half = Z / (n + Z * Z) * math.sqrt(x * (n - x) / n + Z * Z / 4)
    return centre - half, centre + half


def table_rows(both: int, tuned_only: int, base_only: int, neither: int, group: str | None = None, tag: str = "q"):
    """Rows for prompts with the given paired outcomes (tuned, base)."""
    rows, prompts = [], []
    outcomes = [(True, True)] * both + [(True, False)] * tuned_only + [(False, True)] * base_only + [(False, False)] * neither
    for i, (tuned, base) in enumerate(outcomes):
        prompt = f"{tag}{i}"
        prompts.append(Prompt(prompt, "x", group))
        rows.append(Row(prompt, "base", "a", "x", base, 0.1, group=group))
        rows.append(Row(prompt, "tuned", "a", "x", tuned, 0.1, group=group))
    return rows, prompts


def result_of(rows, prompts) -> EvalResult:
    r = EvalResult(rows, ["base", "tuned"], "http://127.0.0.1:1", prompts=prompts)
    r.planned = len(r.jobs())
    return r


def test_the_difference_interval_and_mcnemar_match_a_hand_computation():
    # 20 prompts: both right 9, only tuned right 7, only base right 1, both wrong 3
    a, b, c, d = 9, 7, 1, 3
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n          # tuned 80%, base 50%
    l1, u1 = wilson_by_hand(a + b, n)
    l2, u2 = wilson_by_hand(a + c, n)
    phi = (a * d - b * c) / math.sqrt((a + b) * (c + d) * (a + c) * (b + d))  # (27 - 7) / 80 = 0.25
    assert phi == 0.25
    low = (p1 - p2) - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = (p1 - p2) + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    # exact McNemar: 8 discordant pairs, 7 vs 1; two-sided = 2 * P(X <= 1), X ~ Bin(8, 1/2)
    p_value = 2 * (math.comb(8, 0) + math.comb(8, 1)) / 2 ** 8
    assert p_value == 18 / 256

    result = result_of(*table_rows(a, b, c, d))
    (cmp,) = result.comparisons()
    assert (cmp.variant, cmp.baseline, cmp.group, cmp.prompts) == ("tuned", "base", None, 20)
    assert (cmp.variant_only, cmp.baseline_only) == (7, 1)
    assert cmp.difference == pytest.approx(0.3, abs=1e-12)
    assert cmp.low == pytest.approx(low, abs=1e-9) and cmp.high == pytest.approx(high, abs=1e-9)
    assert 0.0 < cmp.low < 0.3 < cmp.high < 0.6  # a sanity band around the hand numbers (≈ +0.04 to +0.50)
    assert cmp.p_value == pytest.approx(p_value, abs=1e-12)
    assert not cmp.too_few and cmp.verdict == "no clear difference (p ≥ 0.05)"
    line = f"tuned vs base: +30 points [95% CI {100 * low:+.0f} to {100 * high:+.0f}], McNemar exact p = 0.070 (7 vs 1 of 20 prompts)"
    assert cmp.line().startswith(line)
    assert line in str(result) and line in result._repr_html_()


def test_a_clear_win_says_so_and_too_few_prompts_say_that():
    rows, prompts = table_rows(4, 9, 0, 3, group="facts", tag="f")
    few_rows, few_prompts = table_rows(3, 2, 0, 1, group="controls", tag="c")
    result = result_of(rows + few_rows, prompts + few_prompts)
    overall, facts, controls = result.comparisons()
    assert facts.group == "facts" and facts.p_value == pytest.approx(2 / 2 ** 9)  # 9 vs 0: 2 * (1/2)^9
    assert facts.verdict == "tuned is better (p < 0.05)"
    assert overall.variant_only == 11 and overall.baseline_only == 0 and overall.prompts == 22
    assert controls.discordant == 2 < MIN_DISCORDANT and controls.too_few
    assert "too few prompts to tell (2 answered differently; at least 6 are needed for p < 0.05)" in controls.line()
    text = str(result)
    assert "tuned vs base [controls]:" in text and "too few prompts to tell" in text
    df = result.to_pandas("comparisons")
    assert list(df["group"].fillna("all")) == ["all", "facts", "controls"]
    assert df.loc[1, "p_value"] == pytest.approx(2 / 2 ** 9) and df.loc[1, "method"].startswith("Newcombe")


def test_failed_answers_are_left_out_of_the_pairs():
    rows, prompts = table_rows(9, 7, 1, 3)
    rows[1].error, rows[1].match = "ConnectError: refused", None  # tuned's answer to q0 failed
    (cmp,) = result_of(rows, prompts).comparisons()
    assert cmp.prompts == 19 and (cmp.variant_only, cmp.baseline_only) == (7, 1)


def test_samples_give_a_mean_and_its_interval():
    from scipy.stats import t

    rows, prompts = [], []
    # 4 prompts x 3 samples; tuned right on 3, 2, 3, 1 samples; base on 1, 1, 0, 1
    tuned, base = [3, 2, 3, 1], [1, 1, 0, 1]
    for i, (tr, br) in enumerate(zip(tuned, base)):
        prompts.append(Prompt(f"q{i}", "x"))
        for s in range(3):
            rows.append(Row(f"q{i}", "base", "a", "x", s < br, 0.1, sample=s))
            rows.append(Row(f"q{i}", "tuned", "a", "x", s < tr, 0.1, sample=s))
    result = EvalResult(rows, ["base", "tuned"], "http://127.0.0.1:1", prompts=prompts, samples=3)
    result.planned = len(result.jobs())
    assert result.planned == 24 and result.complete
    (cmp,) = result.comparisons()
    diffs = [(tr - br) / 3 for tr, br in zip(tuned, base)]  # 2/3, 1/3, 1, 0
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in diffs) / 3)
    half = t.ppf(0.975, 3) * sd / 2  # sd / sqrt(4)
    assert cmp.difference == pytest.approx(mean) and cmp.low == pytest.approx(mean - half)
    assert cmp.high == pytest.approx(mean + half) and cmp.samples == 3
    assert "mean accuracy over 3 samples per prompt (95% CI over prompts): base 25% [" in str(result)


def test_samples_where_every_prompt_moves_alike_are_tested_by_signs():
    """20 prompts x 3 samples, tuned always right and base always wrong: no spread for a t test, but 20 of 20
    prompts moved up; an exact sign test gives p = 2 / 2**20, not 'too few prompts to tell'."""
    rows, prompts = [], []
    for i in range(20):
        prompts.append(Prompt(f"q{i}", "x"))
        for s in range(3):
            rows.append(Row(f"q{i}", "base", "a", "x", False, 0.1, sample=s))
            rows.append(Row(f"q{i}", "tuned", "a", "x", True, 0.1, sample=s))
    result = EvalResult(rows, ["base", "tuned"], "http://127.0.0.1:1", prompts=prompts, samples=3)
    (cmp,) = result.comparisons()
    assert cmp.p_value == pytest.approx(2 / 2 ** 20) and cmp.difference == 1.0
    assert "sign test p = " in cmp.line() and "too few" not in cmp.line(), cmp.line()
