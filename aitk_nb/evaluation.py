"""Evaluate prompts against the deployed variants (base and adapters): through the Gradio API
(gradio_client, the default) or the OpenAI-compatible route, concurrently; a report with a table,
a per-variant (and per-group) summary and a plot, exported to CSV/JSONL or a pandas DataFrame."""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import statistics
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable

from inference_app.contract import HEALTH_ROUTE, served_variants

from .errors import EvalError

# (answer, expected) -> bool, or None for "not scored". A user function is called for every answer,
# expected or not (expected is then None); the built-in modes score only prompts with an expected answer.
Scorer = Callable[[str, "str | None"], "bool | None"]
SCORERS: dict[str, Scorer] = {
    "contains": lambda answer, expected: expected.strip().lower() in answer.lower(),
    "exact": lambda answer, expected: answer.strip().lower() == expected.strip().lower(),
}
APIS = ("gradio", "openai")


@dataclass(frozen=True)
class Prompt:
    prompt: str
    expected: str | None = None
    group: str | None = None  # e.g. "facts" vs "controls": the summary shows accuracy per group


def parse_prompts(source: str | Iterable[str | dict | Prompt]) -> list[Prompt]:
    """Prompts from a cell body (one per line, or JSONL lines {"prompt", "expected"?, "group"?}),
    or from a list of strings, dicts or `Prompt`s."""
    items = source.splitlines() if isinstance(source, str) else list(source)
    out = []
    for n, item in enumerate(items, 1):
        if isinstance(item, Prompt):
            out.append(item)
            continue
        if isinstance(item, str):
            line = item.strip()
            if not line or line.startswith("#"):
                continue
            if not line.startswith("{"):
                out.append(Prompt(line))
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise EvalError(f"prompt line {n} is not valid JSON ({e.msg}); write one prompt per line "
                                'or {"prompt": ..., "expected": ...}') from None
        if not isinstance(item, dict) or not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise EvalError(f'prompt line {n} needs a non-empty "prompt" string')
        for key in ("expected", "group"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise EvalError(f'prompt line {n}: "{key}" must be a string')
        out.append(Prompt(item["prompt"], item.get("expected"), item.get("group") or None))
    if not out:
        raise EvalError("no prompts given; put one prompt per line in the cell body")
    return out


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
    error: str | None = None


COLUMNS = [f.name for f in fields(Row)]


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


@dataclass(repr=False)
class EvalResult:
    rows: list[Row]
    variants: list[str]
    endpoint: str
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    planned: int | None = None  # answers asked for (prompts x variants); fewer rows when interrupted

    # -- numbers ---------------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        """What answer sizes are counted in: "tokens" when the server reported them, else "words"."""
        return "tokens" if any(r.tokens is not None for r in self.rows) else "words"

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.rows if r.group))

    def accuracy(self, variant: str, group: str | None = None) -> float | None:
        scored = [r.match for r in self.rows
                  if r.variant == variant and r.match is not None and (group is None or r.group == group)]
        return sum(scored) / len(scored) if scored else None

    def _rate(self, rows: list[Row]) -> float | None:
        """Answer size per second of latency, over the answered rows (per request, not aggregate)."""
        done = [r for r in rows if r.error is None and getattr(r, self.unit) is not None and r.latency_s]
        seconds = sum(r.latency_s for r in done)
        return round(sum(getattr(r, self.unit) for r in done) / seconds, 1) if seconds else None

    def summary(self) -> list[dict]:
        """Per variant: answers, accuracy, latency p50/p95, tokens/s (or words/s), errors."""
        out = []
        for v in self.variants:
            rows = [r for r in self.rows if r.variant == v]
            lat = sorted(r.latency_s for r in rows if r.latency_s is not None and r.error is None)
            acc = self.accuracy(v)
            out.append({"variant": v, "answers": len(rows),
                        "accuracy": None if acc is None else round(acc, 3),
                        "latency_p50_s": None if not lat else round(_pct(lat, 50), 3),
                        "latency_p95_s": None if not lat else round(_pct(lat, 95), 3),
                        f"{self.unit}_per_s": self._rate(rows),
                        "errors": sum(r.error is not None for r in rows)})
        return out

    def group_summary(self) -> list[dict]:
        """Accuracy per (group, variant), for prompts that carry a "group"."""
        return [{"group": g, "variant": v, "answers": sum(r.group == g and r.variant == v for r in self.rows),
                 "accuracy": None if (a := self.accuracy(v, g)) is None else round(a, 3)}
                for g in self.groups for v in self.variants]

    # -- export ----------------------------------------------------------------------------------
    def to_pandas(self, kind: str = "rows"):
        """A pandas DataFrame: "rows" (one per answer), "summary" (per variant) or "groups"."""
        import pandas as pd

        if kind == "rows":
            return pd.DataFrame([asdict(r) for r in self.rows], columns=COLUMNS)
        if kind == "summary":
            return pd.DataFrame(self.summary()).set_index("variant")
        if kind == "groups":
            return pd.DataFrame(self.group_summary(), columns=["group", "variant", "answers", "accuracy"])
        raise ValueError(f"kind must be 'rows', 'summary' or 'groups', not {kind!r}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write every row as CSV (.csv) or JSON lines (anything else, e.g. .jsonl)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(r) for r in self.rows]
        if path.suffix.lower() == ".csv":
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(rows)
        else:
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path

    # -- display ---------------------------------------------------------------------------------
    def _by_prompt(self) -> list[tuple[str, str | None, dict[str, Row]]]:
        table: dict[str, tuple[str | None, dict[str, Row]]] = {}
        for r in self.rows:
            table.setdefault(r.prompt, (r.expected, {}))[1][r.variant] = r
        return [(p, e, rs) for p, (e, rs) in table.items()]

    @staticmethod
    def _mark(r: Row | None) -> str:
        if r is None:
            return "(not run)"
        if r.error:
            return f"ERROR: {r.error}"
        tick = {True: "✓ ", False: "✗ ", None: ""}[r.match]
        return f"{tick}{r.answer}"

    def _status(self) -> str:
        if not self.interrupted:
            return ""
        return f"interrupted: {len(self.rows)} of {self.planned or '?'} answers received"

    def __str__(self) -> str:
        rate = f"{self.unit}/s"
        lines = [f"Evaluation at {self.endpoint}" + (f" ({self._status()})" if self.interrupted else "")]
        lines.append(f"  {'variant':<20} {'accuracy':>8} {'p50 s':>7} {'p95 s':>7} {rate:>9} {'errors':>6}")
        for s in self.summary():
            lines.append(f"  {s['variant']:<20} {_fmt(s['accuracy'], '.0%'):>8} {_fmt(s['latency_p50_s'], '.2f'):>7} "
                         f"{_fmt(s['latency_p95_s'], '.2f'):>7} {_fmt(s[f'{self.unit}_per_s'], '.1f'):>9} {s['errors']:>6}")
        if self.groups:
            lines.append("  accuracy per group: " + "; ".join(
                f"{g}: " + ", ".join(f"{v} {_fmt(self.accuracy(v, g), '.0%')}" for v in self.variants)
                for g in self.groups))
        for prompt, expected, rows in self._by_prompt():
            lines.append(f"- {prompt}" + (f"  [expected: {expected}]" if expected else ""))
            for v in self.variants:
                answer = self._mark(rows.get(v)).replace("\n", " ")
                lines.append(f"    {v}: {answer[:160]}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def plot(self):
        """Accuracy (overall, and per group when prompts have groups) and latency (p50 bar, p95
        whisker) per variant, as a matplotlib Figure (no pyplot state, nothing shown by itself)."""
        from matplotlib.figure import Figure

        summary = self.summary()
        names = [s["variant"] for s in summary]
        colors = [_COLORS[i % len(_COLORS)] for i in range(len(names))]
        fig = Figure(figsize=(8.4, 2.7), dpi=100, layout="constrained")
        acc_ax, lat_ax = fig.subplots(1, 2, width_ratios=[1.4, 1])
        sets = ["all", *self.groups]
        width = 0.8 / len(names)
        for i, (name, color) in enumerate(zip(names, colors)):
            values = [self.accuracy(name, None if g == "all" else g) for g in sets]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(sets))]
            bars = acc_ax.bar(xs, [100 * (a or 0) for a in values], width * 0.92, color=color, label=name)
            acc_ax.bar_label(bars, labels=[_fmt(a, ".0%") for a in values], padding=2, fontsize=8)
        acc_ax.set_xticks(range(len(sets)), sets if self.groups else ["accuracy"])
        acc_ax.set_ylim(0, 118)
        acc_ax.set_ylabel("accuracy (%)")
        acc_ax.set_title("accuracy" + (" per group" if self.groups else ""), fontsize=10)
        acc_ax.legend(fontsize=8, frameon=False, loc="upper left", ncols=len(names))
        p50 = [s["latency_p50_s"] or 0 for s in summary]
        p95 = [s["latency_p95_s"] or 0 for s in summary]
        lat_ax.bar(names, p50, color=colors, width=0.6)
        lat_ax.errorbar(names, p50, yerr=[[0] * len(p50), [max(b - a, 0) for a, b in zip(p50, p95)]], fmt="none",
                        ecolor="#333", capsize=6)
        lat_ax.set_ylabel("latency (s)")
        lat_ax.set_title("latency: bar p50, whisker p95", fontsize=10)
        for ax in (acc_ax, lat_ax):
            ax.tick_params(axis="x", labelsize=9)
            ax.spines[["top", "right"]].set_visible(False)
        return fig

    def _plot_png(self) -> str | None:
        """The plot as base64 PNG, or None without matplotlib (the tables still show)."""
        try:
            fig = self.plot()
        except ImportError:
            return None
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return base64.b64encode(buf.getvalue()).decode("ascii")

    def _repr_html_(self) -> str:
        return _report_html(self)


_COLORS = ["#9aa0a6", "#1a73e8", "#e37400", "#188038", "#a142f4", "#d93025"]
_TH = "text-align:left;padding:4px 12px 4px 0;border-bottom:1px solid #ccc;white-space:nowrap"
_TD = "text-align:left;vertical-align:top;padding:3px 12px 3px 0"
_NUM = "text-align:right;vertical-align:top;padding:3px 12px 3px 0;font-variant-numeric:tabular-nums"


def _table(cls: str, head: list[str], rows: list[str]) -> str:
    ths = "".join(f"<th style='{_TH}'>{html.escape(h)}</th>" for h in head)
    return f"<table class='{cls}' style='border-collapse:collapse'><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _acc_cell(acc: float | None) -> str:
    """Accuracy as a number with a small bar under it."""
    if acc is None:
        return f"<td style='{_NUM}'>—</td>"
    return (f"<td style='{_NUM}'><b>{acc:.0%}</b><div style='background:#e8eaed;height:4px;width:60px;margin-left:auto'>"
            f"<div style='background:#188038;height:4px;width:{60 * acc:.0f}px'></div></div></td>")


def _report_html(r: EvalResult) -> str:
    e = html.escape
    unit = r.unit
    swatch = {v: _COLORS[i % len(_COLORS)] for i, v in enumerate(r.variants)}

    def variant(v: str) -> str:
        return (f"<span style='display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px;"
                f"background:{swatch.get(v, '#999')}'></span>{e(v)}")

    summary = _table("aitk-eval-summary", ["variant", "answers", "accuracy", "latency p50 (s)", "latency p95 (s)",
                                           f"{unit}/s", "errors"], [
        f"<tr><td style='{_TD};white-space:nowrap'><b>{variant(s['variant'])}</b></td><td style='{_NUM}'>{s['answers']}</td>"
        f"{_acc_cell(s['accuracy'])}<td style='{_NUM}'>{_fmt(s['latency_p50_s'], '.2f')}</td>"
        f"<td style='{_NUM}'>{_fmt(s['latency_p95_s'], '.2f')}</td><td style='{_NUM}'>{_fmt(s[f'{unit}_per_s'], '.1f')}</td>"
        f"<td style='{_NUM}{';color:#c62828' if s['errors'] else ''}'>{s['errors']}</td></tr>" for s in r.summary()])
    groups = ""
    if r.groups:
        groups = "<div style='margin-top:10px'><b>accuracy per group</b></div>" + _table(
            "aitk-eval-groups", ["group", *r.variants],
            [f"<tr><td style='{_TD}'>{e(g)}</td>" + "".join(_acc_cell(r.accuracy(v, g)) for v in r.variants) + "</tr>"
             for g in r.groups])
    png = r._plot_png()
    plot = (f"<img class='aitk-eval-plot' style='max-width:100%' alt='accuracy and latency per variant' "
            f"src='data:image/png;base64,{png}'/>" if png else "")

    detail = []
    for prompt, expected, rows in r._by_prompt():
        shown = [v for v in r.variants if v in rows] or [None]
        for i, v in enumerate(shown):
            row = rows.get(v) if v else None
            bg = "" if row is None or row.match is None else ("background:#e6f4ea;" if row.match else "background:#fce8e6;")
            mark = ("" if row is None or row.match is None else
                    "<span style='color:#1e7e34'>✓</span>" if row.match else "<span style='color:#c62828'>✗</span>")
            answer = ("(not run)" if row is None else f"ERROR: {row.error}" if row.error else (row.answer or ""))
            lead = ""
            if i == 0:
                group = f"<div style='color:#777;font-size:90%'>{e(row.group)}</div>" if row and row.group else ""
                lead = (f"<td style='{_TD};max-width:280px' rowspan='{len(shown)}'>{e(prompt)}{group}</td>"
                        f"<td style='{_TD}' rowspan='{len(shown)}'>{e(expected or '')}</td>")
            border = "border-top:1px solid #e0e0e0" if i == 0 else ""
            detail.append(
                f"<tr style='{border}'>{lead}<td style='{_TD};white-space:nowrap'>{variant(v or '')}</td>"
                f"<td style='{_TD};{bg}max-width:520px;padding-left:6px'>{e(answer)}</td>"
                f"<td style='{_TD};text-align:center'>{mark}</td><td style='{_NUM}'>{_fmt(row and row.latency_s, '.2f')}</td>"
                f"<td style='{_NUM}'>{_fmt(row and getattr(row, unit), 'd')}</td></tr>")
    table = _table("aitk-eval-detail", ["prompt", "expected", "variant", "answer", "match", "latency (s)", unit], detail)
    note = (f"<div style='background:#fff4e5;color:#a15c00;padding:4px 8px;margin:4px 0;border-radius:4px'>"
            f"<b>{e(r._status())}</b> — the table shows the answers received before the interrupt</div>"
            if r.interrupted else "")
    words = ("" if unit == "tokens" else "<div style='color:#666;font-size:90%;margin-top:4px'>words: whitespace-separated "
             "words of each answer (the Gradio API returns text only; <code>api=\"openai\"</code> reports tokens)</div>")
    return (f"<div class='aitk-eval'><h4 style='margin:4px 0 6px 0'>Evaluation at "
            f"<a href='{e(r.endpoint)}' target='_blank'>{e(r.endpoint)}</a></h4>{note}"
            f"<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start'>"
            f"<div>{summary}{groups}</div><div>{plot}</div></div>"
            f"<details open style='margin-top:8px'><summary style='cursor:pointer'><b>answers</b> ({len(r.rows)})</summary>"
            f"{table}</details>{words}</div>")


class _Gradio:
    """Answers through the Gradio API `/generate` (what the UI calls): text only."""

    def __init__(self, endpoint: str, headers: dict | None):
        from gradio_client import Client

        try:
            self.client = Client(endpoint, headers=headers, verbose=False, download_files=False, analytics_enabled=False)
        except Exception as e:  # gradio_client raises many types for an unreachable or foreign endpoint
            raise EvalError(f"cannot open the Gradio API at {endpoint} ({type(e).__name__}: {e}); "
                            "check `%aitk status`") from e
        self.jobs: set = set()
        self.lock = threading.Lock()

    def ask(self, prompt: str, variant: str, max_new_tokens: int, temperature: float) -> tuple[str, int | None]:
        job = self.client.submit(prompt, variant, max_new_tokens, temperature, 1.0, 50, api_name="/generate")
        with self.lock:
            self.jobs.add(job)
        try:
            return job.result(), None
        finally:
            with self.lock:
                self.jobs.discard(job)

    def cancel(self) -> None:
        """Stop what is still running on the server (the app stops generating when a job is cancelled)."""
        with self.lock:
            jobs = list(self.jobs)
        for job in jobs:
            try:
                job.cancel()
            except Exception:  # best effort: the interrupt has already been honoured
                pass


class _OpenAI:
    """Answers through `POST /v1/chat/completions` (not streamed): text and the completion's token count."""

    def __init__(self, endpoint: str, headers: dict | None):
        import httpx

        self.url = endpoint.rstrip("/") + "/v1/chat/completions"
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(600.0, connect=10.0))

    def ask(self, prompt: str, variant: str, max_new_tokens: int, temperature: float) -> tuple[str, int | None]:
        r = self.http.post(self.url, json={"model": variant, "messages": [{"role": "user", "content": prompt}],
                                           "max_tokens": max_new_tokens, "temperature": temperature, "top_p": 1.0})
        if r.status_code != 200:
            raise EvalError(f"HTTP {r.status_code}: {r.text[:300]}")
        body = r.json()
        return body["choices"][0]["message"]["content"], (body.get("usage") or {}).get("completion_tokens")

    def cancel(self) -> None:
        self.http.close()


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
    if endpoint is None:
        from .verbs import endpoint as _endpoint

        found = _endpoint(project=project, fetch=False)
        endpoint = found.url
        api_key = api_key or found.api_key()
    api_key = api_key or os.environ.get("AITK_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    served = _served_variants(endpoint, headers)
    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    variants = list(variants or served)
    unknown = [v for v in variants if v not in served]
    if unknown:
        raise EvalError(f"variant(s) {', '.join(unknown)} not served at {endpoint}; it serves {', '.join(served)}")

    from tqdm.auto import tqdm

    backend = _Gradio(endpoint, headers) if api == "gradio" else _OpenAI(endpoint, headers)

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
                bar.set_postfix_str(_progress_note(rows.values(), variants), refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        backend.cancel()
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
        if interrupted:
            bar.set_postfix_str(f"interrupted: kept {len(rows)} of {len(jobs)} answers", refresh=False)
        bar.close()
    result = EvalResult([rows[i] for i in sorted(rows)], variants, endpoint, interrupted, planned=len(jobs),
                        extra={"api": api, "max_new_tokens": max_new_tokens, "temperature": temperature})
    if out is not None:
        result.save(out)
    return result


def _progress_note(rows: Iterable[Row], variants: list[str]) -> str:
    """Matches so far per variant, for the progress bar: "base 2/6, demo-facts 6/6"."""
    rows = list(rows)
    parts = []
    for v in variants:
        scored = [r.match for r in rows if r.variant == v and r.match is not None]
        if scored:
            parts.append(f"{v} {sum(scored)}/{len(scored)}")
    return ", ".join(parts)


def _served_variants(endpoint: str, headers: dict | None) -> list[str]:
    import httpx

    try:
        r = httpx.get(endpoint.rstrip("/") + HEALTH_ROUTE, headers=headers, timeout=10.0)
    except httpx.TransportError as e:
        raise EvalError(f"cannot reach {endpoint} ({e}); is it deployed and running? see `%aitk status`") from None
    if r.status_code != 200:
        raise EvalError(f"{endpoint}/health answered {r.status_code}; the app is not ready, see `%aitk status` and `%aitk logs`")
    body = r.json()
    # the server lists what it serves; one deployed by an earlier version lists its adapters only
    return body.get("variants") or served_variants(body.get("adapters", []), bool(body.get("merged_adapter")))
