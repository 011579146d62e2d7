"""The app in-process with an engine that is not loaded yet: /health 503, then 200 after load."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from inference_app.api import create_app
from inference_app.engine import TransformersEngine, check_adapters
from inference_app.errors import AdapterConfigError
from inference_app.settings import load_settings


@pytest.fixture
def settings(mount_root):
    return load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})


@pytest.mark.timeout(60)
def test_health_is_503_while_loading_then_200(settings, adapter_name, base_id):
    engine = TransformersEngine(settings)
    client = TestClient(create_app(engine, with_ui=False))
    r = client.get("/health")
    assert r.status_code == 503 and r.json() == {"status": "loading"}
    assert client.get("/live").status_code == 200  # alive while loading: the startup probe lets it finish
    r = client.post("/v1/chat/completions", json={"model": "base", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503 and r.json()["error"]["code"] == "model_loading" and "Retry-After" in r.headers

    engine.load()
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model": base_id, "adapters": [adapter_name], "variants": ["base", adapter_name],
                        "settings_hash": settings.settings_hash}  # which settings.json is served (issue 17)


def test_adapter_without_config_fails_fast(settings, tmp_path, adapter_name):
    bad = settings.model_copy(update={"adapters": {"broken": tmp_path}})
    with pytest.raises(AdapterConfigError, match=rf"adapter 'broken' at {tmp_path}: no adapter_config.json"):
        check_adapters(bad)
    clash = settings.model_copy(update={"adapters": {"base": settings.adapters[adapter_name]}})
    with pytest.raises(AdapterConfigError, match="reserved"):
        check_adapters(clash)


async def _overload_check(engine):
    from inference_app.engine import GenerationRequest, SamplingParams
    from inference_app.errors import OverloadedError

    req = GenerationRequest([{"role": "user", "content": "hi"}], "base", SamplingParams(max_new_tokens=2))
    first = await engine.generate(req)
    with pytest.raises(OverloadedError):
        await engine.generate(req)
    assert [d async for d in first]  # the admitted one still runs
    await first.aclose()
    second = await engine.generate(req)  # the slot was released
    await second.aclose()


@pytest.mark.timeout(60)
def test_concurrency_bound_gives_overloaded(settings):
    import asyncio

    engine = TransformersEngine(settings.model_copy(update={"max_concurrency": 1}))
    engine.load()
    try:
        asyncio.run(_overload_check(engine))
    finally:
        engine.shutdown()
