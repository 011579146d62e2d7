"""How a client talks to the double: the keyword arguments each real SDK client needs."""
from __future__ import annotations

from typing import Any


def mgmt_kwargs(double, **extra: Any) -> dict:
    """For every azure-mgmt-* client: ARM endpoint, token scope, TLS trust (and fast retries)."""
    kw = {"base_url": double.arm_endpoint, "credential_scopes": [double.arm_endpoint + "/.default"],
          "connection_verify": double.ca_bundle, "retry_backoff_factor": 0.05}
    kw.update(extra)
    return kw


def clients(double, **extra: Any):
    """(resources, deployments, apps, storage, subscriptions) clients pointed at the double."""
    from azure.mgmt.appcontainers import ContainerAppsAPIClient
    from azure.mgmt.resource.deployments import DeploymentsMgmtClient
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.subscriptions import SubscriptionClient
    from azure.mgmt.storage import StorageManagementClient

    kw = mgmt_kwargs(double, **extra)
    cred, sub = double.credential, double.subscription_id
    return (ResourceManagementClient(cred, sub, **kw), DeploymentsMgmtClient(cred, sub, **kw),
            ContainerAppsAPIClient(cred, sub, **kw), StorageManagementClient(cred, sub, **kw),
            SubscriptionClient(cred, **kw))


def share_client(double, account: str, share: str, key: str | None = None, **extra: Any):
    """A ShareClient on the account's file endpoint (path-style), SharedKey-authorised."""
    from azure.storage.fileshare import ShareClient

    endpoint = double.file_endpoint(account).rstrip("/")
    key = key or double.state.account_key(account)
    return ShareClient(endpoint, share, credential={"account_name": account, "account_key": key},
                       connection_verify=double.ca_bundle, **extra)
