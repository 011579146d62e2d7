"""A project of the user's own on Azure (issue 16, item 2), against the test double: a folder holding only
what AI Toolkit's fine-tuning left (no template, no inference parameters) provisions the inference app
with aitk-nb's packaged template and parameters, the fine-tuning's names as defaults, and says where each
file and value came from; AI Toolkit's own inference parameters are refused before any request."""
import json
import pytest

import aitk_nb
from aitk_nb import packaged
from aitk_nb.errors import ConfigError
from azure_double.scenario import finetuning_leftovers
from azure_helpers import config_of

pytestmark = pytest.mark.timeout(300)


def test_only_the_finetuning_files_provision_with_the_packaged_template(azure, tmp_path):
    root = tmp_path / "ft-only"
    ft = finetuning_leftovers(azure)
    ft.write_project_files(root)
    assert sorted(p.name for p in (root / "infra/provision").iterdir()) == ["finetuning.parameters.json"]

    done = aitk_nb.provision("azure", project=root, progress=False)
    config = config_of(root)
    assert (config["RESOURCE_GROUP_NAME"], config["FILE_SHARE_NAME"]) == (ft.resource_group, ft.share)
    assert done.sources["fileShareName"] == "fine-tuning (infra/finetuning.config.json FILE_SHARE_NAME)"
    assert f"template: {packaged.path(packaged.TEMPLATE)} (packaged default)" in done.notes
    assert f"parameters: {packaged.path(packaged.PARAMETERS)} (packaged default)" in done.notes
    # written besides the config: the packaged parameters with the app's resolved name, so a second
    # project on the same fine-tuning's group is not the same app (issue 16, item 5)
    written = json.loads((root / "infra/provision/inference.parameters.json").read_text())["parameters"]
    packaged_values = json.loads(packaged.path(packaged.PARAMETERS).read_text())["parameters"]
    app = json.loads((root / "infra/inference.config.json").read_text())["ACA_APP_NAME"]
    assert written == {**packaged_values, "acaAppName": {"value": app}}


def test_toolkit_parameters_are_refused_before_any_request(azure, tmp_path):
    root = tmp_path / "aitk-project"
    ft = finetuning_leftovers(azure)
    ft.write_project_files(root)
    (root / "infra/provision/inference.parameters.json").write_text(
        '{"parameters": {"location": {"value": "westus3"}, "defaultCommands": {"value": '
        '["cd /mount", "pip install -r ./setup/requirements.txt", "cd /mount/inference", '
        '"pip install -r ./requirements.txt", "python3 ./gradio_chat.py"]}}}')
    before = len(azure.requests)
    with pytest.raises(ConfigError, match=r"inference.parameters.json: defaultCommands starts AI Toolkit's own server"):
        aitk_nb.provision("azure", project=root, progress=False)
    assert len(azure.requests) == before  # not one request: refused before anything
    assert not (root / "infra/inference.config.json").exists() and not (root / ".aitk").exists()
