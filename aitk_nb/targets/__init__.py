"""Targets: where the inference app runs (`local`: this machine; `azure`: Container Apps). Verbs pick
one from `infra/inference.config.json`'s TARGET (or provision's --target) and talk to it only through
the `Target` interface below; the deployed app is the `Endpoint` object (`aitk_nb.endpoints`), whose
verbs go to the same interface."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Protocol

from ..config import TARGETS, InferenceConfig
from ..errors import ConfigError
from ..project import Project
from ..results import TeardownStep

if TYPE_CHECKING:
    from ..endpoints import AppState, Endpoint, Readiness
    from ..errors import AitkError
    from ..operations import Operation
    from ..cost import Cost
    from ..results import Status
    from ..sync import Remote


@dataclass
class Provisioned:
    """What provision did (or, as a plan, would do): the config to write, each resource's change
    (what-if's words, or "Reuse" for what existed before and is only referenced), each parameter's value
    with where it came from, and notes the user must read (a rotated key)."""

    config: InferenceConfig
    changes: list[tuple[str, str]]
    values: list[tuple[str, Any, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Target(Protocol):
    name: str  # "local" or "azure"

    # -- provision: the environment from the template and the parameters file
    def plan(self, params: Any, **options: Any) -> Provisioned:
        """What provision would do (resource, action); changes nothing."""

    def provision(self, params: Any, *, progress: bool = True, operation: Operation, **options: Any) -> Provisioned:
        """Create or update the environment; returns the config to write and what changed. Runs in
        `operation`'s thread: it reports there, stops at its `checkpoint`s (or hands `cancel()` to the
        service's own cancel with `on_cancel`), and asks with `ask` before it changes what existed."""

    # -- the share that deploy syncs into
    def remote(self) -> Remote: ...

    # -- the app (what `Endpoint` asks)
    readiness: Readiness  # the route, the time limit and how often to look while waiting
    http_verify: Any  # TLS trust for the app's ingress (httpx's `verify`)

    def app_state(self) -> AppState:
        """The app's status in Container Apps' words, and the service's raw record."""

    def failure(self, endpoint: Endpoint) -> AitkError:
        """The error for an app in a state it will not recover from, with its log's tail."""

    def restart(self) -> str | None:
        """Replace the replica (azure: restart the active revision, whose name is returned); no wait."""

    def api_key(self) -> str | None: ...
    def status(self) -> Status: ...
    def cost(self) -> Cost:
        """What the app costs now (issue 18): local, free; azure, its replicas up x their price."""
    def log_tail(self, n: int | None) -> str: ...
    def follow(self, tail: int) -> Iterator[str]:
        """The last `tail` lines of the replica's output, then new ones as they come (until interrupted)."""
    def scale(self, *, min_replicas: int | None, max_replicas: int | None, stop: bool, start: bool) -> None: ...
    def teardown_plan(self, *, app_only: bool) -> list[TeardownStep]:
        """What teardown would delete and keep, and why; changes nothing. Only what this toolkit made for
        this app is deleted (the ownership rule: README, "What teardown deletes")."""

    def teardown(self, plan: list[TeardownStep]) -> list[str]:
        """Carry out a plan (its deletions, in its order); what was done, one line each."""


_default_credential: Any = None


def set_credential(credential: Any) -> None:
    """The azure-core TokenCredential every verb uses when none is passed (None: DefaultAzureCredential,
    which works after `az login`, with a managed identity or with AZURE_CLIENT_ID/SECRET/TENANT_ID)."""
    global _default_credential
    _default_credential = credential


def get_target(config: InferenceConfig, project: Project, *, credential: Any = None) -> Target:
    if config.TARGET == "local":
        from .local import LocalTarget

        return LocalTarget(project, config)
    if config.TARGET == "azure":
        from .azure import AzureTarget

        return AzureTarget(project, config, credential=credential or _default_credential)
    raise ConfigError(f"unknown target {config.TARGET!r}; choose one of {', '.join(TARGETS)}")
