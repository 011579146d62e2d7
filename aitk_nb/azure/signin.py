"""A sign-in that is missing or expired, wherever an Azure call meets it, is one `NotSignedInError`
naming the fix (issue 10): from the credential (no credential gives a token) through `SignedIn`, and
from Azure (401: the token expired or is refused) through `refused_sign_in`, a response hook on every
management client. Both raise past the SDK's own error handling, so a call that is not wrapped in
`azure_call` (an existence check, say) still ends in one line rather than a traceback.

azure-identity also logs its own report of a failed sign-in (a warning that lists every credential it
tried) before raising; the error says it, so that report is not printed for the toolkit's calls."""
from __future__ import annotations

import contextvars
import logging
import re
from typing import Any

from ..errors import AitkError

FIX = ("sign in with `az login` (a service principal: set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET; "
       "the Python API: credential=)")
_in_sign_in = contextvars.ContextVar("aitk_in_sign_in", default=False)


class NotSignedInError(AitkError):
    """No credential gave a token, or Azure refused the one it gave."""


class SignedIn:
    """The toolkit's view of a credential: `get_token`, with a failure raised as `NotSignedInError`."""

    def __init__(self, credential: Any):
        self.credential = credential
        _quiet_identity_loggers()

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.exceptions import ClientAuthenticationError

        token = _in_sign_in.set(True)
        try:
            return self.credential.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as e:  # CredentialUnavailableError too
            raise NotSignedInError(f"not signed in to Azure ({first_line(e)}); {FIX}") from None
        finally:
            _in_sign_in.reset(token)


def refused_sign_in(response) -> None:
    """A management client's response hook: a 401 is a sign-in Azure refused (expired, another tenant).
    The reason is in the error body, or (a HEAD has none) in the WWW-Authenticate challenge. The hook
    sees a response before the authentication policy does, so a claims challenge is left to it."""
    http = response.http_response
    if http.status_code != 401:
        return
    if "claims=" in http.headers.get("WWW-Authenticate", ""):
        return  # a claims challenge (continuous access evaluation): the SDK's authentication policy answers it
    try:
        http.read()  # a long-running operation's first response is streamed
        error = http.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    challenge = dict(re.findall(r'(\w+)="([^"]*)"', http.headers.get("WWW-Authenticate", "")))
    if error.get("code"):
        reason = f"{error['code']}: {error.get('message')}"
    elif challenge.get("error"):
        reason = f"{challenge['error']}: {challenge.get('error_description', '')}".rstrip(": ")
    else:
        reason = "HTTP 401"
    expired = error.get("code") == "ExpiredAuthenticationToken" or "expire" in challenge.get("error_description", "")
    raise NotSignedInError(f"Azure refused the sign-in ({reason}); {FIX.replace('sign in', 'sign in again', expired)}")


class _QuietDuringSignIn(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_in_sign_in.get() and record.levelno >= logging.WARNING)


_QUIET = _QuietDuringSignIn()


def _quiet_identity_loggers() -> None:
    """A logger's filters apply to what it logs itself, not to its children's records: so each of
    azure-identity's module loggers (made when its modules are imported) gets the filter."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("azure.identity"):
            logger = logging.getLogger(name)
            if _QUIET not in logger.filters:
                logger.addFilter(_QUIET)


def first_line(e: Exception) -> str:
    """An exception's first line (the SDK's messages run on for pages)."""
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

