"""merge_adapter (issue 5): the demo adapter merged into the base weights gives the same greedy text
as the same adapter applied per row, on the demo prompts, batched and alone; and ``base`` is refused,
naming the setting."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi.testclient import TestClient
from server_helpers import REPO, write_settings

from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.interface import GenerationRequest, SamplingParams
from inference_app.settings import load_settings

TOKENS = 24
DEMO_PROMPTS = [json.loads(line)["prompt"] for line in (REPO / "demo" / "eval.jsonl").read_text().splitlines() if line.strip()]
pytestmark = pytest.mark.timeout(240)


def demo_settings(tmp_path, demo_assets, **extra):
    write_settings(tmp_path, {"base_model": str(demo_assets.base_model), "adapters": {"demo-facts": str(demo_assets.adapter)},
                              "max_batch_size": 2 * len(DEMO_PROMPTS), "max_concurrency": 64, **extra})
    return load_settings({"AITK_MOUNT_ROOT": str(tmp_path), "AITK_SETTINGS": str(tmp_path / "inference" / "settings.json")})


async def one(engine, prompt, variant):
    gen = await engine.generate(GenerationRequest([{"role": "user", "content": prompt}], variant, SamplingParams(TOKENS)))
    return "".join([d async for d in gen])


def greedy_all(engine, variants) -> dict:
    """Every demo prompt on every variant, all at once (one batch)."""
    async def everything():
        jobs = [(p, v) for v in variants for p in DEMO_PROMPTS]
        return dict(zip(jobs, await asyncio.gather(*(one(engine, p, v) for p, v in jobs))))

    return asyncio.run(everything())


def test_merged_adapter_gives_the_same_greedy_text_as_the_adapter_per_row(tmp_path, demo_assets):
    unmerged = TransformersEngine(demo_settings(tmp_path / "a", demo_assets))
    unmerged.load()
    try:
        per_row = greedy_all(unmerged, ["base", "demo-facts"])
    finally:
        unmerged.shutdown()
    del unmerged

    merged = TransformersEngine(demo_settings(tmp_path / "b", demo_assets, merge_adapter=True))
    merged.load()
    try:
        assert merged.scheduler.row_adapters is None and not hasattr(merged.model, "peft_config")
        folded = greedy_all(merged, ["demo-facts"])
        alone = {p: asyncio.run(one(merged, p, "demo-facts")) for p in DEMO_PROMPTS[:4]}
    finally:
        merged.shutdown()

    for prompt in DEMO_PROMPTS:
        assert folded[(prompt, "demo-facts")] == per_row[(prompt, "demo-facts")], prompt
    for prompt, text in alone.items():  # merged, a prompt alone gives what it gives in the batch
        assert text == folded[(prompt, "demo-facts")], prompt
    changed = sum(per_row[(p, "demo-facts")] != per_row[(p, "base")] for p in DEMO_PROMPTS)
    assert changed >= len(DEMO_PROMPTS) // 2  # the adapter matters, so equality above means something


def test_merged_mode_serves_the_adapter_only_and_refuses_base_naming_the_setting(tmp_path, demo_assets, mount_root, adapter_name):
    # The session's small random adapter: this test is about the routes, not the weights.
    s = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json"),
                       "AITK_MERGE_ADAPTER": "1"})
    engine = TransformersEngine(s)
    with TestClient(create_app(engine, background_load=engine.load_async, with_ui=False)) as client:
        deadline = time.monotonic() + 60
        while client.get("/health").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.get("/health").json()["merged_adapter"] == adapter_name
        assert client.get("/health").json()["variants"] == [adapter_name]  # base is not served
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == [adapter_name]
        body = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 3}
        for name in ("base", s.base_model_id):
            r = client.post("/v1/chat/completions", json=body | {"model": name})
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert (err["param"], err["code"]) == ("model", "model_not_served")
            assert "merge_adapter" in err["message"] and adapter_name in err["message"]
        r = client.post("/v1/chat/completions", json=body | {"model": adapter_name})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1
