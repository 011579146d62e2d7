"""Where the provision form's Azure pickers get their choices.

The form asks an `AzureChoices` object, built by a factory when a form first needs it (so no Azure
SDK is imported before then): by default the signed-in account's (`aitk_nb.azure.choices`); another
can be set with `set_azure_choices`. With None set the form says the azure target is not available
and offers no made-up choices.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable


@runtime_checkable
class AzureChoices(Protocol):
    """Choices from the signed-in account. Each list holds (label, value) pairs, in display order."""

    def subscriptions(self) -> list[tuple[str, str]]:
        """(display name, subscription id)."""

    def resource_groups(self, subscription: str) -> list[tuple[str, str]]:
        """(name with its location, resource group name)."""

    def locations(self, subscription: str) -> list[tuple[str, str]]:
        """(display name, region name such as 'swedencentral')."""

    def gpu_profiles(self, subscription: str, location: str) -> list[tuple[str, str]]:
        """(description, workload profile type such as 'Consumption-GPU-NC8as-T4') available there."""


def _account_choices(credential: Any) -> AzureChoices:
    """The default: the signed-in account (DefaultAzureCredential unless a credential is given)."""
    from ..azure.choices import AccountChoices

    return AccountChoices(credential)


_factory: Callable[[Any], AzureChoices] | None = _account_choices


def set_azure_choices(factory: Callable[[Any], AzureChoices] | None) -> None:
    """Register how to build the Azure choices: factory(credential) -> AzureChoices (None to unset)."""
    global _factory
    _factory = factory


def azure_choices(credential: Any = None) -> AzureChoices | None:
    """The registered provider, or None when the azure target cannot offer choices here."""
    return None if _factory is None else _factory(credential)
