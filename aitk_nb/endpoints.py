"""The deployment as an object (huggingface_hub's `InferenceEndpoint` shape): it keeps the service's
raw record and its status, and its verbs (`fetch`, `wait`, `restart`, `scale`, `logs`, `api_key`,
`teardown`) go to the target it lives on, local or azure. `wait` is the one readiness wait of both.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from inference_app.contract import HEALTH_ROUTE

from .errors import NotProvisionedError, ReadinessTimeoutError
from .invocation import command
from .project import Project
from .results import Card, Displayable, TeardownPlan


class EndpointStatus(str, enum.Enum):
    """The app's state in the words Container Apps uses for a revision's running state; the local
    target puts its replica in the same words."""

    ACTIVATING = "Activating"  # starting: the readiness probe does not answer yet
    PROCESSING = "Processing"
    RUNNING = "Running"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    UNKNOWN = "Unknown"

    @classmethod
    def _missing_(cls, value: object) -> "EndpointStatus":
        return cls.UNKNOWN  # a state this version does not know (the raw record keeps it)


FAILURE_STATES = frozenset({EndpointStatus.FAILED, EndpointStatus.DEGRADED})


@dataclass
class AppState:
    """What a target reports about its app: the status and the service's own record."""

    status: EndpointStatus
    detail: str  # e.g. "Running (Healthy)", "exited with code 3"
    raw: dict
    revision: str | None = None
    running: str | None = None  # the app as a whole: "Running" or "Stopped" (`scale --stop`)
    min_replicas: int | None = None
    max_replicas: int | None = None
    replicas: int | None = None  # replicas running now (0: scaled to zero), when the target says


@dataclass(frozen=True)
class Readiness:
    """How a target is waited on: the route that says ready, the limit, and how often to look
    (the health route is cheap; the service's record may cost a management call)."""

    path: str = HEALTH_ROUTE
    timeout: float = 600.0
    health_every: float = 2.0
    state_every: float = 10.0
    gives_up_on: frozenset = FAILURE_STATES  # states that will not turn ready by themselves


@dataclass(repr=False)
class Logs:
    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


@dataclass(repr=False)
class Endpoint(Displayable):
    """The deployed app. `url` is its address (Gradio UI and API; OpenAI routes under /v1); `status`
    and `raw` are as of the last `fetch()`; `health` is the last 200 body of its health route."""

    url: str | None
    target: str
    name: str | None
    project: Project
    status: EndpointStatus = EndpointStatus.UNKNOWN
    detail: str = ""
    health: dict | None = None
    revision: str | None = None
    running: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    replicas: int | None = None
    raw: dict = field(default_factory=dict)
    _target: Any = field(default=None, repr=False)

    # -- state -----------------------------------------------------------------------------------
    def fetch(self) -> "Endpoint":
        """Read the app's state from its target, and ask its health route once, unless the app runs no
        replica on Azure (scaled to zero or stopped): there a request to the ingress starts a replica,
        billed by the second, so looking is not a reason to wake it (an evaluation wakes it on purpose,
        by waiting on the health route)."""
        self._apply(self._target.app_state())
        if self.target == "azure" and self.replicas == 0:
            self.health = None
        else:
            self._probe()
        return self

    def _apply(self, state: AppState) -> None:
        self.status, self.detail, self.raw = state.status, state.detail, state.raw
        self.revision, self.running = state.revision, state.running
        self.min_replicas, self.max_replicas = state.min_replicas, state.max_replicas
        self.replicas = state.replicas

    @property
    def ready(self) -> bool:
        return self.health is not None and self.status not in FAILURE_STATES

    @property
    def health_url(self) -> str:
        return self._url() + self._target.readiness.path

    @property
    def openai_base_url(self) -> str:
        return self._url() + "/v1"

    def _url(self) -> str:
        if not self.url:
            raise NotProvisionedError(f"no endpoint yet in {self.project.config_path}; run {command('provision')}, "
                                      f"then {command('deploy')}")
        return self.url.rstrip("/")

    def _probe(self, client: Any = None) -> str:
        """Ask the health route once; sets `health` (the body on 200, else None); returns what it saw."""
        import httpx

        own = client is None
        client = client or self._client(timeout=5.0)
        try:
            r = client.get(self.health_url)
        except httpx.TransportError as e:
            self.health = None
            return type(e).__name__
        finally:
            if own:
                client.close()
        try:
            self.health = r.json() if r.status_code == 200 else None
        except ValueError:
            self.health = None
        return f"HTTP {r.status_code}"

    def _client(self, timeout: float):
        import httpx

        # the health route is open (no API key): nothing secret is read to wait on it
        return httpx.Client(timeout=timeout, verify=self._target.http_verify)

    # -- the readiness wait ----------------------------------------------------------------------
    def wait(self, timeout: float | None = None, *, progress: bool = True,
             checkpoint: Callable[[], None] | None = None, report: Callable[[str], None] | None = None,
             what: str | None = None) -> "Endpoint":
        """Wait until the app is ready: its health route answers 200 (not when the service says
        "Running"). A failed or degraded app is reported at once, with the tail of its log;
        `ReadinessTimeoutError` (a `TimeoutError`) after `timeout` seconds (default: the target's,
        from its startup probe). `checkpoint` is called between looks (an operation's safe point);
        `what` names the wait on the progress line (default: "waiting for /health")."""
        from tqdm.auto import tqdm

        policy = self._target.readiness
        limit = policy.timeout if timeout is None else timeout
        start = time.monotonic()
        next_state = start
        seen = "no answer yet"
        # no total: the wait has a limit, not a known length (a notebook shows a bar that ends green,
        # or red on a failure or timeout; a terminal a counter with what the route last answered)
        with tqdm(total=None, desc=f"{what or 'waiting for ' + policy.path} (up to {limit:.0f} s)", unit="s", disable=not progress,
                  bar_format="{desc}: {n:.0f} s {postfix}") as bar, self._client(timeout=10.0) as client:
            while True:
                now = time.monotonic()
                if now >= next_state:  # failure states first: a crash is not waited out
                    self._apply(self._target.app_state())
                    next_state = now + policy.state_every
                    if self.status in policy.gives_up_on:
                        _failed(bar, self.detail)
                        raise self._target.failure(self)
                seen = f"{self._probe(client)}; {self.detail}" if self.detail else self._probe(client)
                if self.health is not None:
                    bar.set_postfix_str("ready")
                    return self
                elapsed = time.monotonic() - start
                bar.n = elapsed
                bar.set_postfix_str(seen)
                if report is not None:
                    report(f"waiting for {policy.path}: {elapsed:.0f} s of {limit:.0f} ({seen})")
                if elapsed > limit:
                    _failed(bar, "timed out")
                    raise ReadinessTimeoutError(f"{self.health_url} did not answer 200 within {limit:.0f} s ({seen}); "
                                                f"see {command('logs')} and {command('status')}")
                if checkpoint is not None:
                    checkpoint()
                time.sleep(policy.health_every)

    # -- verbs -----------------------------------------------------------------------------------
    def restart(self) -> "Endpoint":
        """Replace the replica (azure: restart the active revision); `wait()` for it to be ready."""
        self.revision = self._target.restart() or self.revision
        self.health = None
        return self

    def scale(self, *, min_replicas: int | None = None, max_replicas: int | None = None, stop: bool = False,
              start: bool = False) -> "Endpoint":
        """Replica bounds (min 0: scale to zero when idle), or stop the app and start it again."""
        self._target.scale(min_replicas=min_replicas, max_replicas=max_replicas, stop=stop, start=start)
        self._apply(self._target.app_state())
        return self

    def logs(self, tail: int | None = 100) -> Logs:
        """The last `tail` lines of the replica's output (None: all the service keeps)."""
        return Logs(self._target.log_tail(tail))

    def follow_logs(self, tail: int = 0) -> Iterator[str]:
        """The last `tail` lines of the replica's output, then new ones as they come (until interrupted):
        one stream, so no line written in between is missed."""
        return self._target.follow(tail)

    def api_key(self) -> str | None:
        """The endpoint's API key (azure: read from the app's secrets), for clients such as openai.
        Read on each call, kept in memory only and never displayed."""
        return self._target.api_key()

    def teardown(self, *, app_only: bool = False, plan: list | None = None) -> TeardownPlan:
        """Stop and remove the app; unless `app_only`, also the rest of what aitk-nb made for it (the
        share with its files, the environment) and `infra/inference.config.json`. What aitk-nb did not
        make is kept, and the result says why. `plan`: one `teardown_plan()` returned (default: a new
        one). No confirmation: the magic and the CLI show the plan and ask first."""
        steps = plan if plan is not None else self._target.teardown_plan(app_only=app_only)
        done = self._target.teardown(steps)
        # an app aitk-nb did not make is kept, and so is the config that names it (typed in by hand, say)
        app_kept = any(not s.delete and s.what == f"Microsoft.App/containerApps/{self.name}" for s in steps)
        if not app_only and not app_kept and self.project.config_path.exists():
            self.project.config_path.unlink()
            done.append(f"{self.project.config_path} removed")
        self.status, self.health = EndpointStatus.STOPPED, None
        return TeardownPlan(self.target, steps, done)

    def teardown_plan(self, *, app_only: bool = False) -> TeardownPlan:
        """What `teardown` would delete and keep, and why; changes nothing."""
        return TeardownPlan(self.target, self._target.teardown_plan(app_only=app_only))

    # -- display ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.url or ""  # f"{app}/v1" reads as a URL; the card is what shows (below, and the CLI's)

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self.card()))

    def card(self) -> Card:
        base = (self.url or "").rstrip("/")
        rows = [("Gradio UI and API", self.url), ("OpenAI-compatible base URL", base and base + "/v1"),
                ("health", base and base + HEALTH_ROUTE), ("state", self._state_words())]
        cost = self.cost()
        return Card("Endpoint", rows + (cost.rows if cost else []), cost.notes if cost else [])

    def cost(self):
        """What the app costs now (`aitk_nb.cost.Cost`: its replicas up and their price an hour, or nothing
        when scaled to zero; the idle flag), or None where the target cannot say."""
        from .errors import AitkError

        reader = getattr(self._target, "cost", None)
        try:
            return reader() if reader else None
        except AitkError as e:
            from .cost import Cost

            return Cost([("cost now", f"price unknown: {e}")])

    def _state_words(self) -> str:
        words = self.status.value + (" (ready)" if self.ready else "")
        return f"{words}: {self.detail}" if self.detail and self.detail != self.status.value else words


def _failed(bar, why: str) -> None:
    """Mark a progress bar as failed: tqdm.notebook's bar turns red (it would close green)."""
    bar.set_postfix_str(why)
    if hasattr(bar, "container"):  # tqdm.notebook
        bar.disp(bar_style="danger")
