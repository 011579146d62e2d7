"""What `evaluate` returns: every answer, the numbers per variant (and group), export to pandas,
CSV or JSON lines, and its report (text in a terminal, HTML and a plot in a notebook)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvalError
from . import report, stats
from .prompts import Prompt
from .stats import COLUMNS, Row

if TYPE_CHECKING:
    from ..cost import RunCost
HEADER = "aitk_eval"  # the first line of a saved JSON lines result: what a resume needs


@dataclass(repr=False)
class EvalResult:
    rows: list[Row]
    variants: list[str]
    endpoint: str
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the run's settings (api, max_new_tokens, temperature, ...)
    planned: int | None = None  # answers asked for (prompts x variants x samples)
    prompts: list[Prompt] = field(default_factory=list)
    samples: int = 1
    stopped: str | None = None  # why the run stopped sending before the end (the endpoint stopped answering)
    source: Path | None = None  # the file it was loaded from (a resume saves back into it)
    cost: "RunCost | None" = None  # what the run cost on the endpoint (issue 18); None: endpoint given by URL

    # -- completeness --------------------------------------------------------------------------------
    @property
    def received(self) -> list[Row]:
        """The answers that came back (and were scored, when scored)."""
        return [r for r in self.rows if r.error is None]

    @property
    def failed(self) -> int:
        """Answers asked for that did not come back: failed, or never sent."""
        return (self.planned if self.planned is not None else len(self.rows)) - len(self.received)

    @property
    def complete(self) -> bool:
        """Every answer asked for came back (an interrupted or stopped run, or one with failures, is not)."""
        return self.failed == 0 and not self.interrupted

    def missing(self) -> list[tuple[Prompt, str, int]]:
        """(prompt, variant, sample) of each answer that failed or was never sent, in the run's order."""
        done = {r.key for r in self.received}
        return [(p, v, s) for p, v, s in self.jobs() if (p.prompt, v, s) not in done]

    def jobs(self) -> list[tuple[Prompt, str, int]]:
        """Every answer the run asks for: (prompt, variant, sample). A prompt given twice is asked twice:
        its second occurrence's samples are numbered after the first's."""
        occurrences: dict[str, int] = {}
        out = []
        for p in self.prompts:
            k = occurrences.get(p.prompt, 0)
            occurrences[p.prompt] = k + 1
            out += [(p, v, k * self.samples + s) for s in range(self.samples) for v in self.variants]
        return out

    def merge(self, rows: list[Row]) -> None:
        """Put new answers in place of the failed ones they answer again, keeping the run's order."""
        new = {r.key: r for r in rows}
        kept = {r.key: r for r in self.rows if r.key not in new}
        merged = {**kept, **new}
        order = {(p.prompt, v, s): i for i, (p, v, s) in enumerate(self.jobs())}
        self.rows = sorted(merged.values(), key=lambda r: order.get(r.key, len(order)))

    def retry(self, *, scoring=None, api_key: str | None = None, concurrency: int | None = None,
              wake_timeout: float | None = None, progress: bool = True) -> "EvalResult":
        """Send again only the answers that failed or were never sent (waking the endpoint first), and
        merge them into this result; returns it. A custom scoring function is not saved with a result:
        pass it again (`scoring=fn`). Saved back into the file it was loaded from, if any."""
        from .runner import resume

        return resume(self, scoring=scoring, api_key=api_key, concurrency=concurrency, wake_timeout=wake_timeout,
                      progress=progress)

    # -- significance --------------------------------------------------------------------------------
    def comparisons(self):
        """Each adapter against `base` on the same prompts (paired), overall and per group: the accuracy
        difference with a 95% confidence interval and an exact McNemar test (aitk_nb.evaluation.significance)."""
        from .significance import comparisons

        return comparisons(self.rows, self.variants, self.groups, self.samples)

    # -- numbers ---------------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        """What answer sizes are counted in: "tokens" when the server reported them, else "words"."""
        return stats.unit(self.rows)

    @property
    def groups(self) -> list[str]:
        return stats.groups(self.rows)

    def accuracy(self, variant: str, group: str | None = None) -> float | None:
        return stats.accuracy(self.rows, variant, group)

    def summary(self) -> list[dict]:
        """Per variant: answers received, accuracy over them, latency p50/p95, tokens/s (or words/s),
        and failed (failed or never sent)."""
        per_variant = len(self.jobs()) // len(self.variants) if self.prompts and self.variants else None
        return stats.summary(self.rows, self.variants, per_variant)

    def group_summary(self) -> list[dict]:
        """Accuracy over the answers received, and failed answers, per (group, variant), for prompts
        that carry a "group"."""
        planned = None
        if self.prompts:
            planned = {}
            for p, v, _ in self.jobs():
                if p.group and v == self.variants[0]:
                    planned[p.group] = planned.get(p.group, 0) + 1
        return stats.group_summary(self.rows, self.variants, planned)

    # -- export ----------------------------------------------------------------------------------
    def to_pandas(self, kind: str = "rows"):
        """A pandas DataFrame: "rows" (one per answer), "summary" (per variant), "groups" or
        "comparisons" (each adapter against base). An incomplete run says so in `df.attrs["incomplete"]`
        (rows, and the summary's and groups' "failed" column, show what failed)."""
        import pandas as pd

        if kind == "rows":
            df = pd.DataFrame([asdict(r) for r in self.rows], columns=COLUMNS)
        elif kind == "summary":
            df = pd.DataFrame(self.summary()).set_index("variant")
            if self.cost is not None:  # the run's, the same on every row
                df["run_cost"] = str(self.cost)
        elif kind == "groups":
            df = pd.DataFrame(self.group_summary(), columns=["group", "variant", "answers", "accuracy", "failed"])
        elif kind == "comparisons":
            df = pd.DataFrame([c.as_dict() for c in self.comparisons()])
        else:
            raise ValueError(f"kind must be 'rows', 'summary', 'groups' or 'comparisons', not {kind!r}")
        if not self.complete:
            df.attrs["incomplete"] = report.status_note(self)
        return df

    def save(self, path: str | os.PathLike) -> Path:
        """Write every row as CSV (.csv), or as JSON lines (anything else, e.g. .jsonl) after a first
        line {"aitk_eval": ...} with the prompts, variants and settings a resume needs
        (`EvalResult.load(path).retry()`, `aitk eval --resume FILE`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(r) for r in self.rows]
        tmp = path.with_name(path.name + ".partial")  # written whole, then renamed: a resume never reads half a file
        if path.suffix.lower() == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS)
                w.writeheader()
                w.writerows(rows)
        else:
            header = {HEADER: {"version": 1, "endpoint": self.endpoint, "variants": self.variants,
                               "samples": self.samples, "settings": self.extra, "interrupted": self.interrupted,
                               "stopped": self.stopped, "prompts": [asdict(p) for p in self.prompts]}}
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in [header, *rows]), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvalResult":
        """A result saved as JSON lines (`save`, `--out FILE.jsonl`), to look at or to `retry()`."""
        path = Path(path)
        try:
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as e:
            raise EvalError(f"cannot read the saved evaluation {path} ({e.strerror})") from None
        try:
            records = [json.loads(line) for line in lines]
        except json.JSONDecodeError as e:
            raise EvalError(f"{path} is not a saved evaluation (not JSON lines: {e.msg}); resume from the .jsonl "
                            "file `--out` wrote") from None
        head = records[0].get(HEADER) if records and isinstance(records[0], dict) else None
        if not isinstance(head, dict) or not head.get("prompts"):
            raise EvalError(f"{path} has no evaluation header (its first line {{\"{HEADER}\": ...}}): a CSV, or rows "
                            "saved by an older aitk-nb, cannot be resumed; run the evaluation again with --out FILE.jsonl")
        names = set(COLUMNS)
        rows = [Row(**{k: v for k, v in r.items() if k in names}) for r in records[1:]]
        prompts = [Prompt(p["prompt"], p.get("expected"), p.get("group")) for p in head["prompts"]]
        result = cls(rows, list(head["variants"]), head["endpoint"], bool(head.get("interrupted")),
                     dict(head.get("settings") or {}), prompts=prompts, samples=int(head.get("samples") or 1),
                     stopped=head.get("stopped"), source=path)
        result.planned = len(result.jobs())
        return result

    # -- display ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return report.text(self)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def plot(self):
        """Accuracy (overall, and per group when prompts have groups) and latency (p50 bar, p95
        whisker) per variant, as a matplotlib Figure (no pyplot state, nothing shown by itself)."""
        return report.plot(self)

    def _repr_html_(self) -> str:
        return report.html_report(self)
