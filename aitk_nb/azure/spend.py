"""What a container app runs on, for its cost (issue 18): its workload profile's type (read from its
environment's profile of that name), its region, its scale settings and the replicas up now."""
from __future__ import annotations

from dataclasses import dataclass

from ..cost import Cost, now
from .session import AzureError, AzureSession, azure_call, service_value


@dataclass
class Spend:
    profile_type: str | None
    region: str | None
    replicas: int
    min_replicas: int | None
    running: bool

    def cost(self) -> Cost:
        return now(self.profile_type, self.region, replicas=self.replicas, min_replicas=self.min_replicas,
                   running=self.running)


def profile_type(session: AzureSession, app) -> str | None:
    """The type of the workload profile the app (an SDK model) runs on, from its environment."""
    name = app.workload_profile_name
    env_id = app.environment_id or app.managed_environment_id
    if not name or not env_id:
        return None
    parts = env_id.split("/")
    if len(parts) < 9:
        return None
    with azure_call(f"reading environment {parts[8]}"):
        env = session.apps.managed_environments.get(parts[4], parts[8])
    return next((p.workload_profile_type for p in env.workload_profiles or [] if (p.name or "").lower() == name.lower()), None)


def spend(session: AzureSession, container_app) -> Spend:
    """`container_app`: an `aitk_nb.azure.app.ContainerApp`."""
    app = container_app.get()
    revision = container_app.latest_revision(app)
    scale = app.template.scale if app.template and app.template.scale else None
    running = (service_value(app.running_status) or "Running") != "Stopped"
    replicas = len(container_app.replicas(revision.name)) if running else 0
    region = (app.location or "").lower().replace(" ", "") or None
    return Spend(profile_type(session, app), region, replicas, scale and scale.min_replicas, running)


def cost_of(session: AzureSession, container_app) -> Cost:
    """The app's cost now; a management call that fails leaves "price unknown" with the reason."""
    try:
        return spend(session, container_app).cost()
    except AzureError as e:
        return Cost([("cost now", f"price unknown: {e}")])
