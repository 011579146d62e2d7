"""A loopback test double of the Azure APIs aitk-nb uses (ARM, Microsoft.Resources deployments,
Microsoft.Storage, Microsoft.App, Azure Files data plane), driven by the real Azure SDK clients.
See double.py; the pytest fixture is in fixtures.py."""
from .double import AzureDouble, DoubleCredential, LoggedRequest

__all__ = ["AzureDouble", "DoubleCredential", "LoggedRequest"]
