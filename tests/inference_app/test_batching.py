"""Continuous batching in-process (issues 5 and 12): batched text equals text alone for every mix of
base and two adapters (mixed batches, one-adapter batches, late joiners), cancellation frees the row,
fair admission across adapters, sampling per row."""

from __future__ import annotations

import asyncio
import time

import pytest
import torch

from inference_app.batching import PEFT_BASE, BatchScheduler, Sequence, sample
from inference_app.engine import TransformersEngine, GenerationRequest, SamplingParams
from inference_app.settings import load_settings

DEMO_PROMPTS = ["Say hello.", "What is the capital of France?", "Write a haiku about the sea."]
TOKENS = 12
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def engine(mount_root, second_adapter):
    settings = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    adapters = settings.adapters | {second_adapter[0]: second_adapter[1]}
    eng = TransformersEngine(settings.model_copy(update={"max_batch_size": 16, "max_concurrency": 32, "adapters": adapters}))
    eng.load()
    yield eng
    eng.shutdown()


async def run(engine, prompt, variant="base", delay=0.0, **sampling):
    await asyncio.sleep(delay)
    gen = await engine.generate(GenerationRequest([{"role": "user", "content": prompt}], variant, SamplingParams(max_new_tokens=TOKENS, **sampling)))
    text = "".join([d async for d in gen])
    return text, gen.completion_tokens, gen.finish_reason


def test_greedy_batched_equals_alone_for_every_mix_of_base_and_two_adapters(engine, adapter_name, second_adapter):
    variants = ("base", adapter_name, second_adapter[0])
    jobs = [(p, v) for p in DEMO_PROMPTS for v in variants]
    sampled = dict(temperature=0.9, top_p=0.9, top_k=40, seed=7)

    async def scenario():
        alone = [await run(engine, p, v) for p, v in jobs]
        alone_sampled = await run(engine, DEMO_PROMPTS[0], **sampled)
        engine.scheduler.peak_batch = 0
        # All variants in one batch: half start together, half join while the first ones decode.
        mixed = await asyncio.gather(
            *(run(engine, p, v, delay=0.0 if i % 2 == 0 else 0.3 * i) for i, (p, v) in enumerate(jobs)),
            run(engine, DEMO_PROMPTS[0], delay=0.2, **sampled),
        )
        # Each variant alone in its batch (the one-adapter path), then base with one adapter.
        by_variant = [await asyncio.gather(*(run(engine, p, v) for p in DEMO_PROMPTS)) for v in variants]
        pairs = await asyncio.gather(*(run(engine, p, v) for p, v in jobs if v != second_adapter[0]))
        return alone, alone_sampled, mixed, [r for rows in by_variant for r in rows], pairs

    alone, alone_sampled, mixed, by_variant, pairs = asyncio.run(scenario())
    expected = dict(zip(jobs, alone))
    for (prompt, variant), got in zip(jobs, mixed):
        assert got == expected[(prompt, variant)], f"{variant} on {prompt!r} in a mixed batch"
    for (prompt, variant), got in zip([(p, v) for v in variants for p in DEMO_PROMPTS], by_variant):
        assert got == expected[(prompt, variant)], f"{variant} on {prompt!r} in a batch of its own"
    for (prompt, variant), got in zip([j for j in jobs if j[1] != second_adapter[0]], pairs):
        assert got == expected[(prompt, variant)], f"{variant} on {prompt!r} in a base + adapter batch"
    assert all(text and reason in ("stop", "length") for text, _, reason in alone)
    assert mixed[-1] == alone_sampled  # a seeded sample does not depend on its neighbours
    for prompt in DEMO_PROMPTS:  # each adapter really applied per row
        texts = {expected[(prompt, v)][0] for v in variants}
        assert len(texts) == 3, f"{prompt!r}: {texts}"
    assert engine.scheduler.peak_batch > 1  # they really shared decode steps


def test_greedy_text_is_what_transformers_generate_gives(engine, base_model_path, mount_root, adapter_name, second_adapter):
    """The whole path (template prefix computed once per variant, stacked LoRA, packed linear layers,
    the batch cache) against the libraries' own greedy generate, per variant."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(base_model_path, dtype=torch.float32)
    reference = PeftModel.from_pretrained(reference, str(mount_root / "models" / adapter_name), adapter_name=adapter_name)
    reference.load_adapter(str(second_adapter[1]), adapter_name=second_adapter[0])
    reference.eval()
    tok = engine.tokenizer

    async def ours():
        return [await run(engine, p, v) for v in ("base", adapter_name, second_adapter[0]) for p in DEMO_PROMPTS]

    texts = asyncio.run(ours())
    assert engine.scheduler.prefix_ids and len(engine.scheduler._prefix_kv) == 3  # the prefix was reused
    i = 0
    for variant in (PEFT_BASE, adapter_name, second_adapter[0]):
        for prompt in DEMO_PROMPTS:
            ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          return_dict=True, return_tensors="pt")
            with torch.inference_mode():
                out = reference.generate(**ids, max_new_tokens=TOKENS, do_sample=False, adapter_names=[variant],
                                         pad_token_id=tok.eos_token_id)
            want = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
            assert texts[i][0] == want, f"{variant} on {prompt!r}"
            i += 1


def wait_until(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_closing_a_generation_frees_its_row(engine):
    async def scenario():
        long = SamplingParams(max_new_tokens=2000, ignore_eos=True)
        gen = await engine.generate(GenerationRequest([{"role": "user", "content": "Tell a long story."}], "base", long))
        it = gen.__aiter__()
        await it.__anext__()
        # the first token is sent just before its row joins the running batch
        await asyncio.to_thread(wait_until, lambda: engine.scheduler.running == 1)
        await gen.aclose()
        await asyncio.to_thread(wait_until, lambda: engine.scheduler.running == 0)
        assert engine._active == 0 and gen.completion_tokens < 2000

    asyncio.run(scenario())


def test_ignore_eos_generates_exactly_max_tokens(engine):
    text, tokens, reason = asyncio.run(run(engine, "What is 2+2?", ignore_eos=True))
    assert (tokens, reason) == (TOKENS, "length")


def _seq(adapter: str) -> Sequence:
    return Sequence([1], adapter, 1, 0.0, 1.0, 0, None, False, loop=None, queue=None)


def test_admission_is_round_robin_across_adapters():
    sched = BatchScheduler(torch.nn.Linear(1, 1), eos_ids={0}, pad_id=0, max_batch_size=2)
    try:
        with sched._cond:  # hold the scheduler thread off while queueing
            bases = [_seq(PEFT_BASE) for _ in range(3)]
            other = _seq("a")
            for s in [*bases, other]:
                sched.submit(s)
            assert sched._admit(2) == [bases[0], other]  # the adapter does not wait behind base's backlog
            assert sched._admit(5) == bases[1:]
    finally:
        sched.shutdown()


def test_sample_top_k_1_and_tiny_top_p_are_greedy():
    logits = torch.randn(3, 50)
    seqs = [Sequence([1], PEFT_BASE, 1, 1.0, 1.0, 1, 0, False, None, None),
            Sequence([1], PEFT_BASE, 1, 1.5, 1e-6, 0, 1, False, None, None),
            Sequence([1], PEFT_BASE, 1, 1e-300, 1.0, 0, 2, False, None, None)]
    assert sample(logits, seqs) == logits.argmax(-1).tolist()
