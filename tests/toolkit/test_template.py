"""The Bicep template and the ARM JSON are the same template; the JSON keeps secrets out of outputs.

inference.bicep is what a user deploys by hand, inference.json what the library deploys and the
local target reads: the Bicep is parsed with pycep-parser and compared with the JSON (parameters,
resource types and api-versions, outputs, literal variables, checkov suppressions). checkov runs
on infra/ when found: $CHECKOV or `checkov` on PATH. It lives in a venv of its own (checkov 3.3.30
pins packaging<24, which pytest here cannot use).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from aitk_nb.config import InferenceConfig
from helpers import REPO

PROVISION = REPO / "infra" / "provision"
BICEP = PROVISION / "inference.bicep"
CONFIG_KEYS = sorted(k for k in InferenceConfig.__dataclass_fields__ if k != "TARGET")
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Z][A-Z_\d]*)(?::(.*))?")
# checkov's Bicep reader does not look into the body of a conditional resource (`= if (...)`), so a
# check that reads its properties fails there while the ARM JSON scan of the same resource passes it:
# suppressed in the Bicep only (the JSON scan is the one that sees the properties)
BICEP_READER_ONLY = {"CKV_AZURE_44"}

# Bicep decorator -> ARM parameter property
DECORATORS = {"min_value": "minValue", "max_value": "maxValue", "min_length": "minLength",
              "max_length": "maxLength", "allowed": "allowedValues"}


@pytest.fixture(scope="module")
def arm() -> dict:
    return json.loads((PROVISION / "inference.json").read_text())


@pytest.fixture(scope="module")
def bicep() -> dict:
    from pycep import BicepParser

    return BicepParser().parse(file_path=BICEP)


def _text(s: str) -> str:
    """A Bicep string literal as pycep returns it, unescaped."""
    return s.replace("\\'", "'").replace("\\\\", "\\")


def _as_arm(value):
    """A Bicep literal or simple interpolated string as its ARM JSON form; None if neither."""
    if isinstance(value, str):
        args = re.findall(r"\$\{([^}]*)\}", value)
        if not args:
            return _text(value)
        n = iter(range(len(args)))
        fmt = re.sub(r"\$\{[^}]*\}", lambda _: "{%d}" % next(n), value).replace("'", "''")
        return "[format('{}', {})]".format(fmt, ", ".join(args))
    if isinstance(value, bool | int):
        return value
    if isinstance(value, list) and all(not isinstance(v, dict) for v in value):
        return [_as_arm(v) for v in value]
    return None


def _bicep_type(param: dict) -> str:
    secure = any(d["type"] == "secure" for d in param["decorators"])
    return ("secure" if secure else "") + param["type"]


def test_the_bicep_declares_the_jsons_parameters_with_the_same_types_bounds_and_defaults(arm, bicep):
    assert list(bicep["parameters"]) == list(arm["parameters"])
    for name, b in bicep["parameters"].items():
        a = arm["parameters"][name]
        assert _bicep_type(b).lower() == a["type"].lower(), name
        decorators = {d["type"]: d.get("argument") for d in b["decorators"]}
        assert _text(decorators.get("description", "")) == a.get("metadata", {}).get("description", ""), name
        for deco, prop in DECORATORS.items():
            assert decorators.get(deco) == a.get(prop), f"{name}: @{deco} vs {prop}"
        assert ("default" in b) == ("defaultValue" in a), name
        if "default" in b:
            literal = _as_arm(b["default"])
            if literal is not None:
                assert literal == a["defaultValue"], name
            else:  # an expression in both (e.g. resourceGroup().location, newGuid())
                assert isinstance(a["defaultValue"], str) and a["defaultValue"].startswith("["), name


def test_the_bicep_deploys_the_same_resource_types_at_the_same_api_versions(arm, bicep):
    deployed = sorted((r["type"], r["api_version"]) for r in bicep["resources"].values() if not r["existing"])
    assert deployed == sorted((r["type"], r["apiVersion"]) for r in arm["resources"])
    referenced = {(r["type"], r["api_version"]) for r in bicep["resources"].values() if r["existing"]}
    assert referenced == {("Microsoft.Storage/storageAccounts/fileServices", "2023-05-01")}


def _bicep_condition(node) -> str:
    """A Bicep condition as pycep parses it, in ARM's function form: not(parameters('x'))."""
    if isinstance(node, str):
        return f"parameters('{node}')"
    op = node["operator"]
    args = op["operands"]
    if op["type"] == "not":
        return f"not({_bicep_condition(args['bool_value'])})"
    return f"{op['type']}({_bicep_condition(args['operand_1'])}, {_bicep_condition(args['operand_2'])})"


def test_the_same_resources_are_conditional_on_the_same_reuse_switches_in_both(arm, bicep):
    """A resource that existed is referenced, not redeclared: each but the app has a reuse condition
    (DESIGN.md: reuse by reference), the same in both templates."""
    in_json = {r["type"]: r.get("condition", "")[1:-1] for r in arm["resources"]}
    in_bicep = {r["type"]: _bicep_condition(r["config"]["condition"]) if r["config"].get("condition") else ""
                for r in bicep["resources"].values() if not r["existing"]}
    assert in_bicep == in_json
    assert in_json.pop("Microsoft.App/containerApps") == ""  # a foreign app of the name is refused, never reused
    assert all(c.startswith("not(") and "parameters('reuse" in c for c in in_json.values()), in_json
    for name in ("reuseStorageAccount", "reuseFileShare", "reuseLogAnalytics", "reuseEnvironment", "reuseEnvironmentStorage"):
        assert arm["parameters"][name] == {**arm["parameters"][name], "type": "bool", "defaultValue": False}  # a hand deployment creates all


def test_everything_declared_carries_the_owner_mark_in_both(arm, bicep):
    from aitk_nb.arm import Template
    from aitk_nb.azure.ownership import ENV_STORAGE_TAG, OWNER_TAG, SHARE_OWNER_METADATA

    t = Template(arm, {"acaAppName": "my-app"})
    for r in arm["resources"]:
        if r["type"].endswith("/shares"):
            assert t.evaluate(r["properties"]["metadata"]) == {SHARE_OWNER_METADATA: "my-app"}
        elif r["type"].endswith("/storages"):
            assert "tags" not in r  # a proxy resource: recorded on the app
        else:
            assert t.evaluate(r["tags"])[OWNER_TAG] == "my-app", r["type"]
    app = t.resource("Microsoft.App/containerApps")
    assert app["tags"] == {OWNER_TAG: "my-app", ENV_STORAGE_TAG: "aitk-share"}
    assert Template(arm, {"acaAppName": "my-app", "reuseEnvironmentStorage": True}).resource(
        "Microsoft.App/containerApps")["tags"] == {OWNER_TAG: "my-app"}
    tagged = {r["type"] for r in bicep["resources"].values() if not r["existing"]
              and (r["config"].get("config", r["config"]).get("tags") or
                   "metadata" in (r["config"].get("config", r["config"]).get("properties") or {}))}
    assert tagged == {r["type"] for r in arm["resources"] if not r["type"].endswith("/storages")}


def test_outputs_are_the_config_keys_in_both(arm, bicep):
    assert sorted(arm["outputs"]) == CONFIG_KEYS
    assert list(bicep["outputs"]) == list(arm["outputs"])
    for name, b in bicep["outputs"].items():
        assert b["type"] == arm["outputs"][name]["type"] == "string"


def test_literal_variables_agree(arm, bicep):
    for name, b in bicep["variables"].items():
        literal = _as_arm(b["value"])
        if literal is not None:
            assert arm["variables"][name] == literal, name
        else:
            assert name in arm["variables"], name


def test_the_api_key_is_a_secret_of_the_app_and_never_an_output(arm):
    from aitk_nb.azure.app import API_KEY_SECRET

    spec = arm["parameters"]["apiKey"]
    assert spec["type"].lower() == "securestring"
    assert spec["defaultValue"] == "[newGuid()]"  # random per deployment, never a literal
    assert arm["variables"]["apiKeySecretName"] == API_KEY_SECRET
    app = next(r for r in arm["resources"] if r["type"] == "Microsoft.App/containerApps")
    props = app["properties"]
    assert props["configuration"]["secrets"] == [
        {"name": "[variables('apiKeySecretName')]", "value": "[parameters('apiKey')]"}]
    env = props["template"]["containers"][0]["env"]
    assert {"name": "AITK_API_KEY", "secretRef": "[variables('apiKeySecretName')]"} in env
    # The key appears once in the template (the secret); not in env values, outputs or elsewhere.
    assert json.dumps(arm).count("parameters('apiKey')") == 1
    outputs = json.dumps(arm["outputs"]).lower()
    for leak in ("apikey", "secret", "listkeys", "listsecrets", "sharedkey"):
        assert leak not in outputs
    assert not re.search(r"apiKey|listKeys|secret", "".join(
        line for line in BICEP.read_text().splitlines() if line.startswith("output ")))


def test_storage_requires_https_and_tls12_and_the_app_takes_https_only(arm):
    storage = next(r for r in arm["resources"] if r["type"] == "Microsoft.Storage/storageAccounts")
    assert storage["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert storage["properties"]["supportsHttpsTrafficOnly"] is True
    assert storage["properties"]["allowBlobPublicAccess"] is False
    app = next(r for r in arm["resources"] if r["type"] == "Microsoft.App/containerApps")
    ingress = app["properties"]["configuration"]["ingress"]
    assert ingress["external"] is True and ingress["allowInsecure"] is False
    scale = app["properties"]["template"]["scale"]
    assert scale["minReplicas"] == 0 and scale["maxReplicas"] == "[parameters('maximumInstanceCount')]"
    assert [rule["name"] for rule in scale["rules"]] == ["http-concurrency"]


def test_the_gpu_profile_has_node_counts_only_when_dedicated(arm):
    from aitk_nb.arm import Template

    for profile, counts in [("Consumption-GPU-NC8as-T4", None), ("Consumption-GPU-NC24-A100", None),
                            ("NC24-A100", (0, 3))]:
        t = Template(arm, {"gpuWorkloadProfileType": profile, "maximumInstanceCount": 3})
        gpu = t.variable("gpuProfile")
        assert gpu["workloadProfileType"] == profile
        assert (gpu.get("minimumCount"), gpu.get("maximumCount")) == (counts or (None, None))


def test_the_parameters_file_sets_only_declared_parameters_and_null_means_default(arm):
    data = json.loads((PROVISION / "inference.parameters.json").read_text())
    assert data["$schema"].endswith("deploymentParameters.json#")
    assert set(data["parameters"]) <= set(arm["parameters"])
    assert "apiKey" not in data["parameters"]  # generated at provision, never written to a file
    for name, entry in data["parameters"].items():
        assert set(entry) == {"value"}, name
        if entry["value"] is None:  # null = the template's default: there must be one
            assert "defaultValue" in arm["parameters"][name], name


def _suppressions_in_bicep() -> dict[str, str]:
    found = {}
    for line in BICEP.read_text().splitlines():
        m = SKIP_COMMENT.search(line)
        if m:
            found[m[1]] = (m[2] or "").strip()
    return found


def _suppressions_in_json(arm: dict) -> dict[str, str]:
    found = {}
    for item in [*arm["resources"], *arm["parameters"].values()]:
        for entry in item.get("metadata", {}).get("checkov", []):
            check, _, reason = entry.partition(":")
            found[check] = reason.strip()
    return found


def test_checkov_suppressions_carry_a_reason_and_agree(arm):
    bicep_skips, json_skips = _suppressions_in_bicep(), _suppressions_in_json(arm)
    assert bicep_skips and {k: v for k, v in bicep_skips.items() if k not in BICEP_READER_ONLY} == json_skips
    assert BICEP_READER_ONLY <= set(bicep_skips)
    assert all(len(reason) > 30 for reason in bicep_skips.values()), bicep_skips


def _checkov() -> str | None:
    return os.environ.get("CHECKOV") or shutil.which("checkov")


@pytest.mark.skipif(_checkov() is None, reason="checkov is not installed (it needs its own venv: its pins "
                    "conflict with this one's); install it there and set CHECKOV=/path/to/bin/checkov")
def test_checkov_clean():
    """No failed check on the Bicep or the ARM JSON, offline; suppressions are inline with reasons."""
    proc = subprocess.run([_checkov(), "-d", str(REPO / "infra"), "--skip-download", "--compact", "--quiet", "-o", "json"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "LOG_LEVEL": "ERROR"})
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summaries = {r["check_type"]: r["summary"] for r in reports}
    assert set(summaries) == {"arm", "bicep"}, summaries
    failed = [f"{r['check_type']}: {c['check_id']} {c['resource']}"
              for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert failed == [], failed
    for kind, s in summaries.items():
        assert s["failed"] == 0 and s["parsing_errors"] == 0 and s["resource_count"] > 0, (kind, s)
        expected = set(_suppressions_in_bicep()) - (BICEP_READER_ONLY if kind == "arm" else set())
        assert s["skipped"] == len(expected), (kind, s)
