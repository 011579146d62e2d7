"""Request limits (issue 5): max_tokens is clamped to the server maximum and to what the context
window leaves after the prompt; a prompt that fills the window is a 400 naming ``messages``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.params import to_sampling
from inference_app.protocol import SamplingFields
from inference_app.settings import load_settings

WINDOW = 48
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(mount_root):
    s = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    return s.model_copy(update={"max_model_len": WINDOW, "max_new_tokens_limit": 40})


@pytest.fixture(scope="module")
def client(settings):
    engine = TransformersEngine(settings)
    engine.load()
    assert engine.context_window == WINDOW  # the setting, below the model's 8192
    with TestClient(create_app(engine, with_ui=False)) as c:
        yield c
    engine.shutdown()


def ask(client, content: str, **kw):
    body = {"model": "base", "messages": [{"role": "user", "content": content}], "temperature": 0} | kw
    return client.post("/v1/chat/completions", json=body)


def test_max_tokens_is_clamped_to_the_server_maximum(settings):
    assert to_sampling(SamplingFields(max_tokens=10**9), settings).max_new_tokens == 40
    assert to_sampling(SamplingFields(max_completion_tokens=41, max_tokens=3), settings).max_new_tokens == 40
    assert to_sampling(SamplingFields(), settings).max_new_tokens == settings.max_new_tokens


def test_max_tokens_is_clamped_to_what_the_window_leaves_after_the_prompt(client):
    r = ask(client, "Hi.", max_tokens=10**9, ignore_eos=True)
    assert r.status_code == 200, r.text
    usage, choice = r.json()["usage"], r.json()["choices"][0]
    assert 20 < usage["prompt_tokens"] < WINDOW - 5  # the chat template's system prompt plus "Hi."
    assert usage["total_tokens"] == WINDOW and choice["finish_reason"] == "length"
    short = ask(client, "Hi.", max_tokens=3, ignore_eos=True).json()["usage"]
    assert short["completion_tokens"] == 3  # a request that fits is left alone


def test_prompt_filling_the_window_is_400_naming_messages(client):
    fits = ask(client, "Hi.", max_tokens=1).json()["usage"]["prompt_tokens"]
    room = WINDOW - fits  # tokens the window has left after the short prompt
    # "Hi." plus `room` more " x" tokens fills the window exactly: no room for an answer.
    for extra, status in ((room - 1, 200), (room, 400), (room + 500, 400)):
        r = ask(client, "Hi." + " x" * extra, max_tokens=5)
        assert r.status_code == status, (extra, r.text)
        if status == 400:
            err = r.json()["error"]
            assert (err["param"], err["code"], err["type"]) == ("messages", "context_length_exceeded", "invalid_request_error")
            assert err["message"].startswith("messages: ") and f"context window is {WINDOW} tokens" in err["message"]
        else:
            assert r.json()["usage"]["total_tokens"] <= WINDOW


def test_models_report_the_context_window(client):
    assert {m["max_model_len"] for m in client.get("/v1/models").json()["data"]} == {WINDOW}
