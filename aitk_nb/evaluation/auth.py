"""Why an endpoint refused an evaluation, when the reason is its API key (issue 20, item 7): the server
requires `Authorization: Bearer <AITK_API_KEY>` on every route but /health, and a client without the
key sees only the library's own words ("credentials were not provided")."""
from __future__ import annotations

KEY_SOURCES = ("set AITK_API_KEY in this environment to the server's key (a local replica has the AITK_API_KEY "
               "of the environment that ran deploy; on the azure target aitk-nb reads the key from the app's "
               "secret aitk-api-key itself), or in Python pass evaluate(..., api_key=...)")


def api_key_problem(endpoint: str, headers: dict | None) -> str | None:
    """The message naming the key when `endpoint` refuses this client for it (HTTP 401 on a route that
    needs the key), else None (the failure is something else). Called on the error path only."""
    import httpx

    try:
        r = httpx.get(endpoint.rstrip("/") + "/v1/models", headers=headers, timeout=10.0)
    except httpx.TransportError:
        return None
    if r.status_code != 401:
        return None
    if not headers:
        return f"{endpoint} requires an API key (HTTP 401: its server has AITK_API_KEY set) and none was sent; {KEY_SOURCES}"
    return f"{endpoint} refused the API key sent (HTTP 401: it is not its server's AITK_API_KEY); {KEY_SOURCES}"
