"""Ready-made states for tests: a resource group with the repo's template deployed (through the real
SDK), so a deploy/status/logs test can start from "provisioned"."""
from __future__ import annotations

import json
from pathlib import Path

from .clients import clients

TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "provision" / "inference.json"


def deployment_body(parameters: dict | None = None, template: dict | None = None) -> dict:
    tpl = template or json.loads(TEMPLATE.read_text())
    return {"properties": {"template": tpl, "mode": "Incremental",
                           "parameters": {k: {"value": v} for k, v in (parameters or {}).items()}}}


def provision(double, resource_group: str = "rg-aitk", app_name: str = "aitk-app", deployment: str = "aitk-inference",
              parameters: dict | None = None, location: str = "eastus") -> dict:
    """Create the group and deploy the template; returns the outputs {NAME: value}."""
    res, dep, *_ = clients(double)
    res.resource_groups.create_or_update(resource_group, {"location": location})
    params = {"acaAppName": app_name, **(parameters or {})}
    result = dep.deployments.begin_create_or_update(resource_group, deployment, deployment_body(params)).result()
    return {k: v["value"] for k, v in result.properties.outputs.items()}
