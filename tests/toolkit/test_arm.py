import json

import pytest

from aitk_nb.arm import Template, TemplateError, unique_string
from helpers import REPO


def template(**values):
    return Template(json.loads((REPO / "infra/provision/inference.json").read_text()), values)


def test_container_app_reads_command_port_probe_and_mount_from_the_template():
    t = template(defaultCommands=["cd /mount/inference", "echo hi"])
    app = t.resource("Microsoft.App/containerApps")
    container = app["properties"]["template"]["containers"][0]
    assert container["args"] == ["cd /mount/inference; echo hi"]
    assert app["properties"]["configuration"]["ingress"]["targetPort"] == 7860
    assert container["volumeMounts"][0]["mountPath"] == "/mount"
    assert [p["type"] for p in container["probes"]] == ["Startup", "Readiness", "Liveness"]
    # alive while installing or loading (/live), routed to when the model is ready (/health)
    assert {p["type"]: p["httpGet"]["path"] for p in container["probes"]} == {
        "Startup": "/live", "Readiness": "/health", "Liveness": "/live"}


def test_defaults_are_derived_from_the_resource_group_and_given_values_win():
    t = template(acaAppName="my-app")
    assert t.parameter("acaAppName") == "my-app"
    assert t.parameter("storageAccountName") == "aitk" + unique_string(t.scope.resource_group_obj()["id"])
    assert t.parameter("location") == "local"


@pytest.mark.parametrize("expr, expected", [
    ("[format('{0}-{1}', 'a', 2)]", "a-2"),
    ("[concat('x', 'y', string(3))]", "xy3"),
    ("[take('abcdef', 3)]", "abc"),
    ("[if(equals(1, 1), 'yes', 'no')]", "yes"),
    ("[createObject('k', createArray(1, 2)).k[1]]", 2),
    ("['it''s']", "it's"),
    ("[[not an expression]", "[not an expression]"),
    ("[coalesce(null(), 'fallback')]", "fallback"),
])
def test_expressions(expr, expected):
    assert template().evaluate(expr) == expected


def test_wrong_parameter_type_and_unknown_parameter_are_named():
    with pytest.raises(TemplateError, match="maximumInstanceCount must be between 1 and 10"):
        template(maximumInstanceCount=50).parameter("maximumInstanceCount")
    with pytest.raises(TemplateError, match="defaultCommands must be of type array"):
        template(defaultCommands="python app.py").parameter("defaultCommands")
    with pytest.raises(TemplateError, match="notAParam"):
        template(notAParam=1)


def test_unsupported_function_is_reported_not_guessed():
    with pytest.raises(TemplateError, match=r"reference\(\) is not supported"):
        template().outputs()
