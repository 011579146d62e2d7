"""`evaluate`: every prompt against every variant, `concurrency` requests in flight, with a progress
bar; an interrupt keeps the answers received."""
from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Iterable

from ..cost import RunMeter
from ..errors import EvalError
from .backends import APIS, open_backend, served_by
from .prompts import SCORERS, Prompt, Scorer, parse_prompts
from .result import EvalResult
from .stats import Row, progress_note


def evaluate(prompts: str | Iterable[str | dict | Prompt], *, variants: list[str] | str | None = None,
             endpoint: str | None = None, project: str | os.PathLike | None = None, concurrency: int = 4,
             max_new_tokens: int = 64, temperature: float = 0.0, scoring: str | Scorer = "contains",
             api: str = "gradio", api_key: str | None = None, out: str | os.PathLike | None = None,
             progress: bool = True) -> EvalResult:
    """Run each prompt against each variant, `concurrency` requests at a time.

    `prompts`: a cell body or a list (strings, or dicts/`Prompt`s with "prompt", "expected", "group").
    `variants` defaults to base plus every adapter the endpoint serves; `temperature` 0 is greedy.
    `scoring`: "contains", "exact" or a function (answer, expected) -> bool (called for every answer;
    expected may be None). `api`: "gradio" (the Gradio API, text only) or "openai" (the OpenAI-compatible
    route, which also reports each answer's token count). A progress bar counts the answers; an
    interrupt (Kernel > Interrupt, Ctrl-C) stops the evaluation and keeps the answers already received."""
    items = parse_prompts(prompts)
    builtin = isinstance(scoring, str)
    score = SCORERS.get(scoring) if builtin else scoring
    if score is None or not callable(score):
        raise EvalError(f"scoring {scoring!r} is unknown; use one of {', '.join(SCORERS)} or a function")
    if api not in APIS:
        raise EvalError(f"api {api!r} is unknown; use one of {', '.join(APIS)}")
    if concurrency < 1:
        raise EvalError("concurrency must be at least 1")
    found = None
    if endpoint is None:
        from ..verbs import endpoint as _endpoint

        found = _endpoint(project=project, fetch=False)
        endpoint = found.url
        api_key = api_key or found.api_key()
    api_key = api_key or os.environ.get("AITK_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    served = served_by(endpoint, headers)
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    variants = list(variants or served)
    unknown = [v for v in variants if v not in served]
    if unknown:
        raise EvalError(f"variant(s) {', '.join(unknown)} not served at {endpoint}; it serves {', '.join(served)}")

    from tqdm.auto import tqdm

    backend = open_backend(api, endpoint, headers)
    meter = RunMeter(found and found._target)  # what the run costs on the endpoint (issue 18)

    def run(item: Prompt, variant: str) -> Row:
        row = Row(item.prompt, variant, None, item.expected, None, None, group=item.group)
        t0 = time.perf_counter()
        try:
            row.answer, row.tokens = backend.ask(item.prompt, variant, max_new_tokens, temperature)
        except Exception as e:  # one failed prompt is reported in its row; the rest go on
            row.error = f"{type(e).__name__}: {e}"
            row.match = None if item.expected is None else False
            return row
        finally:
            row.latency_s = time.perf_counter() - t0
        row.words = len(row.answer.split()) if isinstance(row.answer, str) else None
        if item.expected is not None or not builtin:
            try:
                verdict = score(row.answer or "", item.expected)
                row.match = None if verdict is None else bool(verdict)
            except Exception as e:  # a user scorer's bug: that row says so, the answers are kept
                row.error = f"scoring failed: {type(e).__name__}: {e}"
        return row

    jobs = [(item, v) for item in items for v in variants]
    rows: dict[int, Row] = {}
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="aitk-eval")
    bar = tqdm(total=len(jobs), desc="evaluating", unit="answer", disable=not progress)
    try:
        pending: dict[Future, int] = {pool.submit(run, item, v): i for i, (item, v) in enumerate(jobs)}
        while pending:
            # a timeout, so an interrupt is seen promptly whatever the platform's lock semantics
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                rows[pending.pop(fut)] = fut.result()
            if done:
                bar.update(len(done))
                bar.set_postfix_str(progress_note(rows.values(), variants), refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        backend.cancel()
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:
            bar.set_postfix_str(f"interrupted: kept {len(rows)} of {len(jobs)} answers", refresh=False)
        bar.close()
    result = EvalResult([rows[i] for i in sorted(rows)], variants, endpoint, interrupted, planned=len(jobs),
                        extra={"api": api, "max_new_tokens": max_new_tokens, "temperature": temperature},
                        cost=meter.stop(answered=any(r.error is None for r in rows.values())))
    if out is not None:
        result.save(out)
    return result
