"""What the provision form's pickers offer, read from the signed-in account (the widgets'
`AzureChoices` protocol): subscriptions, resource groups, regions, and the GPU workload profiles
Container Apps offers in a region."""
from __future__ import annotations

from typing import Any

from .session import AzureSession, azure_call, service_value


class AccountChoices:
    def __init__(self, credential: Any = None):
        self.credential = credential
        self._sessions: dict[str, AzureSession] = {}

    def _session(self, subscription: str) -> AzureSession:
        if subscription not in self._sessions:
            self._sessions[subscription] = AzureSession(subscription, self.credential)
        return self._sessions[subscription]

    def subscriptions(self) -> list[tuple[str, str]]:
        session = AzureSession(None, self.credential)
        self.credential = session.credential  # one DefaultAzureCredential for every later call
        return [(f"{name} ({sub})", sub) for sub, name in session.subscriptions()]

    def resource_groups(self, subscription: str) -> list[tuple[str, str]]:
        return [(f"{name} ({location})", name) for name, location in sorted(self._session(subscription).resource_groups())]

    def locations(self, subscription: str) -> list[tuple[str, str]]:
        session = self._session(subscription)
        with azure_call("listing regions"):
            regions = list(session.subscription_client.subscriptions.list_locations(subscription))
        physical = [r for r in regions if r.metadata is None or service_value(r.metadata.region_type) != "Logical"]
        return sorted((r.display_name or r.name, r.name) for r in physical)

    def gpu_profiles(self, subscription: str, location: str) -> list[tuple[str, str]]:
        """The workload profile types with GPUs that Container Apps offers in `location`."""
        with azure_call(f"listing Container Apps workload profiles in {location}"):
            profiles = list(self._session(subscription).apps.available_workload_profiles.get(location))
        out = []
        for p in profiles:
            props = p.properties
            if props is None or not (props.gpus or "GPU" in (p.name or "").upper()):
                continue
            label = props.display_name or p.name
            out.append((f"{label} ({props.gpus} GPU, {props.cores} cores, {props.memory_gi_b} GiB)", p.name))
        return out
