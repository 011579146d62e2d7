"""Pure units: settings resolution, stop sequences, error field paths, credentials parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from inference_app.api import _field_path
from inference_app.auth import _presented_key
from inference_app.settings import PACKAGE_PARENT, SettingsError, load_settings
from inference_app.streaming import StopMatcher


def test_settings_defaults_when_file_missing(tmp_path):
    s = load_settings({"AITK_SETTINGS": str(tmp_path / "nope.json"), "AITK_MOUNT_ROOT": str(tmp_path)})
    assert s.base_model == "model-cache/SmolLM2-135M-Instruct"  # not a folder: treated as a hub id
    assert not s.base_model_is_local
    assert s.adapters == {} and s.max_new_tokens == 256
    assert (s.host, s.port, s.api_key) == ("0.0.0.0", 7860, None)


def test_settings_default_path_is_next_to_package():
    s = load_settings({"AITK_MOUNT_ROOT": "/nonexistent-mount"})
    assert s.settings_path == PACKAGE_PARENT / "settings.json"


def test_settings_resolves_paths_against_mount_root_and_env_overrides(tmp_path):
    (tmp_path / "model-cache" / "Base-1").mkdir(parents=True)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({
        "base_model": "model-cache/Base-1", "adapters": {"a": "models/a", "b": "/abs/b"},
        "max_new_tokens": 32, "some_future_knob": True,
    }))
    env = {"AITK_SETTINGS": str(path), "AITK_MOUNT_ROOT": str(tmp_path), "PORT": "9001", "HOST": "127.0.0.1", "AITK_API_KEY": "sekrit-value"}
    s = load_settings(env)
    assert s.base_model == str(tmp_path / "model-cache" / "Base-1") and s.base_model_is_local
    assert s.base_model_id == "Base-1"
    assert s.adapters == {"a": tmp_path / "models" / "a", "b": Path("/abs/b")}
    assert (s.port, s.host, s.max_new_tokens) == (9001, "127.0.0.1", 32)
    assert s.api_key.get_secret_value() == "sekrit-value" and "sekrit" not in repr(s)
    assert load_settings({**env, "AITK_BASE_MODEL": "org/hub-model"}).base_model_id == "org/hub-model"


def test_settings_bad_file_names_the_field(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"max_new_tokens": 0}))
    with pytest.raises(SettingsError, match="max_new_tokens"):
        load_settings({"AITK_SETTINGS": str(path)})
    path.write_text("{not json")
    with pytest.raises(SettingsError, match="not valid JSON"):
        load_settings({"AITK_SETTINGS": str(path)})


def test_stop_matcher_cuts_before_stop_across_deltas():
    m = StopMatcher(["END"])
    out = m.feed("abc E") + m.feed("N") + m.feed("D tail")
    assert out == "abc " and m.matched
    assert m.feed("more") == "" and m.flush() == ""


def test_stop_matcher_releases_held_back_tail():
    m = StopMatcher(["xyz"])
    assert m.feed("ab x") == "ab "  # "x" might start "xyz"
    assert m.feed("y!") == "xy!"  # it did not
    assert m.feed(" xy") == " "
    assert m.flush() == "xy" and not m.matched
    assert StopMatcher([]).feed("as is") == "as is"


def test_field_path():
    assert _field_path(("body", "messages", 0, "content")) == "messages[0].content"
    assert _field_path(("body", "temperature")) == "temperature"
    assert _field_path(("body",)) is None


def test_presented_key_bearer_and_basic():
    assert _presented_key("Bearer abc") == "abc"
    basic = base64.b64encode(b"anyone:s3cret:with:colons").decode()
    assert _presented_key(f"Basic {basic}") == "s3cret:with:colons"
    assert _presented_key("Basic !!notbase64") is None
    assert _presented_key("Token abc") is None
