"""The engine seam (issue 5): the routes work with any ``InferenceEngine``, the factory picks the
engine from settings and machine, and asking for vLLM where it cannot run fails clearly."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from server_helpers import run_server_to_exit, write_settings

from inference_app import factory
from inference_app.api import create_app
from inference_app.engine import TransformersEngine
from inference_app.errors import EngineConfigError, NotReadyError
from inference_app.factory import Platform, choose_engine, create_engine
from inference_app.interface import AdapterRegistry, GenerationRequest, GenerationStream, InferenceEngine
from inference_app.settings import SettingsError, load_settings


def settings_with(tmp_path, **file):
    path = write_settings(tmp_path, {"base_model": "org/model", **file})
    return load_settings({"AITK_SETTINGS": str(path), "AITK_MOUNT_ROOT": str(tmp_path)})


# ----- a second engine, behind the same interface ---------------------------------------------------
@dataclass
class EchoStream:
    words: list[str]
    prompt_tokens: int
    max_new_tokens: int
    completion_tokens: int = 0
    finish_reason: str | None = None
    note: str | None = None
    closed: bool = False

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        if self.completion_tokens >= min(len(self.words), self.max_new_tokens):
            self.finish_reason = "length" if self.completion_tokens == self.max_new_tokens else "stop"
            raise StopAsyncIteration
        self.completion_tokens += 1
        return self.words[self.completion_tokens - 1] + " "

    async def aclose(self) -> None:
        self.closed = True


class EchoEngine:
    """Echoes the last message back word by word: what a vLLM engine would plug in as."""

    def __init__(self, settings):
        self.settings = settings
        self.registry = AdapterRegistry(settings)
        self.load_seconds = None
        self.context_window = 100
        self.ready = False
        self.streams: list[EchoStream] = []

    def variants(self):
        return self.registry.variants()

    def resolve(self, name):
        return self.registry.resolve(name)

    async def load_async(self):
        self.ready, self.load_seconds = True, 0.0

    def health(self):
        return {"status": "ok", "model": "echo", **self.registry.health_fields()} if self.ready else {"status": "loading"}

    async def generate(self, request: GenerationRequest) -> GenerationStream:
        if not self.ready:
            raise NotReadyError("loading")
        self.resolve(request.variant)
        words = request.messages[-1]["content"].split()
        self.streams.append(EchoStream(words, len(words), request.sampling.max_new_tokens))
        return self.streams[-1]

    def shutdown(self):
        pass


def test_the_routes_serve_any_engine_that_implements_the_interface(tmp_path):
    engine = EchoEngine(settings_with(tmp_path))
    assert isinstance(engine, InferenceEngine)
    assert isinstance(TransformersEngine(engine.settings), InferenceEngine)
    with TestClient(create_app(engine, background_load=engine.load_async, with_ui=False)) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "echo", "adapters": [], "variants": ["base"]}
        assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["base"]
        assert client.get("/v1/models").json()["data"][0]["max_model_len"] == 100
        msg = {"model": "base", "messages": [{"role": "user", "content": "one two three four"}], "max_tokens": 3}
        r = client.post("/v1/chat/completions", json=msg)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["choices"][0]["message"]["content"] == "one two three "
        assert body["choices"][0]["finish_reason"] == "length"
        assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
        with client.stream("POST", "/v1/chat/completions", json=msg | {"stream": True, "max_tokens": 10}) as s:
            events = [line for line in s.iter_lines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(e[6:]) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "one two three four "
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert all(s.closed for s in engine.streams)  # the routes always close what they opened
        r = client.post("/v1/chat/completions", json=msg | {"model": "nope"})
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"


# ----- the factory --------------------------------------------------------------------------------
NOTHING, VLLM_NO_GPU, GPU_NO_VLLM, BOTH = Platform(False, False), Platform(True, False), Platform(False, True), Platform(True, True)


@pytest.mark.parametrize("platform", [NOTHING, VLLM_NO_GPU, GPU_NO_VLLM, BOTH])
def test_transformers_when_asked_or_when_no_vllm_engine_exists(tmp_path, platform):
    assert choose_engine(settings_with(tmp_path, engine="transformers"), platform) == "transformers"
    assert choose_engine(settings_with(tmp_path), platform) == "transformers"  # auto, no vLLM engine registered


def test_auto_picks_vllm_only_with_package_gpu_and_engine(tmp_path, monkeypatch, caplog):
    auto = settings_with(tmp_path)
    with caplog.at_level(logging.INFO, logger="inference_app"):
        assert choose_engine(auto, BOTH) == "transformers"
    assert "no vLLM engine" in caplog.text
    monkeypatch.setitem(factory.ENGINES, "vllm", EchoEngine)
    assert choose_engine(auto, BOTH) == "vllm"
    assert isinstance(create_engine(auto, BOTH), EchoEngine)
    for platform in (NOTHING, VLLM_NO_GPU, GPU_NO_VLLM):
        assert choose_engine(auto, platform) == "transformers"
        assert isinstance(create_engine(auto, platform), TransformersEngine)


@pytest.mark.parametrize(
    ("platform", "registered", "says"),
    [
        (NOTHING, False, "vllm package is not installed"),
        (GPU_NO_VLLM, True, "vllm package is not installed"),
        (VLLM_NO_GPU, True, "no CUDA GPU is visible"),
        (BOTH, False, "has no vLLM engine yet"),
    ],
)
def test_asking_for_vllm_where_it_cannot_run_names_the_setting(tmp_path, monkeypatch, platform, registered, says):
    if registered:
        monkeypatch.setitem(factory.ENGINES, "vllm", EchoEngine)
    with pytest.raises(EngineConfigError, match=says) as e:
        choose_engine(settings_with(tmp_path, engine="vllm"), platform)
    assert "engine 'vllm'" in str(e.value) and "'transformers'" in str(e.value)


def test_engine_settings_and_env(tmp_path):
    s = settings_with(tmp_path)
    assert (s.engine, s.merge_adapter, s.max_model_len) == ("auto", False, None)
    env = {"AITK_SETTINGS": str(s.settings_path), "AITK_MOUNT_ROOT": str(tmp_path)}
    assert load_settings(env | {"AITK_ENGINE": "vllm"}).engine == "vllm"
    with pytest.raises(SettingsError, match="AITK_ENGINE"):
        load_settings(env | {"AITK_ENGINE": "tensorrt"})
    with pytest.raises(SettingsError, match="AITK_MERGE_ADAPTER"):
        load_settings(env | {"AITK_MERGE_ADAPTER": "maybe"})
    with pytest.raises(SettingsError, match="field 'engine'"):
        settings_with(tmp_path, engine="tensorrt")


def test_merge_adapter_needs_exactly_one_adapter(tmp_path):
    with pytest.raises(SettingsError, match="'merge_adapter': true needs exactly one adapter.*2 are configured"):
        settings_with(tmp_path, merge_adapter=True, adapters={"a": "models/a", "b": "models/b"})
    with pytest.raises(SettingsError, match="0 are configured"):
        settings_with(tmp_path, merge_adapter=True)
    one = settings_with(tmp_path, merge_adapter=True, adapters={"a": "models/a"})
    registry = AdapterRegistry(one)
    assert registry.variants() == ["a"] and registry.merged == "a"
    assert registry.health_fields() == {"adapters": ["a"], "variants": ["a"], "merged_adapter": "a"}


@pytest.mark.timeout(90)
def test_server_asked_for_vllm_here_exits_2_with_one_clear_line(tmp_path):
    write_settings(tmp_path, {"base_model": "org/model"})
    code, out = run_server_to_exit(tmp_path, AITK_ENGINE="vllm")
    assert code == 2, out
    assert "cannot start: engine 'vllm'" in out and "Traceback" not in out
