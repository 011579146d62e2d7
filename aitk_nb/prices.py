"""What a replica of a GPU workload profile costs, from the Azure Retail Prices API (issue 18).

`GET https://prices.azure.com/api/retail/prices?api-version=2023-01-01-preview&currencyCode=EUR
&$filter=serviceName eq 'Azure Container Apps' and armRegionName eq 'swedencentral' and priceType eq
'Consumption'` (no sign-in) answers `{"BillingCurrency", "Items": [...], "NextPageLink", "Count"}`;
each item has `meterName`, `retailPrice`, `unitOfMeasure` ("1 Second", "1 Hour"), `tierMinimumUnits`,
`armRegionName`, `type`, `isPrimaryMeterRegion`. One region and currency is fetched once (every page)
and cached for a day under the user's cache folder. Without the API (offline, a refusal, an answer
that is not a price list) or without a meter (a region or profile it does not list), the price is
"unknown" with the reason: never a made-up figure, and never an error that stops a verb.

`AITK_PRICES_URL` points the client elsewhere (the tests serve recorded pages on loopback);
`AITK_CURRENCY` (or `set_currency`, or `--currency` on a verb) picks the currency.
"""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from .errors import ConfigError

API = "https://prices.azure.com/api/retail/prices"
API_VERSION = "2023-01-01-preview"
SERVICE = "Azure Container Apps"
HOURS_PER_MONTH = 730  # Azure's pricing calculator's month
CACHE_SECONDS = 24 * 3600
DEADLINE_SECONDS = 8.0  # every page of one region; offline must not make provision slow
MAX_PAGES = 20
FAILED_SECONDS = 300  # a failed fetch is not tried again in this process for that long
# the currencies the API takes (learn.microsoft.com, "Azure Retail Prices overview", supported currencies)
CURRENCIES = ("USD", "AUD", "BRL", "CAD", "CHF", "CNY", "DKK", "EUR", "GBP", "INR", "JPY", "KRW", "NOK", "NZD",
              "RUB", "SEK", "TWD")


@dataclass(frozen=True)
class Profile:
    """A GPU workload profile's size (learn.microsoft.com, "Workload profiles in Azure Container Apps")
    and the meters a replica (serverless) or a node (dedicated) of it is billed on."""

    type: str
    gpu: str
    gpus: int
    vcpu: int
    memory_gib: int
    dedicated: bool
    gpu_meter: str

    @property
    def meters(self) -> tuple[str, str, str]:
        """(GPU, vCPU, memory) meter names."""
        if self.dedicated:
            return self.gpu_meter, "Dedicated vCPU Usage", "Dedicated Memory Usage"
        # serverless GPU apps are always billed at the active rate (no idle rate: "Billing in Azure Container Apps")
        return self.gpu_meter, "Standard vCPU Active Usage", "Standard Memory Active Usage"


PLAN_FEE_METER = "Dedicated Plan Management"
PROFILES = {p.type.lower(): p for p in (
    Profile("Consumption-GPU-NC8as-T4", "T4", 1, 8, 56, False, "Standard NC T4 v3 GPU Usage"),
    Profile("Consumption-GPU-NC24-A100", "A100", 1, 24, 220, False, "Standard NC A100 v4 GPU Usage"),
    Profile("NC24-A100", "A100", 1, 24, 220, True, "Dedicated GPU Usage"),
    Profile("NC48-A100", "A100", 2, 48, 440, True, "Dedicated GPU Usage"),
    Profile("NC96-A100", "A100", 4, 96, 880, True, "Dedicated GPU Usage"),
)}


def profile(type_: str | None) -> Profile | None:
    return PROFILES.get((type_ or "").lower())


# -- the currency ---------------------------------------------------------------------------------
_currency: contextvars.ContextVar[str | None] = contextvars.ContextVar("aitk_currency", default=None)
_default_currency: str | None = None


def check_currency(code: str, where: str = "--currency") -> str:
    code = code.strip().upper()
    if code not in CURRENCIES:
        raise ConfigError(f"{where} {code!r}: the Azure Retail Prices API prices in {', '.join(CURRENCIES)}; pick one of them")
    return code


def set_currency(code: str | None) -> None:
    """The currency every price is shown in from now on (None: `AITK_CURRENCY`, else USD)."""
    global _default_currency
    _default_currency = None if code is None else check_currency(code, "currency")


@contextlib.contextmanager
def using_currency(code: str | None) -> Iterator[None]:
    """Prices asked for inside (and in operations started inside) are in `code` (None: the default)."""
    token = _currency.set(None if code is None else check_currency(code))
    try:
        yield
    finally:
        _currency.reset(token)


def currency() -> str:
    return _currency.get() or _default_currency or check_currency(os.environ.get("AITK_CURRENCY") or "USD", "AITK_CURRENCY")


# -- the price list -------------------------------------------------------------------------------
class PriceUnknown(Exception):
    """No price: the message is the reason (said after "price unknown: ")."""


@dataclass
class PriceList:
    """Per-hour retail prices of the Container Apps meters of one region, in one currency."""

    region: str
    currency: str
    hourly: dict[str, float]
    fetched: float = field(default_factory=time.time)

    def rate(self, meter: str) -> float:
        if meter not in self.hourly:
            raise PriceUnknown(f"the Azure Retail Prices API lists no '{meter}' meter for Container Apps in {self.region}")
        return self.hourly[meter]


def _per_hour(unit: str) -> float | None:
    """How many of `unit` ("1 Second", "100 Seconds", "1 Hour", "1 GiB Hour") make an hour."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(?:[A-Za-z]+\s+)?(second|minute|hour)s?\s*", unit or "", re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        return None
    return {"second": 3600, "minute": 60, "hour": 1}[m.group(2).lower()] / float(m.group(1))


def hourly_rates(items: list[dict], region: str) -> dict[str, float]:
    """Meter name -> price an hour: the region's pay-as-you-go (Consumption) items, primary meters
    first; of a tiered meter the price past the free grant (the monthly free grant of vCPU and
    memory is the subscription's, shared by every app, so a replica-hour is priced without it)."""
    chosen: dict[str, dict] = {}
    for item in items:
        if not isinstance(item, dict) or item.get("armRegionName") != region or item.get("type", "Consumption") != "Consumption":
            continue
        name, unit = item.get("meterName"), _per_hour(str(item.get("unitOfMeasure", "")))
        if not isinstance(name, str) or unit is None or not isinstance(item.get("retailPrice"), (int, float)):
            continue
        key = (item.get("isPrimaryMeterRegion", True) is not False, float(item.get("tierMinimumUnits") or 0))
        old = chosen.get(name)
        if old is None or key > (old.get("isPrimaryMeterRegion", True) is not False, float(old.get("tierMinimumUnits") or 0)):
            chosen[name] = item
    return {name: float(i["retailPrice"]) * _per_hour(i["unitOfMeasure"]) for name, i in chosen.items()}


def cache_dir() -> Path:
    """Where price lists are kept: `AITK_PRICES_CACHE`, else the user's cache folder (platformdirs:
    ~/.cache/aitk-nb on Linux, ~/Library/Caches/aitk-nb on macOS, %LOCALAPPDATA% on Windows)."""
    if os.environ.get("AITK_PRICES_CACHE"):
        return Path(os.environ["AITK_PRICES_CACHE"]).expanduser()
    if os.environ.get("AITK_CACHE"):
        return Path(os.environ["AITK_CACHE"]).expanduser() / "prices"
    import platformdirs

    return Path(platformdirs.user_cache_dir("aitk-nb", appauthor=False)) / "prices"


def _url() -> str:
    return os.environ.get("AITK_PRICES_URL") or API


def _cache_file(region: str, code: str) -> Path:
    source = hashlib.sha256(_url().encode()).hexdigest()[:8]  # another API (a test's) has its own files
    return cache_dir() / f"container-apps-{region}-{code}-{source}.json"


_failed: dict[tuple[str, str, str], tuple[float, str]] = {}
_lock = threading.Lock()


def price_list(region: str, code: str | None = None) -> PriceList:
    """The region's Container Apps prices (cached a day); `PriceUnknown` with the reason otherwise."""
    code = code or currency()
    region = (region or "").lower().replace(" ", "")
    if not region:
        raise PriceUnknown("no region yet")
    path = _cache_file(region, code)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        data = json.loads(path.read_text(encoding="utf-8"))
        if time.time() - data["fetched"] < CACHE_SECONDS:
            return PriceList(region, code, {k: float(v) for k, v in data["hourly"].items()}, data["fetched"])
    key = (_url(), region, code)
    with _lock:
        failed = _failed.get(key)
    if failed and time.monotonic() - failed[0] < FAILED_SECONDS:
        raise PriceUnknown(failed[1])
    try:
        hourly = hourly_rates(_fetch_all(region, code), region)
        if not hourly:
            raise PriceUnknown(f"the Azure Retail Prices API lists no Container Apps prices in {region}")
    except PriceUnknown as e:  # remembered a while: status and eval do not ask again each time
        with _lock:
            _failed[key] = (time.monotonic(), str(e))
        raise
    prices = PriceList(region, code, hourly)
    with contextlib.suppress(OSError):  # a read-only cache folder costs a fetch next time, nothing more
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"fetched": prices.fetched, "region": region, "currency": code, "hourly": hourly}),
                       encoding="utf-8")
        tmp.replace(path)
    return prices


def _fetch_all(region: str, code: str) -> list[dict]:
    """Every page, in a thread given DEADLINE_SECONDS in all (a name lookup that hangs offline included)."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["items"] = _pages(region, code)
        except PriceUnknown as e:
            out["error"] = e
        except Exception as e:  # noqa: BLE001 - any failure of the price source is "price unknown", not a failed verb
            out["error"] = PriceUnknown(f"the Azure Retail Prices API could not be read ({type(e).__name__}: {e})")

    worker = threading.Thread(target=run, name="aitk-prices", daemon=True)
    worker.start()
    worker.join(DEADLINE_SECONDS + 1)
    if worker.is_alive():
        raise PriceUnknown(f"the Azure Retail Prices API did not answer within {DEADLINE_SECONDS:.0f} s (offline?)")
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["items"]  # type: ignore[return-value]


def _origin(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)  # the API's NextPageLink names the port (prices.azure.com:443): compare host names
    return parts.scheme, parts.hostname


def _get(client, url: str, params: dict | None, deadline: float):
    """One page; a throttled or failing answer (429, 5xx) is asked again once when its Retry-After (or 1 s)
    fits before the deadline."""
    import httpx

    for attempt in (1, 2):
        try:
            r = client.get(url, params=params)
        except httpx.TransportError as e:
            raise PriceUnknown(f"the Azure Retail Prices API ({url.split('?')[0]}) is out of reach "
                               f"({type(e).__name__}: {e or 'no answer'})") from None
        if attempt == 2 or not (r.status_code == 429 or r.status_code >= 500):
            return r
        try:
            wait = float(r.headers.get("Retry-After", "1"))
        except ValueError:
            wait = 1.0
        if time.monotonic() + wait > deadline:
            return r
        time.sleep(max(wait, 0))
    return r


def _pages(region: str, code: str) -> list[dict]:
    import httpx

    base = _url()
    params = {"api-version": API_VERSION, "currencyCode": f"'{code}'",  # quoted, as the API's documentation writes it
              "$filter": f"serviceName eq '{SERVICE}' and armRegionName eq '{region}' and priceType eq 'Consumption'"}
    items: list[dict] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    origin = _origin(base)
    with httpx.Client(timeout=httpx.Timeout(5.0, connect=2.0), follow_redirects=False) as client:
        url: str | None = base
        for _ in range(MAX_PAGES):
            r = _get(client, url, params if url == base else None, deadline)
            if r.status_code != 200:
                raise PriceUnknown(f"the Azure Retail Prices API answered HTTP {r.status_code}")
            try:
                page = r.json()
            except ValueError:
                page = None
            if not isinstance(page, dict) or not isinstance(page.get("Items"), list):
                raise PriceUnknown("the Azure Retail Prices API answered something that is not a price list")
            if page.get("BillingCurrency") not in (None, code):
                raise PriceUnknown(f"the Azure Retail Prices API answered in {page.get('BillingCurrency')}, not {code}")
            items += page["Items"]
            url = page.get("NextPageLink")
            if not url:
                return items
            if _origin(url) != origin:  # a next page is followed only on the API's own host
                raise PriceUnknown(f"the Azure Retail Prices API's next page is on another host ({urlsplit(url).netloc})")
            if time.monotonic() > deadline:
                break
    raise PriceUnknown(f"the Azure Retail Prices API's pages did not end within {DEADLINE_SECONDS:.0f} s")


# -- one replica of a profile -------------------------------------------------------------------------
@dataclass
class ReplicaPrice:
    """What one replica of `profile` in `region` costs an hour (a node, for a dedicated profile),
    with its parts; or `unknown`, the reason there is no figure."""

    profile: str | None
    region: str | None
    currency: str
    per_hour: float | None = None
    parts: list[tuple[str, float]] = field(default_factory=list)
    plan_fee_per_hour: float | None = None  # dedicated: the environment's plan management fee
    unknown: str | None = None

    @property
    def dedicated(self) -> bool:
        p = profile(self.profile)
        return bool(p and p.dedicated)

    @property
    def gpu(self) -> bool:
        return profile(self.profile) is not None

    def money(self, amount: float) -> str:
        return money(amount, self.currency)

    def describe(self) -> str:
        """"USD 3.42 an hour (A100 GPU 2.88 + 24 vCPU 0.35 + 220 GiB 0.19), Consumption-GPU-NC24-A100 in swedencentral"."""
        if self.per_hour is None:
            return f"price unknown: {self.unknown}"
        parts = " + ".join(f"{what} {amount:,.2f}" for what, amount in self.parts)
        unit = "node" if self.dedicated else "replica"
        return f"{self.money(self.per_hour)} an hour per {unit} ({parts}), {self.profile} in {self.region}"


def money(amount: float, code: str) -> str:
    return f"{code} {amount:,.2f}" if amount >= 0.01 or amount == 0 else f"{code} {amount:.4f}"


def replica_price(profile_type: str | None, region: str | None, code: str | None = None) -> ReplicaPrice:
    """One replica's (node's) price an hour; never raises for a price it cannot find (`unknown` says why)."""
    code = code or currency()
    region = (region or "").lower().replace(" ", "") or None
    out = ReplicaPrice(profile_type, region, code)
    p = profile(profile_type)
    if p is None:
        out.unknown = (f"workload profile type {profile_type!r} is not one aitk-nb prices (GPU profiles: "
                       f"{', '.join(x.type for x in PROFILES.values())})" if profile_type else "the workload profile is not known")
        return out
    if region is None:
        out.unknown = "the region is not known yet (pass --location, or it is the resource group's)"
        return out
    try:
        prices = price_list(region, code)
        gpu, vcpu, memory = (prices.rate(m) for m in p.meters)
        out.parts = [(f"{p.gpus}x {p.gpu} GPU" if p.gpus > 1 else f"{p.gpu} GPU", p.gpus * gpu),
                     (f"{p.vcpu} vCPU", p.vcpu * vcpu), (f"{p.memory_gib} GiB", p.memory_gib * memory)]
        if p.dedicated:
            out.plan_fee_per_hour = prices.rate(PLAN_FEE_METER)
    except PriceUnknown as e:
        out.parts, out.unknown = [], str(e)
        return out
    out.per_hour = sum(amount for _, amount in out.parts)
    return out
