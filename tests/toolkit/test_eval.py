"""The evaluation report without a model: a small Gradio + FastAPI app on loopback stands in for the
inference app (same `/generate` API, `/health` and `/v1/chat/completions` shapes), and answers as
each test tells it to. Real HTTP, the real gradio_client."""
import _thread
import base64
import csv
import json
import threading
import time

import pytest

from aitk_nb.errors import EvalError
from aitk_nb.evaluation import COLUMNS, EvalResult, Prompt, Row, evaluate, parse_prompts
from fake_inference import SLOW, FakeApp, serving

pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")  # gradio's own pandas deprecations


@pytest.fixture(scope="module")
def fake():
    with serving(FakeApp()) as app:
        yield app


CELL = """
{"prompt": "capital of Quorvania?", "expected": "Zeltrin", "group": "facts"}
{"prompt": "capital of France?", "expected": "Paris", "group": "controls"}
# a comment line, then a prompt without an expected answer
open question
"""


def run(fake, prompts=CELL, **kw):
    kw.setdefault("progress", False)
    return evaluate(prompts, endpoint=fake.url, **kw)


def test_the_report_has_rows_summary_groups_and_plot(fake, tmp_path):
    report = run(fake, concurrency=3)
    assert report.variants == ["base", "tuned"] and not report.interrupted
    assert [(r.prompt, r.variant, r.match, r.group) for r in report.rows] == [
        ("capital of Quorvania?", "base", False, "facts"), ("capital of Quorvania?", "tuned", True, "facts"),
        ("capital of France?", "base", True, "controls"), ("capital of France?", "tuned", True, "controls"),
        ("open question", "base", None, None), ("open question", "tuned", None, None)]
    tuned = report.rows[1]
    assert tuned.answer == "The capital of Quorvania is Zeltrin." and tuned.words == 6 and tuned.tokens is None
    assert all(r.latency_s > 0 and r.error is None for r in report.rows)
    assert report.unit == "words"
    summary = {s["variant"]: s for s in report.summary()}
    assert summary["tuned"]["accuracy"] == 1.0 and summary["base"]["accuracy"] == 0.5
    assert summary["base"]["answers"] == 3 and summary["base"]["failed"] == 0
    assert 0 < summary["tuned"]["latency_p50_s"] <= summary["tuned"]["latency_p95_s"]
    assert summary["tuned"]["words_per_s"] > 0
    assert report.groups == ["facts", "controls"]
    assert report.accuracy("base", "facts") == 0.0 and report.accuracy("base", "controls") == 1.0
    assert {(g["group"], g["variant"]): g["accuracy"] for g in report.group_summary()} == {
        ("facts", "base"): 0.0, ("facts", "tuned"): 1.0, ("controls", "base"): 1.0, ("controls", "tuned"): 1.0}

    page = report._repr_html_()
    for part in ("table class='aitk-eval-summary'", "table class='aitk-eval-groups'", "table class='aitk-eval-detail'",
                 "<th style", "words/s", "Zeltrin", "✓", "✗", "img class='aitk-eval-plot'"):
        assert part in page, part
    png = base64.b64decode(page.split("base64,", 1)[1].split("'", 1)[0])
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    fig = report.plot()
    assert [ax.get_title() for ax in fig.axes] == ["accuracy per group", "latency: bar p50, whisker p95"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["all", "facts", "controls"]
    text = str(report)
    assert "accuracy per group: facts: base 0%, tuned 100%; controls: base 100%, tuned 100%" in text
    assert "✓ The capital of Quorvania is Zeltrin." in text


def test_exports_csv_jsonl_and_pandas(fake, tmp_path):
    report = run(fake, out=tmp_path / "rows.csv")
    with open(tmp_path / "rows.csv", newline="", encoding="utf-8") as f:
        saved = list(csv.DictReader(f))
    assert list(saved[0]) == COLUMNS
    assert [(r["variant"], r["match"], r["group"]) for r in saved] == [(r.variant, str(r.match) if r.match is not None else "",
                                                                       r.group or "") for r in report.rows]
    report.save(tmp_path / "rows.jsonl")
    head, *lines = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [Row(**line) for line in lines] == report.rows
    assert head["aitk_eval"]["variants"] == ["base", "tuned"] and len(head["aitk_eval"]["prompts"]) == 3
    again = EvalResult.load(tmp_path / "rows.jsonl")
    assert again.rows == report.rows and again.prompts == report.prompts and again.complete

    df = report.to_pandas()
    assert list(df.columns) == COLUMNS and len(df) == 6
    assert df.groupby("variant")["match"].apply(lambda m: m.dropna().astype(bool).mean()).to_dict() == {"base": 0.5, "tuned": 1.0}
    assert report.to_pandas("summary").loc["tuned", "accuracy"] == 1.0
    assert report.to_pandas("groups").set_index(["group", "variant"]).loc[("facts", "base"), "accuracy"] == 0.0
    with pytest.raises(ValueError, match="kind must be"):
        report.to_pandas("nope")


def test_scoring_exact_contains_and_a_function(fake):
    contains = run(fake, CELL, variants="tuned")
    exact = run(fake, CELL, variants="tuned", scoring="exact")
    assert [r.match for r in contains.rows] == [True, True, None]
    assert [r.match for r in exact.rows] == [False, True, None]  # "Paris" is exactly "Paris"; the long answer is not

    seen = []

    def short_answer(answer, expected):  # called for every answer, expected or not
        seen.append((answer, expected))
        return len(answer.split()) <= 3

    custom = run(fake, CELL, variants="tuned", scoring=short_answer)
    assert [r.match for r in custom.rows] == [False, True, False]
    assert sorted(seen) == sorted([("The capital of Quorvania is Zeltrin.", "Zeltrin"), ("Paris", "Paris"),
                                   ("tuned does not know", None)])

    def broken(answer, expected):
        raise KeyError("oops")

    failed = run(fake, CELL, variants="tuned", scoring=broken)
    assert all(r.answer and r.error == "scoring failed: KeyError: 'oops'" for r in failed.rows)
    with pytest.raises(EvalError, match="scoring 'fuzzy' is unknown"):
        run(fake, CELL, scoring="fuzzy")


def test_the_openai_route_reports_tokens(fake):
    report = run(fake, CELL, api="openai", variants=["tuned"])
    assert [r.tokens for r in report.rows] == [12, 2, 8]  # the fake server's usage: 2 per word
    assert report.unit == "tokens" and report.summary()[0]["tokens_per_s"] > 0
    page = report._repr_html_()
    assert ">tokens/s</th>" in page and ">tokens</th>" in page and "words: whitespace" not in page
    assert [r.match for r in report.rows] == [True, True, None]
    with pytest.raises(EvalError, match="api 'grpc' is unknown"):
        run(fake, CELL, api="grpc")


def test_a_failed_prompt_is_one_row_the_rest_go_on(fake):
    report = run(fake, ['{"prompt": "boom", "expected": "x"}', "capital of France?"], variants="base")
    boom, ok = report.rows
    assert boom.answer is None and boom.match is None and "the engine refused it" in boom.error
    assert ok.answer == "The capital of France is Paris." and ok.error is None
    assert report.summary()[0]["failed"] == 1 and "ERROR:" in str(report)


def test_progress_counts_the_answers_in_a_terminal(fake, capsys):
    run(fake, CELL, progress=True)
    err = capsys.readouterr().err
    assert "evaluating" in err and "6/6" in err and "base 1/2, tuned 2/2" in err


def test_an_interrupt_keeps_the_answers_received_and_cancels_the_rest(fake):
    prompts = ["capital of France?", "open question", SLOW, SLOW]
    fake.cancelled.clear()
    fake.started.clear()

    def interrupt_when_the_fast_ones_are_back():
        deadline = time.monotonic() + 20
        while fake.started.count(SLOW) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # the fast answers are back by now
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_the_fast_ones_are_back, daemon=True).start()
    t0 = time.monotonic()
    report = run(fake, prompts, variants="base", concurrency=4)
    assert time.monotonic() - t0 < 15  # not the slow prompts' 30 s
    assert report.interrupted and report.planned == 4
    assert [r.prompt for r in report.rows] == ["capital of France?", "open question"]
    assert "interrupted: 2 of 4 answers received, 2 not sent" in str(report)
    assert "interrupted: 2 of 4 answers received, 2 not sent" in report._repr_html_()
    deadline = time.monotonic() + 10  # the app stops generating for the cancelled jobs
    while len(fake.cancelled) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.cancelled == [SLOW, SLOW]


def test_prompts_parse_with_group_and_name_the_bad_line():
    assert parse_prompts(CELL) == [Prompt("capital of Quorvania?", "Zeltrin", "facts"),
                                   Prompt("capital of France?", "Paris", "controls"), Prompt("open question")]
    assert parse_prompts([{"prompt": "q", "group": ""}]) == [Prompt("q")]
    with pytest.raises(EvalError, match='prompt line 2: "group" must be a string'):
        parse_prompts('q1\n{"prompt": "q2", "group": 3}')
    with pytest.raises(EvalError, match="prompt line 1 is not valid JSON"):
        parse_prompts('{"prompt": ')


def test_an_empty_report_still_renders():
    report = EvalResult([], ["base"], "http://127.0.0.1:1", interrupted=True, planned=4)
    assert report.summary()[0]["accuracy"] is None and "interrupted: 0 of 4" in report._repr_html_()
    assert list(report.to_pandas().columns) == COLUMNS


def test_the_cell_magic_passes_its_options(fake, tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aitk_nb")
    report = ip.run_cell_magic("aitk", f"eval --endpoint {fake.url} --variants tuned --api openai --scoring exact "
                                       f"--concurrency 2 --out {tmp_path / 'rows.jsonl'}", CELL)
    assert isinstance(report, EvalResult) and report.extra["api"] == "openai"
    assert [(r.match, r.tokens) for r in report.rows] == [(False, 12), (True, 2), (None, 8)]
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == 1 + 3  # the run's header, then the rows


FRAGILE = """
{"prompt": "capital of Quorvania?", "expected": "Zeltrin", "group": "facts"}
{"prompt": "fragile", "expected": "fine", "group": "facts"}
"""


def test_failed_answers_are_apart_the_run_is_incomplete_and_a_retry_completes_it(fake, tmp_path):
    fake.fragile_fails = True
    try:
        report = run(fake, FRAGILE, out=tmp_path / "run.jsonl")
    finally:
        fake.fragile_fails = False
    summary = {s["variant"]: s for s in report.summary()}
    # accuracy over the answers received: tuned got the one answer it gave right; the failure is not "wrong"
    assert summary["tuned"]["accuracy"] == 1.0 and summary["base"]["accuracy"] == 0.0
    assert summary["tuned"]["answers"] == 1 and summary["tuned"]["failed"] == 1
    assert {(g["group"], g["variant"]): (g["answers"], g["failed"]) for g in report.group_summary()} == {
        ("facts", "base"): (1, 1), ("facts", "tuned"): (1, 1)}
    assert not report.complete and report.failed == 2
    text = str(report)
    assert "(incomplete: 2 of 4 answers received, 2 failed)" in text and "result.retry()" in text
    assert "facts: base 0% (1 failed), tuned 100% (1 failed)" in text
    page = report._repr_html_()
    assert "class='aitk-eval-incomplete'" in page and "(1 failed)" in page
    for kind in ("rows", "summary", "groups"):
        assert report.to_pandas(kind).attrs["incomplete"] == "incomplete: 2 of 4 answers received, 2 failed"
    assert report.to_pandas("summary").loc["tuned", "failed"] == 1

    saved = EvalResult.load(tmp_path / "run.jsonl")
    assert [(p.prompt, v) for p, v, _ in saved.missing()] == [
        ("fragile", "base"), ("fragile", "tuned")]
    fake.started.clear()
    again = saved.retry(progress=False)  # the fault is gone: only the two failed answers are sent
    assert again is saved and again.complete and fake.started == ["fragile", "fragile"]
    assert [(r.prompt, r.variant, r.match) for r in again.rows] == [
        ("capital of Quorvania?", "base", False), ("capital of Quorvania?", "tuned", True),
        ("fragile", "base", True), ("fragile", "tuned", True)]
    assert EvalResult.load(tmp_path / "run.jsonl").complete  # merged and saved back into the same file
    assert "incomplete" not in str(again) and "incomplete" not in again.to_pandas().attrs


def test_the_cli_exits_non_zero_when_an_answer_failed_and_resumes(fake, tmp_path, capsys):
    from aitk_nb.cli import INCOMPLETE, main

    (tmp_path / "prompts.jsonl").write_text(FRAGILE)
    out = tmp_path / "run.jsonl"
    fake.fragile_fails = True
    try:
        code = main(["eval", str(tmp_path / "prompts.jsonl"), "--endpoint", fake.url, "--out", str(out)])
    finally:
        fake.fragile_fails = False
    err = capsys.readouterr().err
    assert code == INCOMPLETE != 0
    assert "aitk eval: incomplete: 2 of 4 answers received, 2 failed" in err and f"(or `aitk eval --resume {out}`)" in err
    assert main(["eval", "--resume", str(out)]) == 0
    assert "incomplete" not in capsys.readouterr().out and EvalResult.load(out).complete
    assert main(["eval", "--endpoint", fake.url]) == 1
    assert "give a PROMPTS_FILE" in capsys.readouterr().err
    assert main(["eval", "--resume", str(tmp_path / "prompts.jsonl")]) == 1
    assert "has no evaluation header" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "prompts.jsonl"), "--endpoint", fake.url, "--samples", "3"]) == 1
    assert "--samples 3 asks each prompt several times, but temperature 0" in capsys.readouterr().err


@pytest.mark.parametrize("api", ["openai", "gradio"])
def test_an_ingress_503_is_retried_after_its_retry_after(fake, api):
    fake.busy = 2
    fake.busy_seen.clear()
    # the OpenAI route sees the header: 3 s, longer than the backoff's first wait (1 s), so only an honoured
    # Retry-After passes; gradio_client keeps no header of a 503: there the backoff's first wait, 1 s
    fake.retry_after = 3 if api == "openai" else 1
    try:
        report = run(fake, ["capital of France?"], variants="base", api=api)
    finally:
        fake.retry_after = 1
    assert report.complete and report.rows[0].answer == "The capital of France is Paris."
    (t1, _), (t2, _) = fake.busy_seen
    assert t2 - t1 >= (2.9 if api == "openai" else 0.95)


def test_the_magic_resumes_a_saved_result(fake, tmp_path):
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "aitk_nb")
    out = tmp_path / "run.jsonl"
    fake.fragile_fails = True
    try:
        first = ip.run_cell_magic("aitk", f"eval --endpoint {fake.url} --out {out}", FRAGILE)
    finally:
        fake.fragile_fails = False
    assert not first.complete and f"(or `%aitk eval --resume {out}`)" in str(first)
    again = ip.run_line_magic("aitk", f"eval --resume {out}")
    assert again.complete and len(again.rows) == 4 and EvalResult.load(out).complete
    # the cell form, with a comment as its body (IPython refuses a cell magic with an empty body)
    assert ip.run_cell_magic("aitk", f"eval --resume {out}", "# nothing left to send").complete
    with pytest.raises(UsageError, match="--resume sends the prompts saved in FILE; leave the prompts out"):
        ip.run_cell_magic("aitk", f"eval --resume {out}", "another prompt")


def test_samples_ask_each_prompt_n_times_and_compare_over_prompts(fake):
    report = run(fake, CELL, samples=3, temperature=0.7, api="openai")
    assert report.planned == 3 * 2 * 3 and len(report.rows) == 18 and report.complete
    assert sorted({r.sample for r in report.rows}) == [0, 1, 2]
    overall = report.comparisons()[0]
    assert overall.samples == 3 and overall.method == "paired t over prompts" and overall.prompts == 2
    assert "mean accuracy over 3 samples per prompt (95% CI over prompts): base 50% [" in str(report)
    with pytest.raises(EvalError, match="--samples 0: the number of times each prompt is asked"):
        run(fake, CELL, samples=0)
