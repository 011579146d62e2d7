"""Client disconnect stops generation (issue 5), seen from inside: a real uvicorn on loopback in
this process, so the test can watch the scheduler's rows rather than guess from timings (with
continuous batching a later request is served alongside a runaway one, so timing proves nothing)."""

from __future__ import annotations

import time

import httpx
import pytest
from server_helpers import serve_in_thread

from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.settings import load_settings

LONG = 2000  # tokens a request asks for; minutes of work on this CPU if it were not stopped
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def live(mount_root):
    s = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    engine = TransformersEngine(s.model_copy(update={"max_new_tokens_limit": LONG}))
    engine.load()
    with serve_in_thread(create_app(engine, with_ui=False)) as url:
        yield engine, url
    engine.shutdown()


def story(**kw) -> dict:
    return {"model": "base", "messages": [{"role": "user", "content": "Tell a very long story."}],
            "max_tokens": LONG, "ignore_eos": True} | kw


def settles(engine, timeout: float = 5.0) -> float:
    """Seconds until no row runs or waits and no generation is held; fails after ``timeout``."""
    start = time.monotonic()
    while engine.scheduler.running or engine.scheduler.waiting or engine._active:
        assert time.monotonic() - start < timeout, (engine.scheduler.running, engine._active)
        time.sleep(0.02)
    return time.monotonic() - start


def test_stream_abandoned_after_a_few_chunks_frees_its_row(live):
    engine, url = live
    steps = engine.scheduler.steps
    with httpx.stream("POST", url + "/v1/chat/completions", json=story(stream=True), timeout=30) as r:
        assert r.status_code == 200
        for i, _ in enumerate(r.iter_lines()):
            if i >= 6:
                break
        assert engine.scheduler.running == 1
    settles(engine)
    assert engine.scheduler.steps - steps < 100  # stopped long before LONG tokens


def test_non_stream_request_whose_client_gives_up_frees_its_row(live):
    engine, url = live
    steps = engine.scheduler.steps
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + "/v1/chat/completions", json=story(), timeout=httpx.Timeout(30, read=1.5))
    settles(engine)  # the disconnect watcher polls every 0.25 s
    assert engine.scheduler.steps - steps < 100
