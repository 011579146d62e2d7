"""One real server on loopback (subprocess), driven by the OpenAI SDK, httpx and gradio_client."""

from __future__ import annotations

import base64
import json
import time

import httpx
import openai
import pytest
from gradio_client import Client
from openai import OpenAI

from inference_app.contract import settings_digest

PROMPT = "Say hello."
MAX_TOKENS = 16
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client(server) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key=server.key, max_retries=0, timeout=60)


def chat(client: OpenAI, model: str, prompt: str = PROMPT, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS, temperature=0, **kw)


@pytest.fixture(scope="module")
def greedy(client, adapter_name) -> dict:
    """Greedy non-stream completions of PROMPT per variant, computed once (the CPU is slow)."""
    return {variant: chat(client, variant) for variant in ("base", adapter_name)}


def test_health_is_open_and_names_model_and_adapters(server, base_id, adapter_name, mount_root):
    r = httpx.get(server.url + "/health")  # no key
    assert r.status_code == 200
    served = settings_digest((mount_root / "inference" / "settings.json").read_bytes())  # which settings (issue 17)
    assert r.json() == {"status": "ok", "model": base_id, "adapters": [adapter_name], "variants": ["base", adapter_name],
                        "settings_hash": served}
    assert httpx.get(server.url + "/live").json() == {"status": "alive"}  # the probes' route: no key either
    assert httpx.get(server.url + "/v1/models").status_code == 401  # every other route needs the key


def test_models_lists_base_and_adapter(client, adapter_name):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["base", adapter_name]
    assert client.models.retrieve(adapter_name).owned_by == "aitk-nb"


def test_non_stream_greedy_is_deterministic_and_adapter_differs(client, greedy, adapter_name, base_id):
    first = greedy["base"]
    text = first.choices[0].message.content
    assert text and first.choices[0].finish_reason in ("stop", "length")
    assert first.model == "base" and first.choices[0].message.role == "assistant"
    u = first.usage
    assert u.prompt_tokens > 0 and 0 < u.completion_tokens <= MAX_TOKENS and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert chat(client, base_id).choices[0].message.content == text  # same again, via the base id alias
    adapted = greedy[adapter_name].choices[0].message.content
    assert adapted and adapted != text


def test_length_finish_reason_when_max_tokens_reached(client):
    r = client.chat.completions.create(
        model="base", messages=[{"role": "user", "content": "Write a long story about a dragon."}], max_completion_tokens=5, temperature=0
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_stream_matches_non_stream(client, greedy, adapter_name):
    expected = greedy[adapter_name].choices[0].message.content
    chunks = list(chat(client, adapter_name, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_wire_format_ends_with_done(server):
    body = {"model": "base", "messages": [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, headers=server.auth, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] in ("stop", "length")


def test_stop_sequence_cuts_text(client, greedy):
    text = greedy["base"].choices[0].message.content
    word = text.split()[2]
    r = chat(client, "base", stop=[word])
    assert r.choices[0].message.content == text[: text.index(word)]
    assert r.choices[0].finish_reason == "stop"


def test_unknown_model_is_404_naming_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, "no-such-adapter")
    err = e.value.body
    assert (err["param"], err["code"], err["type"]) == ("model", "model_not_found", "invalid_request_error")
    assert "no-such-adapter" in err["message"]


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, "messages[0].content"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"top_p": 0}, "top_p"),
        ({"n": 2}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": -3}, "max_completion_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"seed": "lucky"}, "seed"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": None}, "model"),
        # strict types (issue 12): no quiet conversion of booleans, strings or fractions
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": "10"}, "max_tokens"),
        ({"max_tokens": 10.5}, "max_tokens"),
        ({"max_completion_tokens": False}, "max_completion_tokens"),
        ({"temperature": "0.5"}, "temperature"),
        ({"top_p": True}, "top_p"),
        ({"top_k": "5"}, "top_k"),
        ({"seed": True}, "seed"),
        ({"stream": "true"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"ignore_eos": "yes"}, "ignore_eos"),
        ({"n": "1"}, "n"),
        ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ],
)
def test_bad_input_is_400_naming_the_field(server, patch, param):
    body = {"model": "base", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4} | patch
    r = httpx.post(server.url + "/v1/chat/completions", json=body, headers=server.auth, timeout=30)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error"
    assert param in err["message"]


@pytest.mark.parametrize("field", ["temperature", "top_p"])
@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_sampling_values_are_400(server, field, value):
    raw = f'{{"model": "base", "messages": [{{"role": "user", "content": "hi"}}], "max_tokens": 2, "{field}": {value}}}'
    r = httpx.post(server.url + "/v1/chat/completions", content=raw.encode(), headers=server.auth | {"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text


def test_malformed_json_is_400(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b'{"model":', headers=server.auth | {"content-type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_sdk_with_wrong_key_is_401(server):
    bad = OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


@pytest.mark.parametrize("path", ["/v1/models", "/", "/config", "/gradio_api/info"])
def test_routes_need_the_key(server, path):
    missing = httpx.get(server.url + path)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Basic realm="aitk-nb"')
    assert missing.json()["error"]["code"] == "invalid_api_key"
    wrong = httpx.get(server.url + path, headers={"Authorization": "Bearer not-the-key"})
    assert wrong.status_code == 401
    assert httpx.get(server.url + path, headers=server.auth).status_code == 200
    basic = base64.b64encode(f"anyone:{server.key}".encode()).decode()
    assert httpx.get(server.url + path, headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_key_is_never_logged(server):
    assert server.key not in server.output()


def test_gradio_client_generate_matches_openai_route(server, greedy, adapter_name):
    gc = Client(server.url, headers=server.auth, verbose=False)
    for variant in ("base", adapter_name):
        expected = greedy[variant].choices[0].message.content
        assert gc.predict(PROMPT, variant, MAX_TOKENS, 0, 1, 50, api_name="/generate") == expected


def test_gradio_generate_bad_adapter_and_prompt_name_the_form_fields(server):
    from gradio_client.exceptions import AppError

    gc = Client(server.url, headers=server.auth, verbose=False)
    with pytest.raises(AppError, match=r"adapter: model 'no-such-adapter' does not exist; available: base, "):
        gc.predict(PROMPT, "no-such-adapter", 4, 0, 1, 50, api_name="/generate")
    with pytest.raises(AppError, match="^prompt: the prompt is 90.. tokens long and the context window is 8192 tokens"):
        gc.predict("x " * 9000, "base", 4, 0, 1, 50, api_name="/generate")
    with pytest.raises(AppError, match="^prompt: enter a prompt"):
        gc.predict("  ", "base", 4, 0, 1, 50, api_name="/generate")


def test_client_disconnect_stops_generation(server):
    """End to end through the subprocess: an abandoned stream is logged as stopped and the server
    serves the next request. That the row really leaves the batch is test_disconnect.py's job."""
    url = server.url + "/v1/chat/completions"
    story = {"model": "base", "messages": [{"role": "user", "content": "Write a long story about a dragon."}], "temperature": 0}
    start = time.monotonic()
    with httpx.stream("POST", url, json=story | {"max_tokens": 1000, "stream": True}, headers=server.auth, timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= 6:
                break
    r = httpx.post(url, json=story | {"max_tokens": 3}, headers=server.auth, timeout=60)
    elapsed = time.monotonic() - start
    assert r.status_code == 200
    # The story runs to hundreds of tokens (well over 10 s on 2 CPU cores); a few tokens ~2 s.
    assert elapsed < 10, f"the abandoned generation kept running ({elapsed:.1f} s)"
    assert "client disconnected; stream stopped" in server.output()


def test_server_survived_everything(server):
    assert server.proc.poll() is None
    assert httpx.get(server.url + "/health").status_code == 200
