"""One place that builds the Azure SDK clients: credential, ARM endpoint, TLS trust and retries.

The ARM endpoint (default https://management.azure.com) and a CA bundle can be set with
AITK_ARM_ENDPOINT / AITK_CA_BUNDLE (sovereign clouds, proxies, the test double)."""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import AitkError
from .signin import FIX, NotSignedInError, SignedIn, first_line, refused_sign_in

DEFAULT_ARM = "https://management.azure.com"
# azure-core's RetryPolicy (honours Retry-After on 429/503); bounded so a notebook never hangs.
RETRY = {"retry_total": 6, "retry_backoff_factor": 0.8, "retry_backoff_max": 30}


class AzureError(AitkError):
    """An Azure call failed; the message carries ARM's code, message and request id."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.code, self.status, self.request_id = code, status, request_id


@contextlib.contextmanager
def azure_call(what: str) -> Iterator[None]:
    """Turn SDK exceptions into one AzureError that says what failed and what to do."""
    from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ServiceRequestError,
                                       ServiceResponseError)

    try:
        yield
    except ClientAuthenticationError as e:  # a 401 the response hook did not see (a data-plane client's)
        raise NotSignedInError(f"{what}: Azure refused the sign-in ({first_line(e)}); {FIX}") from e
    except HttpResponseError as e:
        code = getattr(e.error, "code", None) if getattr(e, "error", None) else None
        message = getattr(e.error, "message", None) if getattr(e, "error", None) else None
        request_id = e.response.headers.get("x-ms-request-id") if e.response is not None else None
        detail = f"{code}: {message}" if code else first_line(e)
        rid = f" (request id {request_id})" if request_id else ""
        raise AzureError(f"{what} failed: {detail}{rid}", code=code, status=e.status_code, request_id=request_id) from e
    except ServiceRequestError as e:
        raise AzureError(f"{what}: cannot reach Azure ({first_line(e)}); check the network and retry") from e
    except ServiceResponseError as e:  # the connection dropped mid-request, after the SDK's retries
        raise AzureError(f"{what}: the connection to Azure kept dropping ({first_line(e)}); run it again, "
                         "only what is missing or changed is sent") from e


@contextlib.contextmanager
def missing_ok(what: str) -> Iterator[None]:
    """Like azure_call, but a resource that does not exist is not an error (the block is skipped)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        with azure_call(what):
            yield
    except AzureError as e:
        if not isinstance(e.__cause__, ResourceNotFoundError):
            raise


def service_value(value: Any) -> str:
    """A value as the service spells it: an SDK enum's value ("Running"), a plain string as it is, None as ""."""
    return "" if value is None else str(getattr(value, "value", value))


@dataclass
class AzureSession:
    """Clients for one subscription. Without a subscription id: $AZURE_SUBSCRIPTION_ID, else the only
    one the credential can see (more than one is an error that lists them)."""

    subscription_id: str | None
    credential: Any = None
    arm_endpoint: str = field(default_factory=lambda: os.environ.get("AITK_ARM_ENDPOINT", DEFAULT_ARM))
    ca_bundle: str | None = field(default_factory=lambda: os.environ.get("AITK_CA_BUNDLE"))

    def __post_init__(self) -> None:
        self.subscription_id = self.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID") or None
        if self.credential is None:
            from azure.identity import DefaultAzureCredential

            # the same TLS trust as the clients (a proxy's or sovereign cloud's CA, the test double)
            self.credential = DefaultAzureCredential(**self.transport_kwargs)
        if not isinstance(self.credential, SignedIn):
            self.credential = SignedIn(self.credential)
        self.arm_endpoint = self.arm_endpoint.rstrip("/")

    @property
    def transport_kwargs(self) -> dict:
        """TLS trust for every client (management and data plane)."""
        return {"connection_verify": self.ca_bundle} if self.ca_bundle else {}

    @property
    def httpx_verify(self):
        """TLS trust for httpx (the ingress, the log stream): the CA bundle's, else the system's."""
        import ssl

        return ssl.create_default_context(cafile=self.ca_bundle) if self.ca_bundle else True

    @property
    def subscription(self) -> str:
        """The subscription id, found once when none was given."""
        if not self.subscription_id:
            subs = self.subscriptions()
            if len(subs) != 1:
                seen = "; ".join(f"{name} ({sid})" for sid, name in subs) or "none"
                raise AitkError(f"--subscription: the account sees {len(subs)} subscriptions ({seen}); "
                                "pass --subscription ID or set AZURE_SUBSCRIPTION_ID")
            self.subscription_id = subs[0][0]
        return self.subscription_id

    def _client_kwargs(self) -> dict:
        return {"base_url": self.arm_endpoint, "credential_scopes": [self.arm_endpoint + "/.default"],
                "raw_response_hook": refused_sign_in, **self.transport_kwargs, **RETRY}

    def _mgmt(self, cls, **extra):
        return cls(self.credential, self.subscription, **self._client_kwargs(), **extra)

    @functools.cached_property
    def subscription_client(self):
        from azure.mgmt.resource.subscriptions import SubscriptionClient

        return SubscriptionClient(self.credential, **self._client_kwargs())

    @functools.cached_property
    def resources(self):
        from azure.mgmt.resource.resources import ResourceManagementClient

        return self._mgmt(ResourceManagementClient)

    @functools.cached_property
    def deployments(self):
        from azure.mgmt.resource.deployments import DeploymentsMgmtClient

        return self._mgmt(DeploymentsMgmtClient)

    @functools.cached_property
    def apps(self):
        from azure.mgmt.appcontainers import ContainerAppsAPIClient

        return self._mgmt(ContainerAppsAPIClient)

    @functools.cached_property
    def storage(self):
        from azure.mgmt.storage import StorageManagementClient

        return self._mgmt(StorageManagementClient)

    def subscriptions(self) -> list[tuple[str, str]]:
        """(id, display name) of every subscription the credential can see (for the pickers)."""
        with azure_call("listing subscriptions"):
            return [(s.subscription_id, s.display_name) for s in self.subscription_client.subscriptions.list()
                    if service_value(s.state) in ("", "Enabled", "Warned")]

    def resource_groups(self) -> list[tuple[str, str]]:
        with azure_call("listing resource groups"):
            return [(g.name, g.location) for g in self.resources.resource_groups.list()]
