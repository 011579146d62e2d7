"""The evaluation report as text, as HTML (tables, a bar under each accuracy, every answer) and as a
plot (matplotlib, imported only when drawn)."""
from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

from ..invocation import command
from .significance import mean_accuracy
from .stats import Row

if TYPE_CHECKING:
    from .result import EvalResult


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _interval(found: tuple[float, float, float] | None) -> str:
    return "—" if found is None else f"{found[0]:.0%} [{found[1]:.0%}–{found[2]:.0%}]"


def by_prompt(rows: list[Row]) -> list[tuple[str, str | None, dict[str, Row]]]:
    """(prompt, expected, {variant: row}) in the order the prompts came."""
    table: dict[str, tuple[str | None, dict[str, Row]]] = {}
    for r in rows:
        table.setdefault(r.prompt, (r.expected, {}))[1][r.variant] = r
    return [(p, e, rs) for p, (e, rs) in table.items()]


def _mark(r: Row | None) -> str:
    if r is None:
        return "(not run)"
    if r.error:
        return f"ERROR: {r.error}"
    tick = {True: "✓ ", False: "✗ ", None: ""}[r.match]
    return f"{tick}{r.answer}"


def status_note(r: EvalResult) -> str:
    """"" for a complete run; else what is missing ("incomplete: 9 of 24 answers received, 15 failed")."""
    if r.complete:
        return ""
    received = len(r.received)
    failed_rows = sum(row.error is not None for row in r.rows)
    unsent = (r.planned - len(r.rows)) if r.planned is not None else None
    parts = [f"{received} of {r.planned or '?'} answers received"]
    if failed_rows:
        parts.append(f"{failed_rows} failed")
    if unsent:
        parts.append(f"{unsent} not sent")
    word = "interrupted" if r.interrupted else "incomplete"
    note = f"{word}: {', '.join(parts)}"
    return f"{note}; {r.stopped}" if r.stopped else note


def next_step(r: EvalResult) -> str:
    """What to do about an incomplete run."""
    if r.complete:
        return ""
    saved = f" (or {command('eval --resume ' + str(r.source))})" if r.source else ""
    return (f"accuracy counts the {len(r.received)} answers received; send the rest with result.retry(){saved}, "
            f"after {command('status')} shows the endpoint up")


def comparison_lines(r: EvalResult) -> list[str]:
    """One line per adapter against base (and per group), or nothing without base and an adapter."""
    if "base" not in r.variants or len(r.variants) < 2:
        return []
    return [c.line() for c in r.comparisons()]


def text(r: EvalResult) -> str:
    """The report as text: the per-variant table, accuracy per group, each adapter against base, then
    every answer."""
    rate = f"{r.unit}/s"
    lines = [f"Evaluation at {r.endpoint}" + (f" ({status_note(r)})" if not r.complete else "")]
    if r.cost is not None:
        lines.append(f"  run cost: {r.cost}")
    lines.append(f"  {'variant':<20} {'accuracy':>8} {'answers':>7} {'failed':>6} {'p50 s':>7} {'p95 s':>7} {rate:>9}")
    for s in r.summary():
        lines.append(f"  {s['variant']:<20} {_fmt(s['accuracy'], '.0%'):>8} {s['answers']:>7} {s['failed']:>6} "
                     f"{_fmt(s['latency_p50_s'], '.2f'):>7} {_fmt(s['latency_p95_s'], '.2f'):>7} "
                     f"{_fmt(s[f'{r.unit}_per_s'], '.1f'):>9}")
    if r.samples > 1:
        lines.append(f"  mean accuracy over {r.samples} samples per prompt (95% CI over prompts): " + ", ".join(
            f"{v} {_interval(mean_accuracy(r.rows, v))}" for v in r.variants))
    if r.groups:
        failed = {(g["group"], g["variant"]): g["failed"] for g in r.group_summary()}
        lines.append("  accuracy per group: " + "; ".join(
            f"{g}: " + ", ".join(f"{v} {_fmt(r.accuracy(v, g), '.0%')}" + (f" ({failed[g, v]} failed)" if failed.get((g, v)) else "")
                                 for v in r.variants)
            for g in r.groups))
    lines += [f"  {line}" for line in comparison_lines(r)]
    if not r.complete:
        lines.append(f"  {next_step(r)}")
    for prompt, expected, rows in by_prompt(r.rows):
        lines.append(f"- {prompt}" + (f"  [expected: {expected}]" if expected else ""))
        for v in r.variants:
            answer = _mark(rows.get(v)).replace("\n", " ")
            lines.append(f"    {v}: {answer[:160]}")
    return "\n".join(lines)


def plot(r: EvalResult):
    """Accuracy (overall, and per group when prompts have groups) and latency (p50 bar, p95
    whisker) per variant, as a matplotlib Figure (no pyplot state, nothing shown by itself)."""
    from matplotlib.figure import Figure

    summary = r.summary()
    names = [s["variant"] for s in summary]
    colors = [_COLORS[i % len(_COLORS)] for i in range(len(names))]
    fig = Figure(figsize=(8.4, 2.7), dpi=100, layout="constrained")
    acc_ax, lat_ax = fig.subplots(1, 2, width_ratios=[1.4, 1])
    sets = ["all", *r.groups]
    width = 0.8 / len(names)
    for i, (name, color) in enumerate(zip(names, colors)):
        values = [r.accuracy(name, None if g == "all" else g) for g in sets]
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(sets))]
        bars = acc_ax.bar(xs, [100 * (a or 0) for a in values], width * 0.92, color=color, label=name)
        acc_ax.bar_label(bars, labels=[_fmt(a, ".0%") for a in values], padding=2, fontsize=8)
    acc_ax.set_xticks(range(len(sets)), sets if r.groups else ["accuracy"])
    acc_ax.set_ylim(0, 118)
    acc_ax.set_ylabel("accuracy (%)")
    acc_ax.set_title("accuracy" + (" per group" if r.groups else ""), fontsize=10)
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


def plot_png(r: EvalResult) -> str | None:
    """The plot as base64 PNG, or None without matplotlib (the tables still show)."""
    try:
        fig = plot(r)
    except ImportError:
        return None
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


_COLORS = ["#9aa0a6", "#1a73e8", "#e37400", "#188038", "#a142f4", "#d93025"]
_TH = "text-align:left;padding:4px 12px 4px 0;border-bottom:1px solid #ccc;white-space:nowrap"
_TD = "text-align:left;vertical-align:top;padding:3px 12px 3px 0"
_NUM = "text-align:right;vertical-align:top;padding:3px 12px 3px 0;font-variant-numeric:tabular-nums"


def _table(cls: str, head: list[str], rows: list[str]) -> str:
    ths = "".join(f"<th style='{_TH}'>{html.escape(h)}</th>" for h in head)
    return f"<table class='{cls}' style='border-collapse:collapse'><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _acc_cell(acc: float | None, failed: int = 0) -> str:
    """Accuracy as a number with a small bar under it (and the failed answers beside it, if any)."""
    apart = f" <span style='color:#c62828'>({failed} failed)</span>" if failed else ""
    if acc is None:
        return f"<td style='{_NUM}'>—{apart}</td>"
    return (f"<td style='{_NUM}'><b>{acc:.0%}</b>{apart}<div style='background:#e8eaed;height:4px;width:60px;margin-left:auto'>"
            f"<div style='background:#188038;height:4px;width:{60 * acc:.0f}px'></div></div></td>")


def _cost_html(r: EvalResult) -> str:
    if r.cost is None:
        return ""
    return f"<div class='aitk-eval-cost' style='margin:2px 0 6px 0'><b>run cost</b>: {html.escape(str(r.cost))}</div>"


def html_report(r: EvalResult) -> str:
    e = html.escape
    unit = r.unit
    swatch = {v: _COLORS[i % len(_COLORS)] for i, v in enumerate(r.variants)}

    def variant(v: str) -> str:
        return (f"<span style='display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:5px;"
                f"background:{swatch.get(v, '#999')}'></span>{e(v)}")

    summary = _table("aitk-eval-summary", ["variant", "answers", "accuracy", "failed", "latency p50 (s)", "latency p95 (s)",
                                           f"{unit}/s"], [
        f"<tr><td style='{_TD};white-space:nowrap'><b>{variant(s['variant'])}</b></td><td style='{_NUM}'>{s['answers']}</td>"
        f"{_acc_cell(s['accuracy'])}<td style='{_NUM}{';color:#c62828' if s['failed'] else ''}'>{s['failed']}</td>"
        f"<td style='{_NUM}'>{_fmt(s['latency_p50_s'], '.2f')}</td>"
        f"<td style='{_NUM}'>{_fmt(s['latency_p95_s'], '.2f')}</td><td style='{_NUM}'>{_fmt(s[f'{unit}_per_s'], '.1f')}</td>"
        "</tr>" for s in r.summary()])
    groups = ""
    if r.groups:
        failed = {(g["group"], g["variant"]): g["failed"] for g in r.group_summary()}
        groups = "<div style='margin-top:10px'><b>accuracy per group</b></div>" + _table(
            "aitk-eval-groups", ["group", *r.variants],
            [f"<tr><td style='{_TD}'>{e(g)}</td>" + "".join(_acc_cell(r.accuracy(v, g), failed.get((g, v), 0))
                                                            for v in r.variants) + "</tr>"
             for g in r.groups])
    png = plot_png(r)
    plot = (f"<img class='aitk-eval-plot' style='max-width:100%' alt='accuracy and latency per variant' "
            f"src='data:image/png;base64,{png}'/>" if png else "")

    detail = []
    for prompt, expected, rows in by_prompt(r.rows):
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
    note = (f"<div class='aitk-eval-incomplete' style='background:#fff4e5;color:#a15c00;padding:4px 8px;margin:4px 0;"
            f"border-radius:4px'><b>{e(status_note(r))}</b> — {e(next_step(r))}</div>" if not r.complete else "")
    lines = comparison_lines(r)
    compared = ("<div class='aitk-eval-comparisons' style='margin-top:8px'><b>is the difference real?</b>"
                + "".join(f"<div>{e(line)}</div>" for line in lines) + "</div>") if lines else ""
    words = ("" if unit == "tokens" else "<div style='color:#666;font-size:90%;margin-top:4px'>words: whitespace-separated "
             "words of each answer (the Gradio API returns text only; <code>api=\"openai\"</code> reports tokens)</div>")
    return (f"<div class='aitk-eval'><h4 style='margin:4px 0 6px 0'>Evaluation at "
            f"<a href='{e(r.endpoint)}' target='_blank'>{e(r.endpoint)}</a></h4>{note}{_cost_html(r)}"
            f"<div style='display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start'>"
            f"<div>{summary}{groups}{compared}</div><div>{plot}</div></div>"
            f"<details open style='margin-top:8px'><summary style='cursor:pointer'><b>answers</b> ({len(r.rows)})</summary>"
            f"{table}</details>{words}</div>")
