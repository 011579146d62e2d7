"""What `evaluate` returns: every answer, the numbers per variant (and group), export to pandas,
CSV or JSON lines, and its report (text in a terminal, HTML and a plot in a notebook)."""
from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import report, stats
from .stats import COLUMNS, Row

if TYPE_CHECKING:
    from ..cost import RunCost


@dataclass(repr=False)
class EvalResult:
    rows: list[Row]
    variants: list[str]
    endpoint: str
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    planned: int | None = None  # answers asked for (prompts x variants); fewer rows when interrupted
    cost: "RunCost | None" = None  # what the run cost on the endpoint (issue 18); None: endpoint given by URL

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
        """Per variant: answers, accuracy, latency p50/p95, tokens/s (or words/s), errors."""
        return stats.summary(self.rows, self.variants)

    def group_summary(self) -> list[dict]:
        """Accuracy per (group, variant), for prompts that carry a "group"."""
        return stats.group_summary(self.rows, self.variants)

    # -- export ----------------------------------------------------------------------------------
    def to_pandas(self, kind: str = "rows"):
        """A pandas DataFrame: "rows" (one per answer), "summary" (per variant) or "groups"."""
        import pandas as pd

        if kind == "rows":
            return pd.DataFrame([asdict(r) for r in self.rows], columns=COLUMNS)
        if kind == "summary":
            frame = pd.DataFrame(self.summary()).set_index("variant")
            if self.cost is not None:  # the run's, the same on every row
                frame["run_cost"] = str(self.cost)
            return frame
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
