"""Microsoft.App outside the apps themselves: managed environments (workload profiles), their
storages, Container Apps jobs, and the location-level lists (usages, workload profile types).

Workload profiles, from learn.microsoft.com "Workload profiles in Azure Container Apps": every
environment has the Consumption profile; dedicated GPU profiles (NC24-A100, NC48-A100, NC96-A100)
can only be added when the environment is created, while serverless GPU (Consumption-GPU-*) and
other profiles can be added later (the current page; an older one said any GPU profile only at
creation). A serverless GPU profile takes no minimumCount/maximumCount ("Workload Profile property
'MinimumCount' is not supported for Consumption_GPU_NC24_A100", WorkloadProfilePropertyNotSupported,
as Azure answers). A profile that an app or job runs on cannot be removed, and an environment that
still holds apps or jobs cannot be deleted (ManagedEnvironmentHas..., as Azure words it for its
builders). The codes WorkloadProfileCannotBeAdded and WorkloadProfileInUse are the double's own:
no public source shows the codes Azure uses for those two refusals.

Usages: `currentValue` of a GPU usage counts the GPUs that running replicas of apps on serverless
GPU profiles hold in that location (plus whatever a test says the rest of the subscription holds),
so an app already at the quota shows its own use."""
from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Callable

from .errors import ResourceFailure
from .httpserver import Request, Response
from .resources import Put, TypeRules

if TYPE_CHECKING:
    from .double import AzureDouble
    from .mgmt import Management

ENV = "Microsoft.App/managedEnvironments"
ENV_STORAGE = "Microsoft.App/managedEnvironments/storages"
JOB = "Microsoft.App/jobs"
APP = "Microsoft.App/containerApps"

# (name, display name, category, cores, memory GiB, GPUs per node or replica)
WORKLOAD_PROFILE_TYPES = [
    ("Consumption", "Consumption", "Consumption", 4, 8, 0),
    ("Consumption-GPU-NC8as-T4", "Consumption GPU NC8as T4", "GPU", 8, 56, 1),
    ("Consumption-GPU-NC24-A100", "Consumption GPU NC24 A100", "GPU", 24, 220, 1),
    ("D4", "Dedicated-D4", "GeneralPurpose", 4, 16, 0),
    ("D8", "Dedicated-D8", "GeneralPurpose", 8, 32, 0),
    ("E4", "Dedicated-E4", "MemoryOptimized", 4, 32, 0),
    ("NC24-A100", "Dedicated-NC24-A100", "GPU", 24, 220, 1),
    ("NC48-A100", "Dedicated-NC48-A100", "GPU", 48, 440, 2),
    ("NC96-A100", "Dedicated-NC96-A100", "GPU", 96, 880, 4),
]
GPU_USAGE = {"consumption-gpu-nc8as-t4": "ManagedEnvironmentConsumptionT4Gpus",
             "consumption-gpu-nc24-a100": "ManagedEnvironmentConsumptionNCA100Gpus"}
DEFAULT_USAGES = [
    ("ManagedEnvironmentConsumptionT4Gpus", "Managed Environment Consumption T4 Gpus", 1),
    ("ManagedEnvironmentConsumptionNCA100Gpus", "Managed Environment Consumption NCA100 Gpus", 1),
    ("ManagedEnvironmentGeneralPurposeCores", "Managed Environment General Purpose Cores", 100),
    ("ManagedEnvironmentCount", "Managed Environment Count", 15),
]


def _profile_type(name: str) -> tuple | None:
    return next((p for p in WORKLOAD_PROFILE_TYPES if p[0].lower() == str(name).lower()), None)


def is_dedicated_gpu(profile_type: str) -> bool:
    p = _profile_type(profile_type)
    return p is not None and p[2] == "GPU" and not p[0].lower().startswith("consumption")


def gpus_per_replica(profile_type: str) -> int:
    p = _profile_type(profile_type)
    return p[5] if p is not None and p[0].lower().startswith("consumption-gpu") else 0


def _location_key(location: str) -> str:
    return location.lower().replace(" ", "")


class Environments:
    def __init__(self, double: "AzureDouble", mgmt: "Management"):
        self.d, self.m = double, mgmt
        # usage name -> [localized name, limit, used elsewhere in the subscription], per location ("*" = any)
        self.quota: dict[str, dict[str, list]] = {"*": {n: [loc, lim, 0] for n, loc, lim in DEFAULT_USAGES}}
        mgmt.resources.register(ENV, TypeRules(put=self._put_env, refuse_delete=self._refuse_env_delete,
                                               settable=("properties.workloadProfiles",)))
        mgmt.resources.register(ENV_STORAGE, TypeRules(put=self._put_storage, tracked=False))
        mgmt.resources.register(JOB, TypeRules(put=self._put_job))

    def routes(self, r: Callable, sub: str, prov: str) -> None:
        loc = sub + r"/providers/Microsoft\.App/locations/(?P<loc>[^/]+)"
        env = prov + r"/Microsoft\.App/managedEnvironments/(?P<env>[^/]+)"
        r("GET", loc + r"/usages", self.list_usages)
        r("GET", loc + r"/availableManagedEnvironmentsWorkloadProfileTypes", self.list_profile_types)
        r("GET", prov + r"/Microsoft\.App/managedEnvironments", self.list_envs)
        r("GET", env + r"/storages", self.list_storages)
        r("GET", prov + r"/Microsoft\.App/jobs", self.list_jobs)

    # -- environments -------------------------------------------------------------------------------------------------
    def users(self, env_id: str) -> list[dict]:
        """The apps and jobs that run in an environment."""
        return [b for t in (APP, JOB) for b in self.d.state.of_type(t)
                if str(b["properties"].get("environmentId") or b["properties"].get("managedEnvironmentId") or "").lower() == env_id.lower()]

    def _put_env(self, p: Put) -> None:
        old = (p.existing or {}).get("properties", {})
        profiles = p.props.get("workloadProfiles") or [{"name": "Consumption", "workloadProfileType": "Consumption"}]
        self._check_profiles(p, profiles, old.get("workloadProfiles") or [] if p.existing else None)
        p.props["workloadProfiles"] = profiles
        p.props["defaultDomain"] = old.get("defaultDomain") or f"{uuid.uuid4().hex[:10]}.{p.body.get('location', 'eastus')}.azurecontainerapps.io"
        p.props["staticIp"] = "127.0.0.1"
        p.props["eventStreamEndpoint"] = f"{self.d.arm_endpoint}/logstream{p.id}/eventstream"
        p.props.setdefault("zoneRedundant", False)

    def _check_profiles(self, p: Put, profiles: list, before: list | None) -> None:
        names = set()
        for prof in profiles:
            name, ptype = prof.get("name"), prof.get("workloadProfileType")
            known = _profile_type(ptype)
            if not name or known is None:
                raise ResourceFailure("WorkloadProfileTypeNotSupported", f"Workload profile type '{ptype}' is not supported in "
                                      f"location '{p.body.get('location')}' (profile '{name}').")
            if name.lower() in names:
                raise ResourceFailure("WorkloadProfileNameDuplicated", f"Workload profile name '{name}' is used more than once.")
            names.add(name.lower())
            if known[0].lower().startswith("consumption-gpu"):
                for prop in ("minimumCount", "maximumCount"):
                    if prop in prof:
                        raise ResourceFailure("WorkloadProfilePropertyNotSupported", f"Workload Profile property "
                                              f"'{prop[0].upper() + prop[1:]}' is not supported for {known[0].replace('-', '_')}")
        if before is None:
            return
        old = {x["name"].lower(): x for x in before}
        new = {x["name"].lower(): x for x in profiles}
        for key, prof in new.items():
            if key not in old and is_dedicated_gpu(prof["workloadProfileType"]):
                raise ResourceFailure("WorkloadProfileCannotBeAdded", f"Workload profile '{prof['name']}' of type "
                                      f"'{prof['workloadProfileType']}' cannot be added to managed environment '{p.name}': a dedicated "
                                      "GPU workload profile can only be added when the environment is created.")
            if key in old and old[key]["workloadProfileType"].lower() != prof["workloadProfileType"].lower():
                raise ResourceFailure("WorkloadProfileTypeCannotBeChanged", f"The type of workload profile '{prof['name']}' cannot be "
                                      f"changed from '{old[key]['workloadProfileType']}' to '{prof['workloadProfileType']}'.")
        for key, prof in old.items():
            if key in new:
                continue
            used = [b["name"] for b in self.users(p.id) if str(b["properties"].get("workloadProfileName", "")).lower() == key]
            if used:
                raise ResourceFailure("WorkloadProfileInUse", f"Workload profile '{prof['name']}' cannot be removed from managed "
                                      f"environment '{p.name}': it is used by {', '.join(used)}.")

    def _refuse_env_delete(self, body: dict) -> ResourceFailure | None:
        apps = [b for b in self.users(body["id"]) if b["type"] == APP]
        jobs = [b for b in self.users(body["id"]) if b["type"] == JOB]
        if apps or jobs:
            what = f"{len(apps)} ContainerApps" if apps else f"{len(jobs)} Jobs"
            return ResourceFailure("ManagedEnvironmentHasContainerApps" if apps else "ManagedEnvironmentHasJobs",
                                   f"The specified environment {body['name']} cannot be deleted because it still contains {what}.", 409)
        return None

    def environment(self, env_id: str, who: str) -> dict:
        env = self.d.state.get(env_id or "")
        if env is None or env["type"].lower() != ENV.lower():
            raise ResourceFailure("ManagedEnvironmentNotFound", f"Managed environment '{env_id}' for {who} was not found.", 404)
        return env

    def environment_of(self, p: Put) -> dict:
        """The environment an app or job names: `environmentId`, or the older `managedEnvironmentId`
        (deprecated in 2024-03-01; both accepted, and they must agree)."""
        ids = {str(p.props[k]) for k in ("environmentId", "managedEnvironmentId") if p.props.get(k)}
        if len({i.lower() for i in ids}) > 1:
            raise ResourceFailure("InvalidRequestContent", "properties.environmentId and properties.managedEnvironmentId name "
                                  "different environments.")
        env = self.environment(next(iter(ids), ""), f"'{p.name}'")
        wp = p.props.get("workloadProfileName")
        profiles = {x.get("name", "").lower() for x in env["properties"].get("workloadProfiles", [])}
        if wp and wp.lower() not in profiles:
            raise ResourceFailure("WorkloadProfileNameNotFound", f"Workload profile name '{wp}' is not found in managed environment "
                                  f"'{env['name']}'. Available workload profiles: "
                                  f"{', '.join(x['name'] for x in env['properties'].get('workloadProfiles', []))}.")
        p.props["environmentId"] = p.props["managedEnvironmentId"] = env["id"]
        return env

    def list_envs(self, req: Request, sub: str, rg: str) -> Response:
        return self.m.json(200, {"value": self.d.state.of_type(ENV, rg), "nextLink": None})

    # -- environment storages -----------------------------------------------------------------------------------------
    def _put_storage(self, p: Put) -> None:
        af = p.props.get("azureFile") or {}
        account = af.get("accountName", "")
        keys = self.d.state.keys.get(account.lower())
        if keys is None:
            raise ResourceFailure("StorageAccountNotFound", f"Storage account '{account}' was not found.")
        if af.get("accountKey") not in keys:
            raise ResourceFailure("ManagedEnvironmentStorageAccountKeyInvalid", f"The account key for storage account '{account}' is invalid.")
        if not self.d.files.share_exists(account, af.get("shareName", "")):
            raise ResourceFailure("StorageShareNotFound", f"The file share '{af.get('shareName')}' was not found in storage account '{account}'.")
        af.setdefault("accessMode", "ReadWrite")

    def list_storages(self, req: Request, sub: str, rg: str, env: str) -> Response:
        env_id = f"{self.m.rg_id(rg)}/providers/{ENV}/{env}"
        self.environment(env_id, f"'{env}'")
        return self.m.json(200, {"value": [s for s in self.d.state.of_type(ENV_STORAGE, rg)
                                           if s["id"].lower().startswith(env_id.lower() + "/")]})

    # -- jobs -------------------------------------------------------------------------------------------------------------
    def _put_job(self, p: Put) -> None:
        self.environment_of(p)
        config = p.props.setdefault("configuration", {})
        config.setdefault("triggerType", "Manual")
        config.setdefault("replicaTimeout", 1800)
        config.setdefault("replicaRetryLimit", 0)
        if config["triggerType"] == "Manual":
            config.setdefault("manualTriggerConfig", {"replicaCompletionCount": 1, "parallelism": 1})
        p.props.setdefault("template", {"containers": []})
        p.props["eventStreamEndpoint"] = f"{self.d.arm_endpoint}/logstream{p.id}/eventstream"

    def list_jobs(self, req: Request, sub: str, rg: str) -> Response:
        return self.m.json(200, {"value": self.d.state.of_type(JOB, rg), "nextLink": None})

    # -- location-level: usages and workload profile types ---------------------------------------------------------------
    def set_quota(self, name: str, limit: float, current: float = 0, location: str | None = None) -> None:
        table = self.quota.setdefault(_location_key(location or "*"), {})
        localized = self.quota["*"].get(name, [re.sub(r"(?<!^)(?=[A-Z])", " ", name)])[0]
        table[name] = [localized, limit, current]

    def gpus_in_use(self, location: str) -> dict[str, int]:
        """GPUs held by running replicas of apps on serverless GPU profiles, by usage name."""
        used: dict[str, int] = {}
        for app in self.d.state.of_type(APP):
            if _location_key(app.get("location", "")) != _location_key(location):
                continue
            env = self.d.state.get(app["properties"].get("environmentId") or "")
            wp = str(app["properties"].get("workloadProfileName") or "").lower()
            profile = next((x for x in (env or {}).get("properties", {}).get("workloadProfiles", []) if x["name"].lower() == wp), None)
            usage = GPU_USAGE.get(str((profile or {}).get("workloadProfileType", "")).lower())
            if usage:
                used[usage] = used.get(usage, 0) + self.d.apps.running_replicas(app["id"]) * gpus_per_replica(profile["workloadProfileType"])
        return used

    def list_usages(self, req: Request, sub: str, loc: str) -> Response:
        table = dict(self.quota["*"])
        table.update(self.quota.get(_location_key(loc), {}))
        used = self.gpus_in_use(loc)
        return self.m.json(200, {"value": [{"unit": "Count", "currentValue": other + used.get(n, 0), "limit": lim,
                                            "name": {"value": n, "localizedValue": localized}}
                                           for n, (localized, lim, other) in table.items()]})

    def list_profile_types(self, req: Request, sub: str, loc: str) -> Response:
        return self.m.json(200, {"value": [
            {"id": f"/subscriptions/{sub}/providers/Microsoft.App/locations/{loc}/availableManagedEnvironmentsWorkloadProfileTypes/{n}",
             "name": n, "type": "Microsoft.App/locations/availableManagedEnvironmentsWorkloadProfileTypes", "location": loc,
             "properties": {"displayName": display, "category": category, "applicability": "LocationDefault",
                            "cores": cores, "memoryGiB": memory, "gpus": gpus}}
            for n, display, category, cores, memory, gpus in WORKLOAD_PROFILE_TYPES]})
