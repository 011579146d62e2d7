"""Plain result objects the verbs return: they print well in a terminal and render in a notebook."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .invocation import command

if TYPE_CHECKING:
    from pathlib import Path

    from inference_app.contract import DeployedSettings

    from .cost import Cost


# state words a card shows as a coloured badge (replica state, deploy state)
_BADGES = {"running": ("#e6f4ea", "#1e7e34"), "ready": ("#e6f4ea", "#1e7e34"), "starting": ("#fff4e5", "#a15c00"),
           "crashed": ("#fce8e6", "#c62828"), "stopped": ("#f1f3f4", "#555"), "not provisioned": ("#f1f3f4", "#555")}
_BADGE_KEYS = ("replica", "state")


def _table_html(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th style='text-align:left;padding:2px 16px 2px 0;font-weight:600'>{html.escape(k)}</th>"
                   f"<td style='text-align:left'>{_cell(v, k)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _cell(v: Any, key: str = "") -> str:
    if isinstance(v, str) and v.startswith(("http://", "https://")):
        e = html.escape(v)
        return f"<a href='{e}' target='_blank'>{e}</a>"
    if key in _BADGE_KEYS and isinstance(v, str):
        bg, fg = next((c for word, c in _BADGES.items() if v.startswith(word)), ("#f1f3f4", "#555"))
        return f"<span style='background:{bg};color:{fg};border-radius:8px;padding:1px 8px'>{html.escape(v)}</span>"
    return html.escape("—" if v is None else str(v))


@dataclass(repr=False)
class Card:
    """A titled list of facts (what provision, deploy and status return)."""

    title: str
    rows: list[tuple[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def get(self, key: str) -> Any:
        return dict(self.rows).get(key)

    def __str__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        lines = [self.title] + [f"  {k.ljust(width)}  {'—' if v is None else v}" for k, v in self.rows]
        return "\n".join(lines + [f"  {n}" for n in self.notes])

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        notes = "".join(f"<div style='color:#555;white-space:pre-wrap;margin-top:4px'>{html.escape(n)}</div>"
                        for n in self.notes)
        return (f"<div class='aitk-card' style='border:1px solid #ddd;border-radius:6px;padding:8px 12px;"
                f"display:inline-block;min-width:420px'><div style='font-weight:600;margin-bottom:4px'>"
                f"{html.escape(self.title)}</div>{_table_html(self.rows)}{notes}</div>")


class Displayable:
    """Mixin: a result shows itself as the Card its `card()` builds."""

    def card(self) -> Card:  # pragma: no cover - each result defines it
        raise NotImplementedError

    def __str__(self) -> str:
        return str(self.card())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        return self.card()._repr_html_()


@dataclass(repr=False)
class Status(Displayable):
    target: str
    endpoint: str | None
    app: str | None
    replica: str
    health: dict | None = None
    settings: "DeployedSettings | None" = None
    started: str | None = None
    log_tail: str = ""
    cost: "Cost | None" = None  # what it costs now (issue 18)

    def card(self) -> Card:
        rows = [("target", self.target), ("app", self.app), ("endpoint", self.endpoint), ("replica", self.replica),
                ("last deploy (replica started)", self.started), ("base model", self.settings and self.settings.base_model),
                ("adapters", self.settings and ", ".join(self.settings.adapters) or None)]
        notes = [f"from its log:\n{self.log_tail}"] if self.replica == "crashed" and self.log_tail else []
        if self.cost:
            rows, notes = rows + self.cost.rows, self.cost.notes + notes
        return Card("aitk-nb status", rows, notes)


@dataclass(repr=False)
class ProvisionResult(Displayable):
    target: str
    endpoint: str | None
    config_path: "Path | None"
    changes: list[tuple[str, str]]
    what_if: bool = False
    values: list[tuple[str, Any, str]] = field(default_factory=list)  # (parameter, value, where it came from)
    notes: list[str] = field(default_factory=list)
    cost: "Cost | None" = None  # what the app will cost (issue 18)

    @property
    def sources(self) -> dict[str, str]:
        """Where each parameter's value came from (inference parameters, fine-tuning, template default,
        found in Azure, command line)."""
        return {name: source for name, _, source in self.values}

    def card(self) -> Card:
        rows = [(what, action) for what, action in self.changes]
        rows += [(name, f"{'—' if value is None else value}  ({source})") for name, value, source in self.values]
        cost_rows, cost_notes = (self.cost.rows, self.cost.notes) if self.cost else ([], [])
        if self.what_if:
            return Card(f"What provision would do on the {self.target} target (nothing changed)", rows + cost_rows,
                        cost_notes + self.notes + ["run again without --what-if to apply"])
        return Card(f"Provisioned the {self.target} target", rows + [("endpoint", self.endpoint), ("config", str(self.config_path))]
                    + cost_rows, cost_notes + self.notes + [f"next: {command('deploy --adapter PATH')}"])


@dataclass(frozen=True)
class TeardownStep:
    """One thing teardown found: what it is, whether it goes, and why (whose it is)."""

    what: str
    delete: bool
    why: str
    target: str | None = None  # what the target acts on (a resource id, a folder)


@dataclass(repr=False)
class TeardownPlan(Displayable):
    """What teardown deletes and keeps, and why (it acts only when confirmed)."""

    target: str
    steps: list[TeardownStep]
    done: list[str] | None = None  # after it ran: what was done

    def card(self) -> Card:
        rows = [("delete" if s.delete else "keep", f"{s.what} — {s.why}") for s in self.steps]
        if self.done is None:
            return Card(f"Teardown plan on the {self.target} target", rows or [("nothing", "aitk-nb made nothing here")])
        return Card(f"Tore down the {self.target} target",
                    [("done", d) for d in self.done] + [r for r in rows if r[0] == "keep"] or [("done", "nothing was running")])


@dataclass(repr=False)
class DeployResult(Displayable):
    target: str
    endpoint: str
    settings: "DeployedSettings"
    synced: list[str]
    restarted: bool
    health: dict | None
    seconds: float
    changed: bool = True  # anything sent, deleted or rewritten on the share
    restart: bool | None = None  # as asked: None restarts when something changed, True always, False never
    live: bool = False  # an adapter-only change, applied by the running server without a restart (issue 17)
    restart_reasons: list[str] = field(default_factory=list)  # the changes that required the restart
    served: str | None = None  # which settings /health reported, and from how many replicas

    @property
    def variants(self) -> list[str]:
        """What the endpoint's /health says it serves; the plan's only when it was not asked."""
        if self.health and isinstance(self.health.get("variants"), list):
            return self.health["variants"]
        return self.settings.variants()

    @property
    def state(self) -> str:
        ready = "ready" if self.health else None
        if self.live:
            return "ready: adapters applied live, no restart" if ready else \
                "adapters synced; the running server applies them itself (not awaited: --no-wait)"
        if self.restarted:
            why = f" ({'; '.join(self.restart_reasons)})" if self.restart_reasons else ""
            return f"ready: restarted{why}" if ready else f"restarted{why}, not awaited (--no-wait)"
        if not self.changed:
            words = "nothing changed since the last deploy: nothing sent, not restarted (--restart restarts it)"
            return f"{words}; {ready}" if ready else words
        return "files synced, not restarted (--no-restart); the next deploy restarts it"

    def card(self) -> Card:
        rows = [("endpoint", self.endpoint), ("state", self.state), ("base model", self.settings.base_model),
                ("variants", ", ".join(self.variants))] + ([("served", self.served)] if self.served else []) + \
            [("synced", s) for s in self.synced] + [("took", f"{self.seconds:.1f} s")]
        return Card(f"Deployed to the {self.target} target", rows,
                    [f"evaluate with {command('eval --variants ' + ','.join(self.variants))}"] if self.settings.adapters else [])
