"""What deploy writes to the share's settings.json."""
import json

import pytest

from aitk_nb.errors import DeployError
from aitk_nb.project import Project
from aitk_nb.share import Settings, plan_deploy


def test_settings_keep_keys_the_toolkit_does_not_set_and_merge_needs_one_adapter(project, tmp_path):
    previous = Settings.parse(json.dumps({"base_model": "org/base", "adapters": {"a": "models/a"},
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
