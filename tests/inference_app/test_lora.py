"""Stacked LoRA (issue 12): ``MultiLora`` gives the logits PEFT's own per-row ``adapter_names`` gives,
for every mix of base and two adapters that touch different layers with different ranks (the second
one's rank differs between its own layers too); adapters it
cannot stack (LoRA on the embeddings) keep PEFT's path and still apply per row."""

from __future__ import annotations

import asyncio
import copy

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from inference_app.batching import PEFT_BASE
from inference_app.engine import TransformersEngine
from inference_app.interface import GenerationRequest, SamplingParams
from inference_app.lora import MultiLora, MultiLoraLinear, peft_adapter_names
from inference_app.settings import load_settings

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def peft_model(base_model_path, mount_root, adapter_name, second_adapter):
    model = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, str(mount_root / "models" / adapter_name), adapter_name=adapter_name)
    model.load_adapter(str(second_adapter[1]), adapter_name=second_adapter[0])
    return model.eval()


def test_stacked_logits_equal_peft_per_row_for_every_mix(peft_model, adapter_name, second_adapter):
    other = second_adapter[0]
    assert MultiLora.unsupported(peft_model) is None
    stacked = MultiLora.wrap(copy.deepcopy(peft_model))
    layers = [m for m in stacked.model.modules() if isinstance(m, MultiLoraLinear)]
    # q: the first only (rank 4); o and down: the second only (rank 2 and 8); v: both
    assert {m.layout for m in layers} == {((0, 4),), ((1, 2),), ((1, 8),), ((0, 4), (1, 8))}
    assert not any(type(m).__module__.startswith("peft") for m in stacked.model.modules())  # PEFT's layers are gone

    torch.manual_seed(0)
    ids = torch.randint(100, 5000, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # a left-padded row, as the scheduler batches them
    mixes = [
        [PEFT_BASE] * 4,
        [adapter_name] * 4,
        [other] * 4,
        [PEFT_BASE, adapter_name, PEFT_BASE, adapter_name],
        [adapter_name, other, PEFT_BASE, other],
    ]
    with torch.inference_mode():
        for mix in mixes:
            want = peft_model(input_ids=ids, attention_mask=mask, adapter_names=mix).logits
            got = stacked.model(input_ids=ids, attention_mask=mask, **stacked(mix)).logits
            # Float noise only: PEFT's own batched logits differ from its one-row logits by ~1e-3 here.
            # Padding positions attend to nothing: their logits are noise the scheduler never reads
            # (the packed products round differently there by ~3e-3), so only real tokens are compared.
            real = mask.bool()
            torch.testing.assert_close(got[real], want[real], rtol=1e-4, atol=5e-4, msg=f"mix {mix}")
        # Each variant really changes the numbers, so the equality above means something.
        outs = {}
        for name in (PEFT_BASE, adapter_name, other):
            outs[name] = stacked.model(input_ids=ids, attention_mask=mask, **stacked([name] * 4)).logits
        assert (outs[PEFT_BASE] - outs[adapter_name]).abs().max() > 0.1
        assert (outs[PEFT_BASE] - outs[other]).abs().max() > 0.1


def test_adapter_it_cannot_stack_keeps_pefts_path_and_applies_per_row(tmp_path, base_model_path, mount_root):
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    lora = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "embed_tokens"], init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "models" / "embed")
    settings = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    engine = TransformersEngine(settings.model_copy(update={"adapters": {"embed": tmp_path / "models" / "embed"}}))
    engine.load()
    try:
        assert "embed_tokens: LoRA on a layer of kind Embedding" in MultiLora.unsupported(engine.model)
        assert engine.scheduler.row_adapters is peft_adapter_names

        async def both():
            async def one(variant):
                gen = await engine.generate(GenerationRequest([{"role": "user", "content": "Say hello."}], variant, SamplingParams(8)))
                return "".join([d async for d in gen])
            return await asyncio.gather(one("base"), one("embed"))

        base_text, adapted = asyncio.run(both())
        assert base_text and adapted and base_text != adapted
    finally:
        engine.shutdown()
