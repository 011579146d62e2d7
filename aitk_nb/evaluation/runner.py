"""`evaluate`: every prompt against every variant, `concurrency` requests in flight, with a progress
bar, after making sure the endpoint is up (woken when scaled to zero). A 502/503/504 from the ingress
is retried with backoff (its Retry-After honoured); a failed answer is kept apart from the scored
ones; when the endpoint stops answering the run stops sending, keeps what it has and says why; an
interrupt keeps the answers received. `resume` (`EvalResult.retry()`) sends only what is missing."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterable

from ..cost import RunMeter
from ..errors import EvalError
from ..invocation import command
from .backends import APIS, busy, open_backend, served_by
from .prompts import SCORERS, Prompt, Scorer, parse_prompts
from .result import EvalResult
from .stats import Row, progress_note

FAILURES_IN_A_ROW = 3  # failed answers in a row after which the endpoint's health is checked; not answering: stop
BUSY_ATTEMPTS = 6  # tries of one answer while the ingress answers 502/503/504
BUSY_WAIT_MAX = 60.0  # longest wait between them (Retry-After included)


def evaluate(prompts: str | Iterable[str | dict | Prompt], *, variants: list[str] | str | None = None,
             endpoint: str | None = None, project: str | os.PathLike | None = None, concurrency: int = 4,
             max_new_tokens: int = 64, temperature: float = 0.0, scoring: str | Scorer = "contains",
             api: str = "gradio", api_key: str | None = None, out: str | os.PathLike | None = None,
             progress: bool = True, samples: int = 1, wake_timeout: float | None = None) -> EvalResult:
    """Run each prompt against each variant, `concurrency` requests at a time.

    `prompts`: a cell body or a list (strings, or dicts/`Prompt`s with "prompt", "expected", "group").
    `variants` defaults to base plus every adapter the endpoint serves; `temperature` 0 is greedy.
    `scoring`: "contains", "exact" or a function (answer, expected) -> bool (called for every answer;
    expected may be None). `api`: "gradio" (the Gradio API, text only) or "openai" (the OpenAI-compatible
    route, which also reports each answer's token count). `samples`: with temperature > 0, ask each
    prompt N times (the report gives the mean accuracy and its interval).

    First the endpoint is made to answer: scaled to zero, it is woken and waited for (up to
    `wake_timeout` seconds; default the target's startup limit), a failed replica is reported as such.
    Accuracy counts the answers received; failed answers are counted apart and the result is marked
    incomplete; after several failures in a row with the endpoint not answering, nothing more is sent.
    `result.retry()` sends the missing answers again. A progress bar counts the answers; an interrupt
    (Kernel > Interrupt, Ctrl-C) stops the evaluation and keeps the answers already received."""
    items = parse_prompts(prompts)
    score = _scorer(scoring)
    if api not in APIS:
        raise EvalError(f"api {api!r} is unknown; use one of {', '.join(APIS)}")
    _check_counts(concurrency, samples, temperature, wake_timeout)
    conn = _Connection.open(endpoint, project, api_key, wake_timeout, progress)
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    variants = list(variants or conn.served)
    unknown = [v for v in variants if v not in conn.served]
    if unknown:
        raise EvalError(f"variant(s) {', '.join(unknown)} not served at {conn.url}; it serves {', '.join(conn.served)}")
    settings = {"api": api, "max_new_tokens": max_new_tokens, "temperature": temperature, "concurrency": concurrency,
                "scoring": scoring if isinstance(scoring, str) else "custom",
                # the project found (absolute), so a resume from another folder finds the same endpoint
                "project": str(conn.app.project.root.resolve()) if conn.app is not None else None,
                "endpoint_given": endpoint is not None}
    result = EvalResult([], variants, conn.url, extra=settings, prompts=items, samples=samples)
    result.planned = len(result.jobs())
    result._scorer = scoring  # a function is not saved with the result; a retry in this kernel reuses it
    _send(result, result.jobs(), conn, score, isinstance(scoring, str), concurrency, progress)
    if out is not None:
        saved = result.save(out)
        if saved.suffix.lower() != ".csv":
            result.source = saved  # a retry saves the merged result back into it
    return result


def resume(result: EvalResult, *, scoring: str | Scorer | None = None, api_key: str | None = None,
           concurrency: int | None = None, wake_timeout: float | None = None, progress: bool = True) -> EvalResult:
    """Send the answers of `result` that failed or were never sent, with its settings, and merge them
    into it (saved back into the file it was loaded from)."""
    if not result.prompts:
        raise EvalError("this result does not carry its prompts (made by an older aitk-nb?); run the evaluation again")
    settings = result.extra
    chosen = scoring or getattr(result, "_scorer", None) or settings.get("scoring", "contains")
    if chosen == "custom":
        raise EvalError("this evaluation was scored by a function, which is not saved with it; pass it again: "
                        "result.retry(scoring=fn)")
    score = _scorer(chosen)
    concurrency = concurrency or int(settings.get("concurrency") or 4)
    _check_counts(concurrency, result.samples, float(settings.get("temperature") or 0.0), wake_timeout)
    todo = result.missing()
    if todo:
        given = result.endpoint if settings.get("endpoint_given") else None
        conn = _Connection.open(given, settings.get("project"), api_key, wake_timeout, progress)
        unknown = [v for v in result.variants if v not in conn.served]
        if unknown:
            raise EvalError(f"variant(s) {', '.join(unknown)} are no longer served at {conn.url} (it serves "
                            f"{', '.join(conn.served)}); deploy them again, then retry")
        result.interrupted, result.stopped = False, None
        _send(result, todo, conn, score, isinstance(chosen, str), concurrency, progress)
    if result.source is not None:
        result.save(result.source)
    return result


def _scorer(scoring: str | Scorer) -> Scorer:
    score = SCORERS.get(scoring) if isinstance(scoring, str) else scoring
    if score is None or not callable(score):
        raise EvalError(f"scoring {scoring!r} is unknown; use one of {', '.join(SCORERS)} or a function")
    return score


def _check_counts(concurrency: int, samples: int, temperature: float, wake_timeout: float | None) -> None:
    if concurrency < 1:
        raise EvalError("concurrency must be at least 1")
    if samples < 1:
        raise EvalError(f"--samples {samples}: the number of times each prompt is asked, 1 or more")
    if samples > 1 and temperature <= 0:
        raise EvalError(f"--samples {samples} asks each prompt several times, but temperature 0 answers the same "
                        "each time; pass --temperature above 0 (e.g. 0.7), or leave --samples out")
    if wake_timeout is not None and wake_timeout <= 0:
        raise EvalError(f"--wake-timeout {wake_timeout}: seconds to wait for the endpoint, more than 0")


class _Connection:
    """The endpoint an evaluation talks to: its URL, headers, what it serves, and (from a project)
    the endpoint object whose state explains a failure."""

    def __init__(self, url: str, headers: dict | None, served: list[str], app: Any = None):
        self.url, self.headers, self.served, self.app = url, headers, served, app
        self.verify = app._target.http_verify if app is not None else True

    @classmethod
    def open(cls, endpoint: str | None, project: Any, api_key: str | None, wake_timeout: float | None,
             progress: bool) -> "_Connection":
        from .wake import wait_for_url, wake

        app = None
        if endpoint is None:
            from ..verbs import endpoint as _endpoint

            app = _endpoint(project=project, fetch=False)
            endpoint = app.url
            api_key = api_key or app.api_key()
        api_key = api_key or os.environ.get("AITK_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        if app is not None:
            health = wake(app, wake_timeout, progress=progress)
        else:
            health = wait_for_url(endpoint, headers, wake_timeout, progress=progress)
        return cls(endpoint, headers, served_by(health), app)

    def state(self) -> str:
        """The endpoint's state in words, as `status` reads it (for a report of what happened)."""
        if self.app is None:
            return f"no project target to ask; see {command('status')}"
        try:
            self.app.fetch()
        except Exception as e:  # the report of a failure must not fail: say what could not be read
            return f"its state could not be read ({type(e).__name__}: {e})"
        return self.app._state_words()

    def answers(self) -> bool:
        """Whether the health route answers 200 now."""
        import httpx

        from inference_app.contract import HEALTH_ROUTE

        try:
            return httpx.get(self.url.rstrip("/") + HEALTH_ROUTE, timeout=5.0, verify=self.verify).status_code == 200
        except httpx.TransportError:
            return False


def _send(result: EvalResult, jobs: list[tuple[Prompt, str, int]], conn: _Connection, score: Scorer, builtin: bool,
          concurrency: int, progress: bool) -> None:
    """Ask `jobs` and merge the answers into `result` (marking it interrupted or stopped as it goes)."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set, wait_exponential
    from tqdm.auto import tqdm

    settings = result.extra
    backend = open_backend(settings["api"], conn.url, conn.headers, conn.verify)
    stop = threading.Event()
    meter = RunMeter(conn.app._target if conn.app is not None else None)  # what the run costs on the endpoint (issue 18)
    backoff = wait_exponential(multiplier=1, min=1, max=BUSY_WAIT_MAX)

    def wait_busy(state) -> float:
        after = busy(state.outcome.exception())
        return min(after, BUSY_WAIT_MAX) if after else backoff(state)

    def ask(item: Prompt, variant: str):
        for attempt in Retrying(retry=retry_if_exception(lambda e: busy(e) is not None), wait=wait_busy, reraise=True,
                                stop=stop_after_attempt(BUSY_ATTEMPTS) | stop_when_event_set(stop)):
            with attempt:
                return backend.ask(item.prompt, variant, settings["max_new_tokens"], settings["temperature"])

    def run(item: Prompt, variant: str, sample: int) -> Row:
        row = Row(item.prompt, variant, None, item.expected, None, None, group=item.group, sample=sample)
        t0 = time.perf_counter()
        try:
            row.answer, row.tokens = ask(item, variant)
        except Exception as e:  # one failed answer is reported in its row, apart from the scored ones
            row.error = f"{type(e).__name__}: {e}"
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

    rows: list[Row] = []
    in_a_row, first_failure = 0, None
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="aitk-eval")
    bar = tqdm(total=len(jobs), desc="evaluating", unit="answer", disable=not progress)
    try:
        pending: dict[Future, int] = {pool.submit(run, *job): i for i, job in enumerate(jobs)}
        while pending:
            # a timeout, so an interrupt is seen promptly whatever the platform's lock semantics
            done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.pop(fut)
                if fut.cancelled():
                    continue
                row = fut.result()
                rows.append(row)
                if row.error is None or row.error.startswith("scoring failed"):
                    in_a_row, first_failure = 0, None
                else:
                    in_a_row += 1
                    first_failure = first_failure or dt.datetime.now()
            if done:
                bar.update(len(done))
                bar.set_postfix_str(progress_note(rows, result.variants), refresh=False)
            if in_a_row >= FAILURES_IN_A_ROW and not stop.is_set():
                if conn.answers():
                    in_a_row, first_failure = 0, None  # the endpoint is up: these prompts failed on their own
                else:
                    stop.set()  # nothing more is sent; what is in flight ends (or fails) by itself
                    for fut in pending:
                        fut.cancel()
                    last = next(r.error for r in reversed(rows) if r.error)
                    result.stopped = (f"the endpoint stopped answering at {first_failure:%H:%M:%S} ({in_a_row} failed "
                                      f"answers in a row, the last: {last[:160]}); nothing more was sent. "
                                      f"The endpoint now: {conn.state()}")
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        backend.cancel()
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:
            bar.set_postfix_str(f"interrupted: kept {len(rows)} of {len(jobs)} answers", refresh=False)
        elif result.stopped:
            bar.set_postfix_str(f"stopped: the endpoint stopped answering; kept {len(rows)} of {len(jobs)}", refresh=False)
        if hasattr(bar, "container") and (interrupted or result.stopped):
            bar.disp(bar_style="danger")
        bar.close()
    result.interrupted = result.interrupted or interrupted
    result.merge(rows)
    cost = meter.stop(answered=any(r.error is None for r in rows))
    result.cost = cost if result.cost is None or cost is None else result.cost.plus(cost)
