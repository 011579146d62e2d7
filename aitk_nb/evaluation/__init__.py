"""Evaluate prompts against the deployed variants (base and adapters): through the Gradio API
(gradio_client, the default) or the OpenAI-compatible route, concurrently; a report with a table,
a per-variant (and per-group) summary and a plot, exported to CSV/JSONL or a pandas DataFrame.

    prompts.py   prompts and scoring          runner.py   evaluate() and resume(): the concurrent runner
    backends.py  the Gradio and OpenAI calls  stats.py    rows and the numbers per variant
    result.py    EvalResult (export, load)    report.py   text, HTML and plot
    wake.py      an endpoint up before prompts significance.py  each adapter against base (paired)
"""
from .backends import APIS
from .prompts import SCORERS, Prompt, Scorer, parse_prompts
from .result import EvalResult
from .runner import evaluate
from .stats import COLUMNS, Row

__all__ = ["APIS", "COLUMNS", "SCORERS", "EvalResult", "Prompt", "Row", "Scorer", "evaluate", "parse_prompts"]
