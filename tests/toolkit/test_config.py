import json

import pytest

from aitk_nb.config import ConfigError, InferenceConfig, load_parameters
from aitk_nb.errors import NotProvisionedError


def write_params(path, **values):
    path.write_text(json.dumps({"parameters": {k: {"value": v} for k, v in values.items()}}))
    return path


def test_repository_parameters_file_has_the_seed_keys(project):
    params = load_parameters(project / "infra/provision/inference.parameters.json")
    assert set(params.values()) >= {"defaultCommands", "maximumInstanceCount", "location", "storageAccountName",
                                    "fileShareName", "acaEnvironmentName", "acaEnvironmentStorageName",
                                    "acaAppName", "acaLogAnalyticsName"}
    assert "location" not in params.arm_values()  # null = the template's default


def test_invalid_json_names_file_line_and_fix(tmp_path):
    p = tmp_path / "p.json"
    p.write_text('{"parameters": {\n  "maximumInstanceCount": {"value": 1}\n  "location": {"value": null}}}')
    with pytest.raises(ConfigError, match=r"p.json is not valid JSON \(line 3, column 3: Expecting ','"):
        load_parameters(p)


@pytest.mark.parametrize("field, value, message", [
    ("storageAccountName", "My_Storage", "storageAccountName 'My_Storage' is not a valid name \\(3-24 lowercase"),
    ("acaAppName", "-bad", "acaAppName '-bad' is not a valid name"),
    ("maximumInstanceCount", 0, "maximumInstanceCount must be a whole number from 1 to 10"),
    ("defaultCommands", "python app.py", "defaultCommands must be a non-empty list"),
])
def test_bad_values_name_the_field(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        load_parameters(write_params(tmp_path / "p.json", **{field: value}))


def test_unknown_parameters_are_kept_and_overrides_apply(tmp_path):
    p = load_parameters(write_params(tmp_path / "p.json", maximumInstanceCount=1, someNewKey="x"),
                        overrides={"maximumInstanceCount": 3})
    assert p.maximumInstanceCount == 3 and p.values()["someNewKey"] == "x"


def test_config_round_trip_and_errors(tmp_path):
    path = tmp_path / "infra/inference.config.json"
    with pytest.raises(NotProvisionedError, match="run `%aitk provision`"):
        InferenceConfig.load(path)
    InferenceConfig(TARGET="local", ACA_APP_ENDPOINT="http://127.0.0.1:1").save(path)
    assert InferenceConfig.load(path).ACA_APP_ENDPOINT == "http://127.0.0.1:1"
    path.write_text(json.dumps({"ACA_APP_ENDPOINT": "https://x", "ACCOUNT_KEY": "s"}))
    with pytest.raises(ConfigError, match="unknown key\\(s\\) ACCOUNT_KEY"):
        InferenceConfig.load(path)
    # a hand-filled AI Toolkit file has no TARGET: it describes Azure resources
    path.write_text(json.dumps({"ACA_APP_ENDPOINT": "https://x"}))
    assert InferenceConfig.load(path).TARGET == "azure"


@pytest.mark.parametrize("written, read", [
    ("aiacaapp.wittyfield-1a2b3c4d.westus3.azurecontainerapps.io", "https://aiacaapp.wittyfield-1a2b3c4d.westus3.azurecontainerapps.io"),
    ("https://app.example.io", "https://app.example.io"), ("http://127.0.0.1:7860", "http://127.0.0.1:7860"), (None, None)])
def test_a_bare_host_endpoint_as_ai_toolkit_writes_it_is_read_as_https(tmp_path, written, read):
    path = tmp_path / "inference.config.json"
    path.write_text(json.dumps({"SUBSCRIPTION_ID": "s", "RESOURCE_GROUP_NAME": "rg", "STORAGE_ACCOUNT_NAME": "a",
                                "FILE_SHARE_NAME": "f", "ACA_APP_NAME": "app", "ACA_APP_ENDPOINT": written}))
    cfg = InferenceConfig.load(path)
    assert cfg.TARGET == "azure" and cfg.ACA_APP_ENDPOINT == read
