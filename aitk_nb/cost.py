"""What an app costs, in words: before provision (the plan), while it runs (status, the endpoint) and
for an evaluation run (issue 18). Prices come from `prices`; the rules from "Billing in Azure
Container Apps": a revision scaled to zero costs nothing; a serverless GPU replica that is up is billed
at the active rate, idle or not; a dedicated profile bills per node while it runs, plus the plan's
management fee while the environment has a dedicated profile.

The idle rule: an app whose settings keep a GPU replica up with no request to serve (minReplicas >= 1
on a GPU profile) is flagged, with the monthly figure and the command that lets it scale to zero."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from .invocation import command
from .prices import HOURS_PER_MONTH, ReplicaPrice, replica_price

FREE_LOCAL = "free: the local target runs on this machine"


@dataclass(repr=False)
class Cost:
    """Rows and notes a card shows about cost."""

    rows: list[tuple[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    price: ReplicaPrice | None = None

    def get(self, key: str) -> Any:
        return dict(self.rows).get(key)

    def __str__(self) -> str:
        width = max((len(k) for k, _ in self.rows), default=0)
        return "\n".join([f"{k.ljust(width)}  {v}" for k, v in self.rows] + self.notes)

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style='text-align:left;padding:2px 16px 2px 0'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>" for k, v in self.rows)
        notes = "".join(f"<div class='aitk-cost-warning' style='background:#fff4e5;color:#a15c00;padding:4px 8px;"
                        f"margin-top:4px;border-radius:4px'>{html.escape(n)}</div>" for n in self.notes)
        return f"<div class='aitk-cost'><b>What it costs</b><table>{rows}</table>{notes}</div>"


def _month(price: ReplicaPrice, replicas: int) -> str:
    return price.money(replicas * price.per_hour * HOURS_PER_MONTH)


def _fee(price: ReplicaPrice) -> str:
    return (f"the Dedicated plan management fee, {price.money(price.plan_fee_per_hour)} an hour "
            f"({price.money(price.plan_fee_per_hour * HOURS_PER_MONTH)} a month), is billed while the environment has a "
            "dedicated profile, whatever runs")


def idle_warning(price: ReplicaPrice, min_replicas: int, where: str) -> str:
    """The plain words for settings that keep GPU replicas up with nothing to do."""
    n = f"{min_replicas} GPU replica{'s' * (min_replicas != 1)}"
    figure = (f"at least {_month(price, min_replicas)} a month" if price.per_hour is not None
              else f"a monthly figure cannot be given ({price.describe()})")
    return (f"{where} keeps {n} up while idle (minReplicas {min_replicas}): billed all month whether anyone asks it "
            f"anything or not, {figure}; {command('scale --min 0')} lets it scale to zero when idle")


def plan(profile_type: str | None, region: str | None, min_replicas: int, max_replicas: int, target: str = "azure") -> Cost:
    """What the provision plan costs: a replica-hour, what the scale settings mean, the worst case."""
    if target == "local":
        return Cost([("cost", FREE_LOCAL)])
    price = replica_price(profile_type, region)
    rows: list[tuple[str, Any]] = [("price", price.describe())]
    notes: list[str] = []
    if price.per_hour is None:
        rows.append(("scale", f"min {min_replicas}, max {max_replicas} replicas"))
        if min_replicas >= 1 and price.gpu:
            notes.append(idle_warning(price, min_replicas, "this plan"))
        return Cost(rows, notes, price)
    if min_replicas == 0:
        idle = "nothing: with no request it scales to zero (minReplicas 0); billed per second only while a replica is up"
        if price.dedicated:
            idle = "no node: with no request it scales to zero (minReplicas 0); " + _fee(price)
    else:
        idle = (f"at least {min_replicas} x {price.money(price.per_hour)} x {HOURS_PER_MONTH} h = "
                f"{_month(price, min_replicas)} a month, idle or not (minReplicas {min_replicas})")
        notes.append(idle_warning(price, min_replicas, "this plan"))
    rows.append(("while idle", idle))
    worst = (f"{max_replicas} replica{'s' * (max_replicas != 1)} up all month (maxReplicas {max_replicas}): "
             f"{_month(price, max_replicas)} a month")
    if price.dedicated:
        worst += f" plus the plan fee {price.money(price.plan_fee_per_hour * HOURS_PER_MONTH)}"
    rows.append(("worst case", worst))
    return Cost(rows, notes, price)


def now(profile_type: str | None, region: str | None, *, replicas: int, min_replicas: int | None, running: bool = True) -> Cost:
    """What the app costs now: its replicas up and their price an hour, or nothing when scaled to zero;
    flagged when its settings keep a GPU replica up while idle."""
    price = replica_price(profile_type, region)
    rows: list[tuple[str, Any]] = []
    notes: list[str] = []
    if not running or replicas == 0:
        words = "stopped" if not running else "scaled to zero"
        rows.append(("cost now", f"nothing: {words}, no replica is up"
                     + (f" ({_fee(price)})" if price.dedicated and price.per_hour is not None else "")))
    elif price.per_hour is None:
        rows.append(("cost now", f"{replicas} replica{'s' * (replicas != 1)} up, {price.describe()}"))
    else:
        rows.append(("cost now", f"{price.money(replicas * price.per_hour)} an hour: {replicas} replica"
                                 f"{'s' * (replicas != 1)} up at {price.describe()}"))
    if running and min_replicas and price.gpu:
        notes.append(idle_warning(price, min_replicas, "this app"))
    return Cost(rows, notes, price)


@dataclass
class RunCost:
    """What an evaluation run cost on its endpoint: wall time x the replicas up x their price."""

    seconds: float
    replicas: int = 0
    price: ReplicaPrice | None = None
    free: bool = False
    unknown: str | None = None

    @property
    def amount(self) -> float | None:
        if self.free:
            return 0.0
        if self.price is None or self.price.per_hour is None:
            return None
        return self.seconds / 3600 * self.replicas * self.price.per_hour

    @property
    def currency(self) -> str | None:
        return self.price.currency if self.price else None

    def plus(self, later: "RunCost") -> "RunCost":
        """This run and a later one on the same endpoint (a retry): their times added, the most replicas
        either saw, the later price."""
        if self.free and later.free:
            return RunCost(self.seconds + later.seconds, free=True)
        return RunCost(self.seconds + later.seconds, max(self.replicas, later.replicas), later.price or self.price,
                       unknown=later.unknown or self.unknown)

    def __str__(self) -> str:
        if self.free:
            return f"free (local target, {self.seconds:.0f} s on this machine)"
        if self.amount is None:
            return f"price unknown: {self.unknown or (self.price.unknown if self.price else 'no price')}"
        return (f"{self.price.money(self.amount)} ({self.seconds:.0f} s x {self.replicas} replica"
                f"{'s' * (self.replicas != 1)} x {self.price.money(self.price.per_hour)} an hour, {self.price.profile})")


def run_cost(target: str, seconds: float, state: tuple[str | None, str | None, int] | None, reason: str | None = None) -> RunCost:
    """`state`: (profile type, region, replicas up) of the app during the run (None: not known, `reason`)."""
    if target == "local":
        return RunCost(seconds, free=True)
    if state is None:
        return RunCost(seconds, unknown=reason or "the app's replicas could not be read")
    profile_type, region, replicas = state
    return RunCost(seconds, replicas, replica_price(profile_type, region))


def for_provision(template: dict, values: dict[str, Any], target: str) -> Cost:
    """The plan's cost from the template as it will be deployed: the container app's scale settings and
    workload profile (its type from the environment's profile of that name, else the
    `gpuWorkloadProfileType` value), in the region `values` names."""
    if target == "local":
        return Cost([("cost", FREE_LOCAL)])
    from .arm import Template
    from .errors import AitkError

    declared = template.get("parameters", {})
    try:
        t = Template(template, {k: v for k, v in values.items() if k in declared})
        apps = t.resources("Microsoft.App/containerApps")
        if not apps:
            raise AitkError("the template declares no container app")
        props = apps[0].get("properties", {})
        scale = t.evaluate((props.get("template") or {}).get("scale") or {})
        name = str(t.evaluate(props.get("workloadProfileName") or "")).lower()
        kinds = {str(p.get("name", "")).lower(): p.get("workloadProfileType")
                 for env in t.resources("Microsoft.App/managedEnvironments")
                 for p in t.evaluate((env.get("properties") or {}).get("workloadProfiles") or []) if isinstance(p, dict)}
        profile_type = kinds.get(name) or values.get("gpuWorkloadProfileType")
        low, high = int(scale.get("minReplicas") or 0), int(scale.get("maxReplicas") or 10)  # Container Apps' defaults
    except (AitkError, TypeError, ValueError) as e:
        return Cost([("price", f"price unknown: the template's scale settings could not be read ({e})")])
    location = values.get("location")
    return plan(profile_type, location if isinstance(location, str) and not location.startswith("[") else None, low, high)


class RunMeter:
    """Times a run on an endpoint and reads its replicas before and after (the most seen is billed: a run
    that wakes a scaled-to-zero app had one up as soon as an answer came). `target`: the endpoint's
    target, or None for an endpoint given by URL (its cost is then not known)."""

    def __init__(self, target: Any):
        import time

        self.target, self._clock = target, time.monotonic
        self.before, self.reason = self._read()
        self.started = self._clock()

    def _read(self):
        from .errors import AitkError

        if self.target is None or getattr(self.target, "name", None) == "local" or not hasattr(self.target, "spend"):
            return None, None
        try:
            return self.target.spend(), None
        except AitkError as e:
            return None, str(e)

    def stop(self, answered: bool) -> RunCost | None:
        seconds = self._clock() - self.started
        if self.target is None:
            return None
        if getattr(self.target, "name", None) == "local":
            return run_cost("local", seconds, None)
        after, reason = self._read()
        seen = [s for s in (self.before, after) if s is not None]
        if not seen:
            return run_cost("azure", seconds, None, reason or self.reason)
        last = seen[-1]
        replicas = max([s.replicas for s in seen] + [1 if answered else 0])
        return run_cost("azure", seconds, (last.profile_type, last.region, replicas))
