"""Request limits (issues 5 and 12): max_tokens is clamped to the server maximum and to what the context
window leaves after the prompt; a prompt that fills the window is a 400 naming ``messages``; a request
still running ``max_request_seconds`` after admission ends with finish_reason "length"; an answer ended
by a server limit carries a note saying which (OpenAI route, streamed or not, and the Gradio answer)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from gradio_client import Client
from server_helpers import serve_in_thread

from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.interface import GenerationRequest, SamplingParams
from inference_app.params import to_sampling
from inference_app.protocol import SamplingFields
from inference_app.settings import SettingsFile, load_settings

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
    r = ask(client, "Hi.", max_tokens=30, ignore_eos=True)  # under the 40 limit, over what the window leaves
    assert r.status_code == 200, r.text
    usage, choice = r.json()["usage"], r.json()["choices"][0]
    assert 20 < usage["prompt_tokens"] < WINDOW - 5  # the chat template's system prompt plus "Hi."
    assert usage["total_tokens"] == WINDOW and choice["finish_reason"] == "length"
    assert f"what the context window of {WINDOW} tokens leaves after the prompt" in r.json()["note"]
    short = ask(client, "Hi.", max_tokens=3, ignore_eos=True).json()
    assert short["usage"]["completion_tokens"] == 3  # a request that fits is left alone
    assert "note" not in short  # its own max_tokens ended it: nothing to explain


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


# ----- the default cap, the time limit, and the note -------------------------------------------------
def test_the_default_cap_for_max_tokens_is_lower():
    assert SettingsFile().max_new_tokens_limit == 1024  # was 4096: 13+ minutes of CPU for one request
    assert SettingsFile().max_request_seconds == 180  # under Azure's 240 s ingress timeout


CAP = 6
TIME_LIMIT_S = 1.5


@pytest.fixture(scope="module")
def limited(mount_root):
    """A real server (with the Gradio UI) whose cap is CAP tokens and whose time limit is TIME_LIMIT_S."""
    s = load_settings({"AITK_MOUNT_ROOT": str(mount_root), "AITK_SETTINGS": str(mount_root / "inference" / "settings.json")})
    engine = TransformersEngine(s.model_copy(update={"max_new_tokens_limit": 400, "max_request_seconds": TIME_LIMIT_S,
                                                     "max_batch_size": 1}))
    engine.load()
    with serve_in_thread(create_app(engine)) as url:
        yield engine, url
    engine.shutdown()


def chat(url: str, **kw) -> httpx.Response:
    body = {"model": "base", "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
            "ignore_eos": True} | kw
    return httpx.post(url + "/v1/chat/completions", json=body, timeout=60)


def test_a_request_past_the_time_limit_ends_with_length_and_a_note(limited):
    engine, url = limited
    start = time.monotonic()
    r = chat(url, max_tokens=400)
    elapsed = time.monotonic() - start
    body = r.json()
    assert r.status_code == 200 and body["choices"][0]["finish_reason"] == "length"
    assert 0 < body["usage"]["completion_tokens"] < 400  # 400 tokens take far longer than the limit here
    assert f"time limit of {TIME_LIMIT_S:g} s per request (max_request_seconds)" in body["note"]
    assert elapsed < TIME_LIMIT_S + 5  # ended by the limit, not by running to 400 tokens


def test_a_streamed_request_past_the_time_limit_gets_the_note_on_its_last_chunk(limited):
    engine, url = limited
    body = {"model": "base", "messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 400,
            "ignore_eos": True, "stream": True}
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: {")]
    last = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert [e["choices"][0]["finish_reason"] for e in last] == ["length"]
    assert "max_request_seconds" in last[0]["note"]
    assert all("note" not in e for e in events if e not in last)


def test_a_request_that_waits_past_its_time_limit_ends_without_starting(limited):
    engine, _ = limited  # max_batch_size 1: the second request waits for the first one's row

    async def collect(gen):
        return "".join([d async for d in gen])

    async def run():
        req = GenerationRequest([{"role": "user", "content": "Tell a long story."}], "base",
                                SamplingParams(max_new_tokens=400, ignore_eos=True))
        # second's clock starts first, and first takes the row (submitted in gather's order): second's
        # time runs out while it waits, before first's can end and free the row
        second = await engine.generate(req)
        first = await engine.generate(req)
        await asyncio.gather(collect(first), collect(second))
        return first, second

    first, second = asyncio.run(run())
    assert first.finish_reason == second.finish_reason == "length"
    assert first.completion_tokens > 0 and second.completion_tokens == 0
    assert "max_request_seconds" in second.note and engine._active == 0
    assert "waited in the queue" in second.note and "retry" in second.note  # not "ask for fewer tokens": it got none


def test_max_tokens_over_the_servers_cap_is_lowered_with_a_note(limited):
    engine, _ = limited
    capped = engine.settings.model_copy(update={"max_new_tokens_limit": CAP})

    async def run(max_tokens):
        sampling = dataclasses.replace(to_sampling(SamplingFields(max_tokens=max_tokens), capped), ignore_eos=True)
        gen = await engine.generate(GenerationRequest([{"role": "user", "content": "Count to fifty."}], "base", sampling))
        return "".join([d async for d in gen]), gen

    text, gen = asyncio.run(run(10_000))
    assert (gen.completion_tokens, gen.finish_reason) == (CAP, "length")
    assert gen.note == f"stopped after {CAP} tokens: max_tokens 10000 was lowered to {CAP}, the server's limit (max_new_tokens_limit)"
    _, own = asyncio.run(run(CAP))
    assert own.finish_reason == "length" and own.note is None  # the client's own max_tokens: nothing to explain


def test_the_gradio_answer_says_a_limit_ended_it(limited):
    engine, url = limited
    text = Client(url, verbose=False).predict("Write a long story about a dragon.", "base", 400, 0, 1, 50, api_name="/generate")
    body, _, note = text.rpartition("\n\n[")
    assert body and note.startswith("stopped after ") and "max_request_seconds" in note and note.endswith("]")
