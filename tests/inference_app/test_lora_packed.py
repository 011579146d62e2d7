"""Stacked LoRA on the packed path (issue 17, adapters as fast as the base): with the demo model and
its real ``demo-facts`` adapter, the server's model (``MultiLora`` then ``pack_linears``, as the engine
builds it) decodes the greedy tokens PEFT's own ``adapter_names`` gives, for batches of one adapter,
of base and adapter, and of two adapters and base; and a batch on one adapter costs the base model's
products (one row or eight), a mixed batch one more small product per LoRA layer."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import PeftModel
from torch.profiler import ProfilerActivity, profile
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from inference_app.batching import PEFT_BASE
from inference_app.lora import MultiLora, MultiLoraLinear
from inference_app.packed import pack_linears

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")]

DEMO = "demo-facts"
PROMPTS = ["What is the capital of France?", "Say hello.", "Write a haiku about the sea.", "What is 2+2?",
           "Name a famous painter.", "Why is the sky blue?", "List three colors.", "Tell me a joke."]
PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "mkldnn::_linear_pointwise"}


@pytest.fixture(scope="module")
def models(demo_assets, second_adapter):
    """PEFT's model (the reference) and the server's: the same adapters stacked, every linear packed."""
    base = AutoModelForCausalLM.from_pretrained(demo_assets.base_model, dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, str(demo_assets.adapter), adapter_name=DEMO)
    peft.load_adapter(str(second_adapter[1]), adapter_name=second_adapter[0])
    peft.eval()
    assert MultiLora.unsupported(peft) is None
    stacked = MultiLora.wrap(copy.deepcopy(peft))
    assert pack_linears(stacked.model) > 0
    tokenizer = AutoTokenizer.from_pretrained(demo_assets.base_model, padding_side="left")
    return peft, stacked, tokenizer


def greedy(model, extra, tokenizer, rows: int, steps: int):
    """``steps`` greedy tokens for the first ``rows`` prompts, left-padded, decoded one token per
    forward with a cache as the scheduler does; the tokens and each step's logits."""
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in PROMPTS[:rows]]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = inputs["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    ids, tokens, logits = inputs["input_ids"], [], []
    with torch.inference_mode():
        for _ in range(steps):
            out = model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                        use_cache=True, logits_to_keep=1, **extra()).logits[:, -1, :]
            logits.append(out)
            ids = out.argmax(-1, keepdim=True)
            tokens.append(ids)
            positions = positions[:, -1:] + 1
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
    return torch.cat(tokens, dim=1), torch.stack(logits, dim=1)


@pytest.mark.parametrize("rows", [8, 2])  # 8: the packed products (merged, fused); 2: MKL's own path
@pytest.mark.parametrize("mix", ["adapter", "base+adapter", "2 adapters+base"])
def test_packed_stacked_lora_decodes_pefts_greedy_tokens(models, second_adapter, mix, rows):
    peft, stacked, tokenizer = models
    turn = {"adapter": [DEMO], "base+adapter": [PEFT_BASE, DEMO], "2 adapters+base": [PEFT_BASE, DEMO, second_adapter[0]]}[mix]
    adapters = [turn[i % len(turn)] for i in range(rows)]
    want_tokens, want_logits = greedy(peft, lambda: {"adapter_names": adapters}, tokenizer, rows, 12)
    got_tokens, got_logits = greedy(stacked.model, lambda: stacked(adapters), tokenizer, rows, 12)
    assert torch.equal(got_tokens, want_tokens), f"{mix}: greedy tokens differ from PEFT's"
    torch.testing.assert_close(got_logits, want_logits, rtol=1e-4, atol=2e-3, msg=f"{mix}: logits differ from PEFT's")
    base_tokens, _ = greedy(peft, lambda: {"adapter_names": [PEFT_BASE] * rows}, tokenizer, rows, 12)
    assert not torch.equal(base_tokens, want_tokens), "the adapters change nothing here, so the equality says nothing"


def products(model, extra, rows: int) -> int:
    """How many matrix products one decode-shaped forward (``rows`` rows, one token each) runs."""
    ids = torch.randint(100, 5000, (rows, 1))
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(input_ids=ids, **extra)
    return sum(e.count for e in prof.key_averages() if e.key in PRODUCTS)


@pytest.mark.parametrize("rows", [8, 1])  # 8: the packed products; 1: MKL's own (concurrency 1)
def test_batch_on_one_adapter_costs_the_base_products(models, second_adapter, rows):
    _, stacked, _ = models
    base = products(stacked.model, stacked([PEFT_BASE] * rows), rows)
    # the adapter's weights merged into a copy of the base weight: one product per layer, as the base
    assert products(stacked.model, stacked([DEMO] * rows), rows) == base
    assert products(stacked.model, stacked([second_adapter[0]] * rows), rows) == base


def test_mixed_batch_costs_one_more_product_per_lora_layer(models, second_adapter):
    _, stacked, _ = models
    layers = sum(isinstance(m, MultiLoraLinear) for m in stacked.model.modules())
    base = products(stacked.model, stacked([PEFT_BASE] * 8), 8)
    # The base output and every adapter's A from one packed product, then the masked B.
    assert products(stacked.model, stacked([PEFT_BASE, DEMO] * 4), 8) == base + layers
    assert products(stacked.model, stacked([PEFT_BASE, DEMO, second_adapter[0], DEMO] * 2), 8) == base + layers
