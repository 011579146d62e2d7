"""The engine's live adapter swap in-process (issue 17): a request that started on an adapter finishes on
the weights it started with while new requests get the new ones, and removing an adapter gives its
memory back (nothing of the removed set stays referenced)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
import torch

from inference_app.engine import GenerationRequest, SamplingParams, TransformersEngine
from inference_app.settings import load_settings

pytestmark = pytest.mark.timeout(240)
TOKENS = 24


def request(variant: str) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": "Tell me a story."}], variant,
                             SamplingParams(max_new_tokens=TOKENS, ignore_eos=True))


async def complete(engine, variant: str) -> str:
    return "".join([d async for d in await engine.generate(request(variant))])


@pytest.fixture(scope="module")
def engine(mount_root):
    engine = TransformersEngine(load_settings({"AITK_MOUNT_ROOT": str(mount_root),
                                               "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")}))
    engine.load()
    yield engine
    engine.shutdown()


def weight_bytes(model) -> int:
    """Bytes of the distinct tensors the served model holds (parameters and packed twins)."""
    seen = {}
    for module in model.modules():
        for t in (*module.parameters(recurse=False), *module.buffers(recurse=False),
                  *(v for v in vars(module).values() if hasattr(v, "untyped_storage"))):
            if t.layout == torch.strided:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            else:  # a packed (oneDNN) weight has no storage to look at
                seen[id(t)] = t.numel() * t.element_size()
    return sum(seen.values())


def test_a_running_request_finishes_on_its_weights_and_new_ones_get_the_new(engine, adapter_name, second_adapter):
    name, folder = second_adapter
    old_text = asyncio.run(complete(engine, adapter_name))
    changed = engine.settings.model_copy(update={"adapters": {adapter_name: folder},
                                                 "adapter_versions": {adapter_name: "v2"}, "settings_hash": "changed"})

    async def change_while_running() -> tuple[str, str]:
        gen = await engine.generate(request(adapter_name))
        first = await gen.__anext__()  # it runs on the old weights now
        swap = asyncio.create_task(asyncio.to_thread(engine.apply_adapters, changed))
        rest = "".join([d async for d in gen])
        await swap
        return first + rest, await complete(engine, adapter_name)

    during, after = asyncio.run(change_while_running())
    assert during == old_text  # finished on the weights it started with
    assert after != old_text and engine.health()["settings_hash"] == "changed"
    assert after == asyncio.run(complete(engine, adapter_name))


def test_removing_an_adapter_gives_its_memory_back(engine, adapter_name, second_adapter):
    name, folder = second_adapter
    one = engine.settings.model_copy(update={"adapters": {adapter_name: engine.settings.adapters[adapter_name]},
                                             "settings_hash": "one"})
    engine.apply_adapters(one)
    before = weight_bytes(engine.model)
    engine.apply_adapters(one.model_copy(update={"adapters": {adapter_name: one.adapters[adapter_name], name: folder},
                                                 "settings_hash": "two"}))
    assert asyncio.run(complete(engine, name))
    grown, built = weight_bytes(engine.model), weakref.ref(engine.model)
    assert grown > before
    engine.apply_adapters(one.model_copy(update={"settings_hash": "one again"}))
    gc.collect()
    assert built() is None, "the two-adapter model is still referenced"
    assert weight_bytes(engine.model) == before
    assert engine.variants() == ["base", adapter_name]
