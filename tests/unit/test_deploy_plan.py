"""What deploy writes to the share's settings.json."""
import json

import pytest

from aitk_nb.errors import DeployError
from aitk_nb.project import Project
from aitk_nb.deploy_plan import plan_deploy
from inference_app.contract import DeployedSettings


def test_settings_keep_keys_the_toolkit_does_not_set_and_merge_needs_one_adapter(project, tmp_path):
    previous = DeployedSettings.parse(json.dumps({"base_model": "org/base", "adapters": {"a": "models/a"},
                                          "engine": "transformers", "max_model_len": 2048}).encode())
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    adapter = tmp_path / "b"
    settings, _ = plan_deploy(Project(project), previous, [str(adapter)], None, merge_adapter=True)
    assert json.loads(settings.dumps()) == {"base_model": "org/base", "adapters": {"b": "models/b"}, "engine": "transformers",
                                            "max_model_len": 2048, "merge_adapter": True}
    again, _ = plan_deploy(Project(project), settings, [], None)  # the deployed choice stays
    assert again.merge_adapter and again.other == {"engine": "transformers", "max_model_len": 2048}
    with pytest.raises(DeployError, match="--merge-adapter folds one adapter into the base model, and 2 would be served"):
        plan_deploy(Project(project), previous, [str(adapter), str(tmp_path / "a")], None, merge_adapter=True)


def adapter_folder(root, name, base="org/base"):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base} if base else {}))
    return folder


def test_two_adapters_with_one_folder_name_are_refused(project, tmp_path):
    one, other = adapter_folder(tmp_path / "run1", "lora"), adapter_folder(tmp_path / "run2", "lora")
    with pytest.raises(DeployError, match=r"--adapter: two adapters are named 'lora' \(the folder name\); rename one folder"):
        plan_deploy(Project(project), DeployedSettings(), [str(one), str(other)], None)


@pytest.mark.parametrize("name", ["base", "__base__", "tiny-base"])
def test_an_adapter_named_like_the_base_model_is_refused(project, tmp_path, name):
    model = tmp_path / "tiny-base"
    model.mkdir()
    (model / "config.json").write_text("{}")
    adapter = adapter_folder(tmp_path / "adapters", name)
    with pytest.raises(DeployError, match=rf"--adapter {name}: the name '{name}' is reserved for the base model "
                                          r"\(model-cache/tiny-base\); rename the adapter folder"):
        plan_deploy(Project(project), DeployedSettings(), [str(adapter)], str(model))


def test_without_a_model_and_no_recorded_base_there_is_nothing_to_serve(project, tmp_path):
    adapter = adapter_folder(tmp_path, "lora", base=None)
    with pytest.raises(DeployError, match=r"no base model to serve; pass --model PATH"):
        plan_deploy(Project(project), DeployedSettings(), [str(adapter)], None)


def test_adapters_trained_on_different_bases_need_a_model(project, tmp_path):
    a, b = adapter_folder(tmp_path, "a", base="org/one"), adapter_folder(tmp_path, "b", base="org/two")
    with pytest.raises(DeployError, match=r"the adapters name different base models \(org/one, org/two\); pass --model PATH"):
        plan_deploy(Project(project), DeployedSettings(), [str(a), str(b)], None)
    settings, _ = plan_deploy(Project(project), DeployedSettings(), [str(a), str(b)], "org/one")
    assert settings.base_model == "org/one" and settings.variants() == ["base", "a", "b"]
