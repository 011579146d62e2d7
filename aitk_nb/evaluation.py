"""Evaluate prompts against the deployed variants (base and adapters) through gradio_client."""
from __future__ import annotations

import csv
import html
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import EvalError

Scorer = Callable[[str, str], bool]
SCORERS: dict[str, Scorer] = {
    "contains": lambda answer, expected: expected.strip().lower() in answer.lower(),
    "exact": lambda answer, expected: answer.strip().lower() == expected.strip().lower(),
}


@dataclass(frozen=True)
class Prompt:
    prompt: str
    expected: str | None = None


def parse_prompts(source: str | Iterable[str | dict | Prompt]) -> list[Prompt]:
    """Prompts from a cell body (one per line, or JSONL lines with prompt/expected), or from a list."""
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
        expected = item.get("expected")
        if expected is not None and not isinstance(expected, str):
            raise EvalError(f'prompt line {n}: "expected" must be a string')
        out.append(Prompt(item["prompt"], expected))
    if not out:
        raise EvalError("no prompts given; put one prompt per line in the cell body")
    return out


@dataclass
class Row:
    prompt: str
    variant: str
    answer: str | None
    expected: str | None
    match: bool | None
    latency_s: float | None
    error: str | None = None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@dataclass(repr=False)
class EvalResult:
    rows: list[Row]
    variants: list[str]
    endpoint: str
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, variant: str) -> float | None:
        scored = [r.match for r in self.rows if r.variant == variant and r.match is not None]
        return sum(scored) / len(scored) if scored else None

    def summary(self) -> list[dict]:
        out = []
        for v in self.variants:
            rows = [r for r in self.rows if r.variant == v]
            lat = sorted(r.latency_s for r in rows if r.latency_s is not None and r.error is None)
            acc = self.accuracy(v)
            out.append({"variant": v, "prompts": len(rows),
                        "accuracy": None if acc is None else round(acc, 3),
                        "latency_p50_s": None if not lat else round(_pct(lat, 50), 3),
                        "latency_p95_s": None if not lat else round(_pct(lat, 95), 3),
                        "errors": sum(r.error is not None for r in rows)})
        return out

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows])

    def save(self, path: str | os.PathLike) -> Path:
        """Write every row as CSV (.csv) or JSON lines (anything else)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(r) for r in self.rows]
        if path.suffix.lower() == ".csv":
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=list(Row.__dataclass_fields__))
                w.writeheader()
                w.writerows(rows)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
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

    def __str__(self) -> str:
        lines = [f"Evaluation at {self.endpoint}" + (" (interrupted: partial results)" if self.interrupted else "")]
        lines.append(f"  {'variant':<20} {'accuracy':>8} {'p50 s':>7} {'p95 s':>7} {'errors':>6}")
        for s in self.summary():
            acc = "—" if s["accuracy"] is None else f"{s['accuracy']:.0%}"
            p50 = "—" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.2f}"
            p95 = "—" if s["latency_p95_s"] is None else f"{s['latency_p95_s']:.2f}"
            lines.append(f"  {s['variant']:<20} {acc:>8} {p50:>7} {p95:>7} {s['errors']:>6}")
        for prompt, expected, rows in self._by_prompt():
            lines.append(f"- {prompt}" + (f"  [expected: {expected}]" if expected else ""))
            for v in self.variants:
                answer = self._mark(rows.get(v)).replace("\n", " ")
                lines.append(f"    {v}: {answer[:160]}")
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        e = html.escape
        head = "".join(f"<th>{e(h)}</th>" for h in ("variant", "accuracy", "latency p50 (s)", "latency p95 (s)", "errors"))
        body = ""
        for s in self.summary():
            acc = "—" if s["accuracy"] is None else f"{s['accuracy']:.0%}"
            body += (f"<tr><td>{e(s['variant'])}</td><td>{acc}</td><td>{s['latency_p50_s'] or '—'}</td>"
                     f"<td>{s['latency_p95_s'] or '—'}</td><td>{s['errors']}</td></tr>")
        summary = f"<table class='aitk-eval-summary'><tr>{head}</tr>{body}</table>"
        vhead = "".join(f"<th>{e(v)}</th>" for v in self.variants)
        detail = ""
        for prompt, expected, rows in self._by_prompt():
            cells = ""
            for v in self.variants:
                r = rows.get(v)
                color = "" if r is None or r.match is None else (" style='background:#e6f4ea'" if r.match else " style='background:#fce8e6'")
                cells += f"<td{color}>{e(self._mark(r))}</td>"
            detail += f"<tr><td>{e(prompt)}</td><td>{e(expected or '')}</td>{cells}</tr>"
        table = f"<table class='aitk-eval-detail'><tr><th>prompt</th><th>expected</th>{vhead}</tr>{detail}</table>"
        note = "<p><b>Interrupted:</b> partial results.</p>" if self.interrupted else ""
        return f"<div class='aitk-eval'><b>Evaluation at {e(self.endpoint)}</b>{note}{summary}{table}</div>"


def evaluate(prompts: str | Iterable[str | dict | Prompt], *, variants: list[str] | str | None = None,
             endpoint: str | None = None, project: str | os.PathLike | None = None, concurrency: int = 4,
             max_new_tokens: int = 64, temperature: float = 0.0, scoring: str | Scorer = "contains",
             api_key: str | None = None, out: str | os.PathLike | None = None, progress: bool = True) -> EvalResult:
    """Run each prompt against each variant through the endpoint's Gradio API (`/generate`).

    `variants` defaults to base plus every adapter the endpoint serves; `temperature` 0 is greedy;
    `scoring` is "contains", "exact" or a function (answer, expected) -> bool. An interrupt keeps the
    answers already received."""
    items = parse_prompts(prompts)
    score = SCORERS.get(scoring) if isinstance(scoring, str) else scoring
    if score is None:
        raise EvalError(f"scoring {scoring!r} is unknown; use one of {', '.join(SCORERS)} or a function")
    if concurrency < 1:
        raise EvalError("concurrency must be at least 1")
    if endpoint is None:
        from .verbs import endpoint as _endpoint

        found = _endpoint(project=project)
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

    from gradio_client import Client
    from tqdm.auto import tqdm

    try:
        client = Client(endpoint, headers=headers, verbose=False, download_files=False, analytics_enabled=False)
    except Exception as e:  # gradio_client raises many types for an unreachable or foreign endpoint
        raise EvalError(f"cannot open the Gradio API at {endpoint} ({type(e).__name__}: {e}); check `%aitk status`") from e

    def run(item: Prompt, variant: str) -> Row:
        t0 = time.perf_counter()
        try:
            answer = client.predict(item.prompt, variant, max_new_tokens, temperature, 1.0, 50, api_name="/generate")
        except Exception as e:  # one failed prompt is reported in its row; the rest go on
            return Row(item.prompt, variant, None, item.expected, None if item.expected is None else False,
                       time.perf_counter() - t0, f"{type(e).__name__}: {e}")
        match = None if item.expected is None else bool(score(answer, item.expected))
        return Row(item.prompt, variant, answer, item.expected, match, time.perf_counter() - t0)

    jobs = [(item, v) for item in items for v in variants]
    rows: dict[int, Row] = {}
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        futures = {pool.submit(run, item, v): i for i, (item, v) in enumerate(jobs)}
        with tqdm(total=len(jobs), desc="evaluating", unit="answer", disable=not progress) as bar:
            for fut in as_completed(futures):
                rows[futures[fut]] = fut.result()
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    result = EvalResult([rows[i] for i in sorted(rows)], variants, endpoint, interrupted)
    if out is not None:
        result.save(out)
    return result


def _served_variants(endpoint: str, headers: dict | None) -> list[str]:
    import httpx

    try:
        r = httpx.get(endpoint.rstrip("/") + "/health", headers=headers, timeout=10.0)
    except httpx.TransportError as e:
        raise EvalError(f"cannot reach {endpoint} ({e}); is it deployed and running? see `%aitk status`") from None
    if r.status_code != 200:
        raise EvalError(f"{endpoint}/health answered {r.status_code}; the app is not ready, see `%aitk status` and `%aitk logs`")
    return ["base", *r.json().get("adapters", [])]
