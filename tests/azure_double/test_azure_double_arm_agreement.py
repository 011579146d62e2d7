"""The double reads templates with its own evaluator (arm/): no module of the double imports the
toolkit, and the one place the two readers meet is the test below, which checks that they read the
project's template (infra/provision/inference.json) alike."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from azure_double.arm import DeploymentScope, Template

DOUBLE = Path(__file__).resolve().parent
REPO = DOUBLE.parents[1]
TEMPLATE = json.loads((REPO / "infra" / "provision" / "inference.json").read_text())


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_of_the_double_imports_the_toolkit():
    modules = [p for p in DOUBLE.rglob("*.py") if not p.name.startswith("test_")]
    assert len(modules) > 10, "the scan found too few modules to prove anything"
    assert not [p.relative_to(DOUBLE) for p in modules if "aitk_nb" in _imports(p)]
    # and at run time: a deployment of the project's template loads nothing of the toolkit
    code = ("import sys, tempfile; from pathlib import Path; from azure_double import AzureDouble; "
            "from azure_double.scenario import provision; d = AzureDouble(Path(tempfile.mkdtemp())); "
            "out = provision(d, 'rg', 'app'); d.close(); "
            "assert out['ACA_APP_NAME'] == 'app', out; print(sorted(m for m in sys.modules if m.startswith('aitk_nb')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={"PYTHONPATH": str(DOUBLE.parent), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# names given explicitly: the toolkit's uniqueString is not ARM's algorithm (the double's is), so
# the template's uniqueString-based default names differ between the two readers by design
NAMES = {"storageAccountName": "aitkagree01", "acaEnvironmentName": "env-agree", "acaAppName": "app-agree",
         "acaLogAnalyticsName": "logs-agree", "apiKey": "key-agree"}
PARAMETER_SETS = [
    {},
    {"gpuWorkloadProfileType": "NC24-A100", "maximumInstanceCount": 3},
    {"defaultCommands": ["cd /mount/x", "python -m y --flag 'a b'"], "fileShareName": "share-two",
     "acaEnvironmentStorageName": "st2", "location": "swedencentral", "containerImage": "example/image:1"},
    {"gpuWorkloadProfileType": "Consumption-GPU-NC24-A100", "maximumInstanceCount": 10},
]


class _Live:
    """The same live state for both readers' runtime functions (reference, listKeys)."""

    def get(self, rid: str) -> dict:
        return {"id": rid, "properties": {"customerId": "cust-1", "configuration": {"ingress": {"fqdn": "app.example"}}}}

    def list(self, rid: str, action: str, api_version: str, body) -> dict:
        return {"keys": [{"value": "storage-key"}], "primarySharedKey": "ws-key"}


@pytest.mark.parametrize("values", PARAMETER_SETS)
def test_the_toolkit_and_the_double_read_the_project_template_alike(values):
    from aitk_nb.arm import DeploymentScope as ToolkitScope, Template as ToolkitTemplate

    values = {**NAMES, **values}
    live = _Live()
    theirs = ToolkitTemplate(TEMPLATE, values, scope=ToolkitScope("sub-1", "rg-agree", "westus3"),
                             functions={"reference": lambda rid, *a: live.get(rid)["properties"],
                                        "listKeys": lambda rid, *a: live.list(rid, "listKeys", "", None)})
    ours = Template(TEMPLATE, {k: {"value": v} for k, v in values.items()}, DeploymentScope("sub-1", "rg-agree", "westus3"),
                    runtime=live)
    assert ours.parameters == theirs.parameters()
    plan = ours.plan()
    assert [p.type for p in plan] == [r["type"] for r in TEMPLATE["resources"]] and all(p.deploy for p in plan)
    for planned in plan:
        mine = ours.resource_body(planned)
        toolkit = theirs.resource(planned.type)
        for key in ("type", "name", "location", "sku", "kind", "properties"):
            assert mine.get(key) == toolkit.get(key), f"{planned.type}: '{key}' differs"
    assert {k: v["value"] for k, v in ours.outputs().items()} == theirs.outputs()
