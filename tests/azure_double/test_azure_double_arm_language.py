"""The double's template language against the ARM template function reference: each expected value
below is the one learn.microsoft.com gives for its example (or the documented rule), so a misreading
in arm/ fails here."""
from __future__ import annotations

import pytest

from azure_double.arm import DeploymentScope, Template, TemplateError, guid, unique_string

SCOPE = DeploymentScope("00000000-0000-0000-0000-000000000001", "rg-lang", "westus3", tenant_id="11111111-1111-1111-1111-111111111111")


def ev(expression: str, parameters: dict | None = None, variables: dict | None = None, **params):
    """Evaluate one expression in a template with these parameters (declared from the given values)."""
    values = {**(parameters or {}), **params}
    kinds = {str: "string", int: "int", bool: "bool", list: "array", dict: "object"}
    body = {"parameters": {k: {"type": kinds[type(v)]} for k, v in values.items()}, "variables": variables or {}, "resources": []}
    return Template(body, {k: {"value": v} for k, v in values.items()}, SCOPE).evaluate(expression)


# -- expressions ----------------------------------------------------------------------------------------------
def test_literals_escapes_and_access():
    assert ev("[[not an expression]") == "[not an expression]"
    assert ev("plain text") == "plain text"
    assert ev("['it''s']") == "it's"
    assert ev("[json('{\"a\": {\"b\": [10, 20]}}').a.b[1]]") == 20
    assert ev("[json('{\"Abc\": 1}').abc]") == 1                       # property access ignores case
    assert ev("[createObject('k', 'v')['k']]") == "v"
    assert ev("[add(-3, 5)]") == 2
    with pytest.raises(TemplateError, match="doesn't exist, available properties are 'a'"):
        ev("[json('{\"a\": 1}').b]")
    with pytest.raises(TemplateError, match="array index '2' is out of bounds"):
        ev("[createArray(1, 2)[2]]")
    with pytest.raises(TemplateError, match="The template function 'nope' is not valid"):
        ev("[nope()]")
    with pytest.raises(TemplateError, match="true, false and null are the functions"):
        ev("[if(true, 1, 2)]")
    assert ev("[TOLOWER('ABC')]") == "abc"                                # function names ignore case


def test_string_functions_as_documented():
    assert ev("[format('{0}, {1}. Formatted number: {2:N0}', 'Hello', 'User', 8175133)]") == "Hello, User. Formatted number: 8,175,133"
    assert ev("[format('{0} {{x}} {1}', true(), 5)]") == "True {x} 5"
    assert ev("[string(json('{\"valueA\": 10, \"valueB\": \"Example Text\"}'))]") == '{"valueA":10,"valueB":"Example Text"}'
    assert ev("[string(createArray('a', 'b', 'c'))]") == '["a","b","c"]'
    assert ev("[string(5)]") == "5"
    assert ev("[concat('prefix', '-', 'x')]") == "prefix-x"
    assert ev("[concat(createArray('1-1'), createArray('2-1'))]") == ["1-1", "2-1"]
    with pytest.raises(TemplateError, match="Either all or none of the parameters must be an array"):
        ev("[concat('a', createArray(1))]")
    assert ev("[padLeft('123', 10, '0')]") == "0000000123"
    assert ev("[replace('123-123-1234', '-', '')]") == "1231231234"
    assert ev("[skip('one two three', 4)]") == "two three"
    assert ev("[take('one two three', 2)]") == "on"
    assert ev("[take(createArray('one', 'two', 'three'), -1)]") == []
    assert ev("[split('one,two;three', createArray(',', ';'))]") == ["one", "two", "three"]
    assert ev("[substring('one two three', 4, 3)]") == "two"
    with pytest.raises(TemplateError, match="The index and length parameters must refer to a location within the string.*'0'.*'11'.*'10'"):
        ev("[substring('1234567890', 0, 11)]")
    assert ev("[first('One Two Three')]") == "O" and ev("[last('One Two Three')]") == "e"
    assert ev("[indexOf('test', 'T')]") == 0 and ev("[lastIndexOf('test', 't')]") == 3    # case-insensitive
    assert ev("[indexOf('abcdef', 'CD')]") == 2 and ev("[indexOf('abc', 'z')]") == -1
    assert ev("[startsWith('abcdef', 'AB')]") is True and ev("[endsWith('abcdef', 'EF')]") is True
    assert ev("[base64('one, two, three')]") == "b25lLCB0d28sIHRocmVl"
    assert ev("[base64ToJson(base64('{''one'': ''a'', ''two'': ''b''}'))]") == {"one": "a", "two": "b"}
    assert ev("[dataUri('Hello')]") == "data:text/plain;charset=utf8;base64,SGVsbG8="
    assert ev("[dataUriToString('data:;base64,SGVsbG8sIFdvcmxkIQ==')]") == "Hello, World!"
    assert ev("[trim('   one two three   ')]") == "one two three"
    assert ev("[toUpper('one two three')]") == "ONE TWO THREE"
    assert ev("[uriComponent('http://contoso.com/resources/nested/azuredeploy.json')]") == \
        "http%3A%2F%2Fcontoso.com%2Fresources%2Fnested%2Fazuredeploy.json"
    assert ev("[uri('http://contoso.org/firstpath', 'myscript.sh')]") == "http://contoso.org/myscript.sh"


def test_array_object_and_comparison_functions():
    assert ev("[contains('OneTwoThree', 'e')]") is True and ev("[contains('OneTwoThree', 'TWO')]") is False   # strings: case-sensitive
    assert ev("[contains(json('{\"one\": \"a\"}'), 'ONE')]") is True                                          # keys: case-insensitive
    assert ev("[contains(createArray('one', 'two'), 'two')]") is True
    assert ev("[empty(createArray())]") and ev("[empty(json('{}'))]") and ev("[empty('')]") and ev("[empty(null())]")
    assert ev("[length(json('{\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}'))]") == 4
    assert ev("[union(json('{\"one\": \"a\", \"three\": \"c1\"}'), json('{\"three\": \"c2\", \"four\": \"d\"}'))]") == \
        {"one": "a", "three": "c2", "four": "d"}
    # nested objects merge, nested arrays do not (the union docs' second example)
    assert ev("[union(json('{\"p\": {\"a\": 1, \"l\": [1]}}'), json('{\"p\": {\"b\": 2, \"l\": [2]}}'))]") == {"p": {"a": 1, "l": [2], "b": 2}}
    assert ev("[union(createArray('one', 'two', 'three'), createArray('three', 'four'))]") == ["one", "two", "three", "four"]
    assert ev("[intersection(createArray('one', 'two', 'three'), createArray('two', 'three'))]") == ["two", "three"]
    assert ev("[equals(createArray(1, 2), createArray(1, 2))]") is True
    assert ev("[equals(json('{\"a\": [1]}'), json('{\"a\": [1]}'))]") is True
    assert ev("[equals('a', 'A')]") is False and ev("[equals(1, true())]") is False
    assert ev("[coalesce(null(), null(), 'x')]") == "x" and ev("[coalesce(null())]") is None
    assert ev("[items(json('{\"b\": 2, \"a\": 1}'))]") == [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
    assert ev("[range(5, 3)]") == [5, 6, 7]
    assert ev("[max(createArray(0, 3, 2))]") == 3 and ev("[min(0, 3, 2)]") == 0
    assert ev("[createObject('intProp', 1, 'arrayProp', createArray('a'))]") == {"intProp": 1, "arrayProp": ["a"]}
    assert ev("[greater('B', 'A')]") is True and ev("[lessOrEquals(5, 5)]") is True


def test_numbers_and_logic():
    assert ev("[div(8, 3)]") == 2 and ev("[div(-8, 3)]") == -2 and ev("[mod(-7, 3)]") == -1   # .NET: toward zero
    assert ev("[int('4')]") == 4 and ev("[bool('TRUE')]") is True and ev("[bool(0)]") is False
    with pytest.raises(TemplateError, match="cannot divide by zero"):
        ev("[div(1, 0)]")
    assert ev("[and(true(), true(), false())]") is False and ev("[or(false(), true())]") is True
    assert ev("[not(equals(1, 2))]") is True
    assert ev("[if(equals('a', 'a'), json('{\"test\": \"value1\"}'), json('null'))]") == {"test": "value1"}


def test_lazy_functions_evaluate_only_what_they_return():
    """if() evaluates one branch; and/or stop at the deciding argument; coalesce at the first value
    (an error in the branch not taken must not surface)."""
    assert ev("[if(true(), 'yes', json('{').broken)]") == "yes"
    assert ev("[and(false(), json('{').broken)]") is False
    assert ev("[or(true(), json('{').broken)]") is True
    assert ev("[coalesce('x', json('{').broken)]") == "x"
    with pytest.raises(TemplateError, match="invalid parameter"):
        ev("[if(false(), 'yes', json('{'))]")


def test_dates():
    assert ev("[dateTimeAdd('2020-04-07 14:53:14Z', 'P3Y')]") == "2023-04-07T14:53:14Z"
    assert ev("[dateTimeAdd('2020-04-07 14:53:14Z', '-PT9H')]") == "2020-04-07T05:53:14Z"
    assert ev("[dateTimeToEpoch('2023-02-16T00:00:00Z')]") == 1676505600
    assert ev("[dateTimeFromEpoch(1683040573)]") == "2023-05-02T15:16:13Z"


def test_unique_string_and_guid():
    """uniqueString: values published by public re-implementations; guid: a version-5 UUID. Both
    deterministic and sensitive to every argument."""
    assert unique_string("test") == "rbgf3xv4ufgzg"
    assert [unique_string(x) for x in ("t", "te", "tes")] == ["fsnwonksnm7cy", "o57ehhbytctgs", "ebse57jls4qbc"]
    assert unique_string("t", "e") == "d5ykh7yoidm2a"
    assert ev("[uniqueString('a', 'b')]") == unique_string("a", "b") != unique_string("b", "a")
    g = ev("[guid('x', 'y')]")
    assert g == guid("x", "y") and len(g) == 36 and g[14] == "5" and g != guid("x", "z")
    with pytest.raises(TemplateError):
        ev("[uniqueString(1)]")


# -- parameters -------------------------------------------------------------------------------------------------
def _params_template(**spec) -> dict:
    return {"parameters": {"p": spec}, "resources": []}


@pytest.mark.parametrize("spec,value,message", [
    ({"type": "int"}, "3", "Expected a value of type 'Integer', but received a value of type 'String'"),
    ({"type": "string"}, 3, "Expected a value of type 'String, Uri', but received a value of type 'Integer'"),
    ({"type": "bool"}, "true", "Expected a value of type 'Boolean'"),
    ({"type": "string", "allowedValues": ["a", "b"]}, "c", "The parameter value is not part of the allowed value(s): 'a,b'"),
    ({"type": "array", "allowedValues": ["a", "b"]}, ["a", "c"], "The parameter value is not part of the allowed value(s): 'a,b'"),
    ({"type": "int", "minValue": 1}, 0, "Value should be greater than or equal to '1'"),
    ({"type": "int", "maxValue": 10}, 11, "Value should be less than or equal to '10'"),
    ({"type": "string", "minLength": 3}, "ab", "Length of the value should be greater than or equal to '3'"),
    ({"type": "array", "maxLength": 1}, [1, 2], "Length of the value should be less than or equal to '1'"),
])
def test_parameter_checks(spec, value, message):
    with pytest.raises(TemplateError) as e:
        Template(_params_template(**spec), {"p": {"value": value}}, SCOPE).parameters
    assert f"The provided value for the template parameter 'p' is not valid. {message}" in e.value.message
    assert e.value.code == "InvalidTemplate"


def test_parameter_presence_defaults_and_contexts():
    with pytest.raises(TemplateError, match="The value for the template parameter 'p' is not provided"):
        Template(_params_template(type="string"), {}, SCOPE).parameters
    with pytest.raises(TemplateError, match="The template parameters 'x, y' in the parameters file are not valid"):
        Template(_params_template(type="string"), {"x": {"value": 1}, "y": {"value": 2}}, SCOPE)
    # a null value leaves the default; defaults may use other parameters and resourceGroup()
    body = {"parameters": {"a": {"type": "string", "defaultValue": "[resourceGroup().location]"},
                           "b": {"type": "string", "defaultValue": "[concat(parameters('a'), '-b')]"},
                           "g": {"type": "string", "defaultValue": "[newGuid()]"}}, "resources": []}
    t = Template(body, {"a": {"value": None}}, SCOPE)
    assert t.parameter("b") == "westus3-b" and len(t.parameter("g")) == 36 and t.parameter("g") == t.parameter("g")
    # newGuid and utcNow only in parameter defaults; variables() not in them; reference() not in variables
    with pytest.raises(TemplateError, match="'newGuid' is not expected at this location"):
        Template({"variables": {"v": "[newGuid()]"}, "resources": []}, {}, SCOPE).variable("v")
    with pytest.raises(TemplateError, match="'variables' is not expected at this location"):
        Template({"parameters": {"p": {"type": "string", "defaultValue": "[variables('v')]"}}, "variables": {"v": "x"},
                  "resources": []}, {}, SCOPE).parameters
    with pytest.raises(TemplateError, match="'reference' is not expected at this location"):
        Template({"variables": {"v": "[reference('x')]"}, "resources": []}, {}, SCOPE).variable("v")


# -- resources ----------------------------------------------------------------------------------------------------
def _res(rtype: str, name: str, **extra) -> dict:
    return {"type": rtype, "apiVersion": "2023-01-01", "name": name, **extra}


def test_resource_ids_child_types_and_segments():
    t = Template({"resources": []}, {}, SCOPE)
    base = f"/subscriptions/{SCOPE.subscription_id}/resourceGroups/rg-lang/providers"
    assert t.evaluate("[resourceId('Microsoft.Storage/storageAccounts', 'sa')]") == f"{base}/Microsoft.Storage/storageAccounts/sa"
    assert t.evaluate("[resourceId('Microsoft.Storage/storageAccounts/fileServices/shares', 'sa', 'default', 's')]") == \
        f"{base}/Microsoft.Storage/storageAccounts/sa/fileServices/default/shares/s"
    assert t.evaluate("[resourceId('other-rg', 'Microsoft.Web/sites', 'w')]").endswith("/resourceGroups/other-rg/providers/Microsoft.Web/sites/w")
    assert t.evaluate("[resourceId('sub2', 'rg2', 'A.B/c', 'n')]") == "/subscriptions/sub2/resourceGroups/rg2/providers/A.B/c/n"
    assert t.evaluate("[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r')]") == \
        f"/subscriptions/{SCOPE.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/r"
    with pytest.raises(TemplateError, match="requires '3' resource name argument"):
        t.evaluate("[resourceId('Microsoft.Storage/storageAccounts/fileServices/shares', 'sa', 's')]")
    with pytest.raises(TemplateError, match="multi-segmented argument"):
        t.evaluate("[resourceId('sa')]")
    with pytest.raises(TemplateError, match="incorrect segment lengths"):
        Template({"resources": [_res("Microsoft.Storage/storageAccounts", "a/b")]}, {}, SCOPE).plan()
    # a child declared inside its parent takes the parent's type and name
    nested = _res("Microsoft.Storage/storageAccounts", "sa", resources=[_res("fileServices/shares", "default/s")])
    nested["resources"][0]["type"] = "fileServices"
    nested["resources"][0]["name"] = "default"
    plan = Template({"resources": [nested]}, {}, SCOPE).plan()
    assert [p.id.split("/providers/")[1] for p in plan] == ["Microsoft.Storage/storageAccounts/sa",
                                                             "Microsoft.Storage/storageAccounts/sa/fileServices/default"]
    assert t.evaluate("[subscription().subscriptionId]") == SCOPE.subscription_id
    assert t.evaluate("[resourceGroup().name]") == "rg-lang" and t.evaluate("[deployment().name]") == "deployment"


def test_conditions_dependencies_and_cycles():
    body = {"parameters": {"make": {"type": "bool"}}, "resources": [
        _res("A.B/x", "one", condition="[parameters('make')]"),
        _res("A.B/x", "two", dependsOn=["[resourceId('A.B/x', 'one')]"]),
        _res("A.B/y", "three", dependsOn=["one", "A.B/x/two"]),
    ]}
    off = Template(body, {"make": {"value": False}}, SCOPE).plan()
    assert [(p.name, p.deploy) for p in off] == [("one", False), ("two", True), ("three", True)]
    assert off[1].depends == [] and [d.rsplit("/", 1)[1] for d in off[2].depends] == ["two"]   # a false condition leaves the dependencies
    on = Template(body, {"make": {"value": True}}, SCOPE).plan()
    assert [d.rsplit("/", 1)[1] for d in on[2].depends] == ["one", "two"]
    with pytest.raises(TemplateError, match="The resource 'missing' is not defined in the template"):
        Template({"resources": [_res("A.B/x", "a", dependsOn=["missing"])]}, {}, SCOPE).plan()
    with pytest.raises(TemplateError, match="Circular dependency detected"):
        Template({"resources": [_res("A.B/x", "a", dependsOn=["b"]), _res("A.B/x", "b", dependsOn=["a"])]}, {}, SCOPE).plan()
    with pytest.raises(TemplateError, match="defined multiple times"):
        Template({"resources": [_res("A.B/x", "a"), _res("A.B/x", "a")]}, {}, SCOPE).plan()
    # reference('name') on a template resource is an implicit dependency; by resource id it is not
    implicit = Template({"resources": [_res("A.B/x", "src"), _res("A.B/x", "dst", properties={"v": "[reference('src').p]"}),
                                       _res("A.B/x", "by-id", properties={"v": "[reference(resourceId('A.B/x', 'src')).p]"})]},
                        {}, SCOPE).plan()
    assert [d.rsplit("/", 1)[1] for d in implicit[1].depends] == ["src"] and implicit[2].depends == []


def test_copy_loops():
    body = {"parameters": {"n": {"type": "int"}}, "resources": [
        _res("A.B/x", "[concat('item', copyIndex(1))]", copy={"name": "items", "count": "[parameters('n')]"},
             properties={"index": "[copyIndex()]",
                         "copy": [{"name": "disks", "count": 2, "input": {"lun": "[copyIndex('disks')]"}}]}),
        _res("A.B/y", "after", dependsOn=["items"]),
    ]}
    t = Template(body, {"n": {"value": 3}}, SCOPE)
    plan = t.plan()
    assert [p.name for p in plan] == ["item1", "item2", "item3", "after"]
    assert len(plan[3].depends) == 3
    assert t.resource_body(plan[1])["properties"] == {"index": 1, "disks": [{"lun": 0}, {"lun": 1}]}
    assert Template(body, {"n": {"value": 0}}, SCOPE).plan()[0].name == "after"
    with pytest.raises(TemplateError, match="invalid copy count"):
        Template(body, {"n": {"value": 801}}, SCOPE).plan()
    with pytest.raises(TemplateError, match="'copyIndex' is not expected at this location"):
        Template({"resources": [_res("A.B/x", "[copyIndex()]")]}, {}, SCOPE).plan()
    serial = Template({"resources": [_res("A.B/x", "[concat('s', copyIndex())]",
                                          copy={"name": "s", "count": 4, "mode": "Serial", "batchSize": 2})]}, {}, SCOPE).plan()
    assert [[d.rsplit("/", 1)[1] for d in p.depends] for p in serial] == [[], [], ["s0", "s1"], ["s0", "s1"]]
    variables = Template({"variables": {"copy": [{"name": "names", "count": 2, "input": "[concat('n', copyIndex('names'))]"}]},
                          "resources": []}, {}, SCOPE)
    assert variables.variable("names") == ["n0", "n1"]


def test_classic_templates_only():
    with pytest.raises(TemplateError, match="languageVersion 2.0"):
        Template({"languageVersion": "2.0", "resources": {"sa": _res("A.B/x", "a")}}, {}, SCOPE)
    with pytest.raises(TemplateError, match="'existing' resources are a languageVersion 2.0 feature"):
        Template({"resources": [_res("A.B/x", "a", existing=True)]}, {}, SCOPE).plan()


class _Live:
    def __init__(self, resources: dict):
        self.resources = resources

    def get(self, rid):
        return self.resources.get(rid)

    def list(self, rid, action, api_version, body):
        return {"keys": [{"value": "k1"}]}


def test_reference_full_and_missing_resources():
    rid = SCOPE.resource_id("A.B/x", ["live"])
    live = _Live({rid: {"id": rid, "name": "live", "type": "A.B/x", "location": "westus3", "properties": {"p": 1}}})
    t = Template({"resources": []}, {}, SCOPE, runtime=live)
    assert t.evaluate(f"[reference('{rid}', '2023-01-01').p]") == 1
    assert t.evaluate(f"[reference('{rid}', '2023-01-01', 'Full').location]") == "westus3"
    assert t.evaluate(f"[listKeys('{rid}', '2023-01-01').keys[0].value]") == "k1"
    missing = SCOPE.resource_id("A.B/x", ["gone"])
    with pytest.raises(TemplateError) as e:
        t.evaluate(f"[reference('{missing}', '2023-01-01')]")
    assert e.value.code == "ResourceNotFound" and "The Resource 'A.B/x/gone' under resource group 'rg-lang' was not found" in e.value.message
    # a preview (validate, what-if) keeps what it cannot know yet as written
    preview = Template({"resources": []}, {}, SCOPE, runtime=live, preview=True)
    assert preview.evaluate(f"[reference('{missing}').p]") == f"[reference('{missing}').p]"
    with pytest.raises(TemplateError, match="could not find template resource or resource copy with this name"):
        t.evaluate("[reference('nothing-here')]")
