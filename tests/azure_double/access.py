"""Who may do what: the bearer tokens the double hands out (and can expire), and role assignments
reduced to what a test needs, a list of denied actions.

Azure answers an action the caller's roles do not grant with 403 AuthorizationFailed:
"The client '<upn>' with object id '<oid>' does not have authorization to perform action '<action>'
over scope '<scope>' or the scope is invalid. If access was recently granted, please refresh your
credentials." (docs: "Troubleshoot Azure RBAC"). An action is '<namespace>/<type path>/<verb>':
read, write, delete, or '<name>/action' for a POST (listKeys, listSecrets, ...). A deployment
checks each resource it writes, and the runtime functions (listKeys()) their action, with the
deployment failing on the first refusal.

An expired token is refused with 401 ExpiredAuthenticationToken and a WWW-Authenticate challenge."""
from __future__ import annotations

import fnmatch
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass

from .errors import ResourceFailure

_VERB = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass
class Token:
    value: str
    expires: float
    expired: bool = False


class Access:
    def __init__(self, tenant_id: str):
        self.tenant_id = tenant_id
        self.object_id = str(uuid.uuid4())
        self.client = "test@example.com"
        self.denied: list[str] = []
        self.tokens: dict[str, Token] = {}
        self._lock = threading.Lock()
        self.first_token = self.issue().value

    # -- tokens ------------------------------------------------------------------------------------------------
    def issue(self, lifetime: float = 3600) -> Token:
        token = Token("double-" + secrets.token_urlsafe(24), time.time() + lifetime)
        with self._lock:
            self.tokens[token.value] = token
        return token

    def current(self) -> Token:
        """The newest token still valid (a fresh one once all are expired)."""
        with self._lock:
            valid = [t for t in self.tokens.values() if not t.expired]
        return valid[-1] if valid else self.issue()

    def expire_tokens(self) -> None:
        """Every token handed out so far is refused as expired from now on; the credential and the
        managed-identity endpoint hand out new ones, as a fresh sign-in would."""
        with self._lock:
            for t in self.tokens.values():
                t.expired = True

    def authenticate(self, authorization: str) -> ResourceFailure | None:
        if not authorization.startswith("Bearer "):
            why = "The access token is missing." if not authorization else "The access token is invalid."
            return ResourceFailure("InvalidAuthenticationToken" if authorization else "AuthenticationFailed", why, 401)
        token = self.tokens.get(authorization[7:])
        if token is None:
            return ResourceFailure("InvalidAuthenticationToken", "The access token is invalid.", 401)
        if token.expired or token.expires < time.time():
            then = time.strftime("%m/%d/%Y %I:%M:%S %p", time.gmtime(min(token.expires, time.time() - 1)))
            now = time.strftime("%m/%d/%Y %I:%M:%S %p", time.gmtime())
            return ResourceFailure("ExpiredAuthenticationToken", f"The access token expiry UTC time '{then}' is earlier than "
                                   f"current UTC time '{now}'.", 401)
        return None

    def challenge(self, failure: ResourceFailure) -> dict[str, str]:
        description = "The access token has expired." if failure.code == "ExpiredAuthenticationToken" else failure.message
        return {"WWW-Authenticate": f'Bearer authorization_uri="https://login.microsoftonline.com/{self.tenant_id}", '
                                    f'error="invalid_token", error_description="{description}"'}

    # -- authorization ------------------------------------------------------------------------------------------
    def deny(self, action: str) -> None:
        """Refuse an action (fnmatch pattern, case-insensitive: 'Microsoft.App/containerApps/listSecrets/action',
        'Microsoft.Storage/*/write') for the caller, everywhere."""
        self.denied.append(action)

    def allow(self, action: str | None = None) -> None:
        """Lift one denial (or all)."""
        self.denied = [] if action is None else [a for a in self.denied if a != action]

    def check(self, action: str, scope: str) -> None:
        if any(fnmatch.fnmatch(action.lower(), d.lower()) for d in self.denied):
            raise ResourceFailure("AuthorizationFailed", f"The client '{self.client}' with object id '{self.object_id}' does not "
                                  f"have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                                  "If access was recently granted, please refresh your credentials.", 403)

    def check_write(self, resource_id: str, rtype: str) -> None:
        self.check(f"{rtype}/write", resource_id)

    def check_request(self, method: str, path: str) -> None:
        """The action an ARM request performs, checked against the denials."""
        action, scope = request_action(method, path)
        if action:
            self.check(action, scope)


def request_action(method: str, path: str) -> tuple[str | None, str]:
    """('Microsoft.App/containerApps/listSecrets/action', scope) for an ARM request path."""
    parts = [p for p in path.split("/") if p]
    lower = [p.lower() for p in parts]
    if "providers" not in lower:
        if len(parts) >= 4 and lower[2] == "resourcegroups":
            return f"Microsoft.Resources/subscriptions/resourceGroups/{_VERB.get(method, 'action')}", "/" + "/".join(parts[:4])
        return None, ""
    at = len(lower) - 1 - lower[::-1].index("providers")
    rest = parts[at + 1:]
    if not rest:
        return None, ""
    namespace, segments = rest[0], rest[1:]
    types, names = segments[0::2], segments[1::2]
    scope = "/" + "/".join(parts[:at + 1 + 1 + 2 * len(names)])
    if method == "POST" and len(types) > len(names):
        return f"{namespace}/{'/'.join(types[:-1])}/{types[-1]}/action", scope
    verb = _VERB.get(method)
    if verb is None or re.fullmatch(r"operation(s|statuses|results)", types[-1] if types else "", re.IGNORECASE):
        return None, scope
    return f"{namespace}/{'/'.join(types)}/{verb}", scope
