"""A live adapter change costs what changed (issue 17): adding one adapter to a running set prepares that
adapter's layers only (its merged, packed copies of each layer's weight), the unchanged adapters keep
their prepared tensors (the same objects), removing one drops only its own, and the served logits still
equal PEFT's for the new set after add, change and remove."""

from __future__ import annotations

import torch
import pytest
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

import inference_app.lora as lora
from inference_app.batching import PEFT_BASE
from inference_app.engine import TransformersEngine
from inference_app.lora import MultiLoraLinear
from inference_app.settings import load_settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def third_adapter(tmp_path_factory, base_model_path):
    """An adapter on q and k (k: a layer no other adapter of the set touches)."""
    out = tmp_path_factory.mktemp("third") / "third"
    torch.manual_seed(3)
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    get_peft_model(base, LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "k_proj"], init_lora_weights=False)
                   ).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def engine(mount_root, adapter_name, second_adapter):
    settings = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    engine = TransformersEngine(settings.model_copy(update={"adapters": {adapter_name: mount_root / "models" / adapter_name,
                                                                         second_adapter[0]: second_adapter[1]}}))
    engine.load()
    yield engine
    engine.shutdown()


def merged_copies(engine) -> dict[str, dict[str, object]]:
    """Public adapter name -> {layer path: its packed merged weight} in the served model."""
    slots = engine.scheduler.row_adapters.rows.slots
    public = {slots[internal]: name for name, internal in engine._internal.items()}
    out: dict[str, dict[str, object]] = {name: {} for name in engine._internal}
    for path, m in engine.model.named_modules():
        if isinstance(m, MultiLoraLinear):
            for slot, w in m.packed.merged.items():
                out[public[slot]][path] = w
    return out


def apply(engine, adapters: dict, versions: dict, monkeypatch) -> int:
    """Apply ``adapters`` live; how many weights were packed for oneDNN while doing it."""
    calls = []
    real = lora.pack_weight
    monkeypatch.setattr(lora, "pack_weight", lambda w: calls.append(1) or real(w))
    engine.apply_adapters(engine.settings.model_copy(update={
        "adapters": adapters, "adapter_versions": versions, "settings_hash": f"h{len(calls)}{sorted(versions.items())}"}))
    monkeypatch.setattr(lora, "pack_weight", real)
    return len(calls)


def assert_equals_peft(engine, base_model_path, folders: dict):
    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    names = list(folders)
    peft = PeftModel.from_pretrained(model, str(folders[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        peft.load_adapter(str(folders[name]), adapter_name=name)
    peft.eval()
    torch.manual_seed(0)
    ids = torch.randint(100, 5000, (4, 9))
    mask = torch.ones_like(ids)
    internal = engine._internal
    mixes = [[n] * 4 for n in names] + [[PEFT_BASE, *names, *names][:4]]
    with torch.inference_mode():
        for mix in mixes:
            want = peft(input_ids=ids, attention_mask=mask, adapter_names=mix).logits
            got = engine.model(input_ids=ids, attention_mask=mask,
                               **engine.scheduler.row_adapters([internal.get(n, PEFT_BASE) for n in mix])).logits
            torch.testing.assert_close(got, want, rtol=1e-4, atol=5e-4, msg=f"mix {mix}")
            assert got[:, -1].argmax(-1).tolist() == want[:, -1].argmax(-1).tolist()


def test_add_change_remove_prepares_only_what_changed(engine, mount_root, adapter_name, second_adapter, third_adapter,
                                                      base_model_path, monkeypatch):
    first, (second, second_folder) = mount_root / "models" / adapter_name, second_adapter
    before = merged_copies(engine)
    touched = {path for layers in before.values() for path in layers}

    # add one adapter to a set of two: only its layers get merged copies; the others keep theirs
    added = {adapter_name: first, second: second_folder, "third": third_adapter}
    packs = apply(engine, added, {"third": "v1"}, monkeypatch)
    after = merged_copies(engine)
    layers = [m for m in engine.model.modules() if isinstance(m, MultiLoraLinear)]
    assert len(after["third"]) == 2 * 30  # q and k of 30 decoder layers
    assert packs == len(layers) + len(after["third"])  # one fused [W; A] per LoRA layer + the new adapter's merged
    for name in (adapter_name, second):
        assert after[name].keys() == before[name].keys()
        assert all(after[name][p] is before[name][p] for p in before[name]), f"{name}'s merged weights were rebuilt"
    assert len(layers) == len(touched | set(after["third"]))
    assert_equals_peft(engine, base_model_path, added)

    # change the first adapter's weights (another folder, new version): only it is prepared again
    changed = {adapter_name: third_adapter, second: second_folder, "third": third_adapter}
    packs = apply(engine, changed, {adapter_name: "v2", "third": "v1"}, monkeypatch)
    again = merged_copies(engine)
    assert packs == sum(1 for m in engine.model.modules() if isinstance(m, MultiLoraLinear)) + len(again[adapter_name])
    for name in (second, "third"):
        assert all(again[name][p] is after[name][p] for p in after[name])
    assert all(again[adapter_name][p] is not after["third"][p] for p in again[adapter_name])
    assert_equals_peft(engine, base_model_path, changed)

    # remove one: nothing is prepared, its prepared weights leave the cache, the rest are the same objects
    removed = {second: second_folder, "third": third_adapter}
    packs = apply(engine, removed, {"third": "v1"}, monkeypatch)
    final = merged_copies(engine)
    assert packs == sum(1 for m in engine.model.modules() if isinstance(m, MultiLoraLinear))
    assert set(final) == {second, "third"} and len(engine._prepared) == 2
    for name in (second, "third"):
        assert all(final[name][p] is again[name][p] for p in again[name])
    assert_equals_peft(engine, base_model_path, removed)
