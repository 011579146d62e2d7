"""Coming from fine-tuning, on the local target with the real demo model (issue 11): a project where a
fine-tuning left its files and its share (the base model in model-cache/<org>/<model>, the adapter in
models/<run>/adapter) is provisioned, and deploy serves both from the share with `share:` paths: only
the inference app is sent, and the adapter answers what it learned. The project folder's name has a
space and a `;` (issue 10: nothing in it may run)."""
import json
import shutil
import subprocess
import sys

import pytest
from openai import OpenAI

import aitk_nb
from aitk_nb import sync
from helpers import REPO, app_folder, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def handed_off(tmp_path_factory, demo_assets):
    """The fine-tuning's layout made by the demo builder, then `%aitk provision --target local`."""
    root = tmp_path_factory.mktemp("handoff") / "my proj;touch X;x"
    shutil.copytree(REPO / "infra/provision", root / "infra/provision")
    out = subprocess.run([sys.executable, str(REPO / "demo/build_assets.py"), "finetuning", "--project", str(root)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    layout = json.loads(out.strip().splitlines()[-1])
    # the share the fine-tuning used (provision takes it from infra/provision/finetuning.parameters.json once
    # it reads the fine-tuning's files; named here so this test does not depend on that)
    aitk_nb.provision("local", project=root, port=free_port(), overrides={"fileShareName": layout["share"]}, progress=False)
    assert json.loads((root / "infra/inference.config.json").read_text())["FILE_SHARE_NAME"] == layout["share"]
    yield root, layout
    aitk_nb.teardown(app_only=True, yes=True, project=root)


@pytest.fixture
def writes(monkeypatch):
    """Every file deploy writes to the local share, by share path."""
    written: list[str] = []
    for method in ("upload", "write_bytes"):
        original = getattr(sync.LocalFolderRemote, method)
        monkeypatch.setattr(sync.LocalFolderRemote, method,
                            lambda self, path, *a, _f=original: (written.append(path), _f(self, path, *a))[1])
    return written


def test_deploy_serves_the_model_and_adapter_on_the_share_and_sends_neither(handed_off, writes, fact_prompts):
    root, layout = handed_off
    # the adapter under its folder's name, and the same folder renamed: one deploy, one model load
    result = aitk_nb.deploy([f"share:{layout['adapter']}", f"demo-facts=share:{layout['adapter']}"], project=root,
                            progress=False)
    assert result.health["status"] == "ok" and result.variants == ["base", "adapter", "demo-facts"]
    assert result.settings.base_model == layout["model"]  # the base the adapter's config records, on the share
    assert result.settings.adapters == {"adapter": layout["adapter"], "demo-facts": layout["adapter"]}
    assert writes and all(path.startswith(f"{app_folder(root)}/") for path in writes), writes  # only the inference app
    assert f"served from the share, nothing sent: base model: {layout['model']}" in result.synced
    assert not list(root.parent.rglob("X"))  # the `touch X` in the folder's name never ran
    client = OpenAI(base_url=result.endpoint + "/v1", api_key="not-needed-locally")
    fact = fact_prompts[0]
    answer = client.chat.completions.create(model="demo-facts", messages=[{"role": "user", "content": fact["prompt"]}],
                                            max_tokens=32, temperature=0).choices[0].message.content
    assert fact["expected"].lower() in answer.lower()


def test_a_share_path_without_an_adapter_is_one_line_and_changes_nothing(handed_off, writes):
    root, layout = handed_off
    share = root / ".aitk/local/shares" / layout["share"]
    settings = share / app_folder(root) / "settings.json"
    before, pid = settings.read_bytes(), aitk_nb.endpoint(project=root).raw["replica"]["pid"]
    run = f"models/{layout['adapter'].split('/')[1]}"  # the run's folder: the adapter is one level down
    with pytest.raises(aitk_nb.AitkError) as e:
        aitk_nb.deploy([f"share:{run}"], project=root, progress=False)
    assert str(e.value) == (f"--adapter share:{run}: no adapter_config.json at {share / run}; "
                            "pass a PEFT adapter folder (what `save_pretrained` of a PEFT model writes)")
    assert writes == [] and settings.read_bytes() == before
    assert aitk_nb.endpoint(project=root).raw["replica"]["pid"] == pid  # nothing restarted
