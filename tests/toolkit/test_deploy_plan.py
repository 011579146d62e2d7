"""What deploy serves and sends: the settings.json it writes, local folders and `share:` folders, names."""
import json
from pathlib import Path

import pytest

from aitk_nb.deploy_plan import plan_deploy
from aitk_nb.errors import DeployError
from aitk_nb.project import Project
from aitk_nb.sync import LocalFolderRemote
from inference_app.contract import DeployedSettings


@pytest.fixture
def share(tmp_path) -> LocalFolderRemote:
    (tmp_path / "share").mkdir()
    return LocalFolderRemote(tmp_path / "share")


def plan(project, share, adapters=(), model=None, previous=None, **kw):
    return plan_deploy(Project(project), previous or DeployedSettings(), list(adapters), model, remote=share, app="app-1", **kw)


def adapter_folder(root: Path, name: str, base: str | None = "org/base", weights: bool = True) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base} if base else {}))
    if weights:
        (folder / "adapter_model.safetensors").write_bytes(b"weights")
    return folder


def model_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return root


def test_settings_keep_keys_the_toolkit_does_not_set_and_merge_needs_one_adapter(project, share, tmp_path):
    previous = DeployedSettings.parse(json.dumps({"base_model": "org/base", "adapters": {"a": "models/a"},
                                                  "engine": "transformers", "max_model_len": 2048}).encode())
    a, b = adapter_folder(tmp_path, "a"), adapter_folder(tmp_path, "b")
    settings = plan(project, share, [str(b)], previous=previous, merge_adapter=True).settings
    assert json.loads(settings.dumps()) == {"base_model": "org/base", "adapters": {"b": "models/b"}, "engine": "transformers",
                                            "max_model_len": 2048, "merge_adapter": True}
    again = plan(project, share, previous=settings).settings  # the deployed choice stays
    assert again.merge_adapter and again.other == {"engine": "transformers", "max_model_len": 2048}
    with pytest.raises(DeployError, match="--merge-adapter folds one adapter into the base model, and 2 would be served"):
        plan(project, share, [str(b), str(a)], previous=previous, merge_adapter=True)


def test_two_adapters_with_one_name_are_refused(project, share, tmp_path):
    one, other = adapter_folder(tmp_path / "run1", "lora"), adapter_folder(tmp_path / "run2", "lora")
    with pytest.raises(DeployError, match=r"--adapter: two adapters are named 'lora'; rename one \(--adapter NAME=PATH\)"):
        plan(project, share, [str(one), str(other)])
    adapter_folder(share.root / "models/run3", "lora")
    with pytest.raises(DeployError, match=r"two adapters are named 'lora'"):
        plan(project, share, [str(one), "share:models/run3/lora"])
    renamed = plan(project, share, [str(one), f"second={other}"]).settings
    assert renamed.adapters == {"lora": "models/lora", "second": "models/second"}


@pytest.mark.parametrize("name", ["base", "__base__", "tiny-base"])
def test_an_adapter_named_like_the_base_model_is_refused(project, share, tmp_path, name):
    model = model_folder(tmp_path / "tiny-base")
    adapter = adapter_folder(tmp_path / "adapters", name)
    with pytest.raises(DeployError, match=rf"--adapter {name}: the name '{name}' is reserved for the base model "
                                          r"\(model-cache/tiny-base\); rename the adapter \(--adapter NAME=PATH\)"):
        plan(project, share, [str(adapter)], str(model))


def test_without_a_model_and_no_recorded_base_there_is_nothing_to_serve(project, share, tmp_path):
    adapter = adapter_folder(tmp_path, "lora", base=None)
    with pytest.raises(DeployError, match=r"no base model to serve; pass --model PATH"):
        plan(project, share, [str(adapter)])


def test_adapters_trained_on_different_bases_need_a_model(project, share, tmp_path):
    a, b = adapter_folder(tmp_path, "a", base="org/one"), adapter_folder(tmp_path, "b", base="org/two")
    with pytest.raises(DeployError, match=r"the adapters name different base models \(org/one, org/two\); pass --model PATH"):
        plan(project, share, [str(a), str(b)])
    settings = plan(project, share, [str(a), str(b)], "org/one").settings
    assert settings.base_model == "org/one" and settings.variants() == ["base", "a", "b"]


# -- share: folders (the fine-tuning's outputs) -----------------------------------------------------
def test_share_folders_are_served_in_place_and_nothing_of_them_is_sent(project, share):
    model_folder(share.root / "model-cache/org/tiny")
    adapter_folder(share.root / "models/run-7/checkpoint-20", "adapter", base="/mount/model-cache/org/tiny")
    p = plan(project, share, ["share:models/run-7/checkpoint-20/adapter", "facts=share:/mount/models/run-7/checkpoint-20/adapter/"])
    assert p.settings.base_model == "model-cache/org/tiny"  # as the job in /mount recorded it
    assert p.settings.adapters == {"adapter": "models/run-7/checkpoint-20/adapter", "facts": "models/run-7/checkpoint-20/adapter"}
    assert [u.dest for u in p.uploads] == ["aitk-nb/app-1/inference_app"]  # only the code
    assert p.on_share == ["adapter adapter: models/run-7/checkpoint-20/adapter", "adapter facts: models/run-7/checkpoint-20/adapter",
                          "base model: model-cache/org/tiny"]


def test_a_hub_id_recorded_by_the_fine_tuning_is_its_download_in_model_cache(project, share):
    model_folder(share.root / "model-cache/HuggingFaceTB/SmolLM2-135M-Instruct")
    adapter_folder(share.root / "models/run", "adapter", base="HuggingFaceTB/SmolLM2-135M-Instruct")
    assert plan(project, share, ["share:models/run/adapter"]).settings.base_model == (
        "model-cache/HuggingFaceTB/SmolLM2-135M-Instruct")
    (share.root / "model-cache/HuggingFaceTB/SmolLM2-135M-Instruct/config.json").unlink()
    assert plan(project, share, ["share:models/run/adapter"]).settings.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.parametrize("layout, value, message", [
    ({}, "share:models/run/adapter", "no adapter_config.json at {share}/models/run/adapter; pass a PEFT adapter folder"),
    ({"models/run/adapter/adapter_config.json": "{"}, "share:models/run/adapter",
     "{share}/models/run/adapter/adapter_config.json is not valid JSON (line 1, column 2"),
    ({"models/run/adapter/adapter_config.json": "[]"}, "share:models/run/adapter",
     "{share}/models/run/adapter/adapter_config.json must hold a JSON object"),
    ({"models/run/adapter/adapter_config.json": "{}"}, "share:models/run/adapter",
     "no adapter_model.safetensors (or adapter_model.bin) beside {share}/models/run/adapter/adapter_config.json"),
    ({}, "share:../outside", "a folder on the share, relative to its root, like share:models/my-run/adapter"),
    ({}, "share:", "a folder on the share, relative to its root"),
    ({}, "my lora=share:models/x", "the name 'my lora' must be 1-64 letters, digits"),
])
def test_a_missing_or_malformed_adapter_on_the_share_is_named(project, share, layout, value, message):
    for rel, text in layout.items():
        (share.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (share.root / rel).write_text(text)
    with pytest.raises(DeployError) as e:
        plan(project, share, [value], "org/base")
    assert str(e.value).startswith(f"--adapter {value}: ") and message.format(share=share.root) in str(e.value)


def test_a_missing_model_on_the_share_is_named_also_when_the_adapter_records_it(project, share):
    adapter_folder(share.root / "models/run", "adapter", base="/mount/model-cache/org/gone")
    with pytest.raises(DeployError, match=rf"--model share:model-cache/org/x: no config.json at {share.root}/model-cache/org/x"):
        plan(project, share, ["share:models/run/adapter"], "share:model-cache/org/x")
    with pytest.raises(DeployError, match=r"the adapter's base model /mount/model-cache/org/gone \(its adapter_config.json\): "
                                          rf"no config.json at {share.root}/model-cache/org/gone"):
        plan(project, share, ["share:models/run/adapter"])
