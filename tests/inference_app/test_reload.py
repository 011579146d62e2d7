"""The settings watcher (inference_app/reload.py): which changes it applies live, and that it keeps
watching whatever an apply raises (issue 17)."""
import asyncio
import json

from aitk_nb.running_app import restart_reasons as deploy_restart_reasons
from inference_app.contract import DeployedSettings
from inference_app.reload import restart_reasons, watch_settings
from inference_app.settings import load_settings


def settings(tmp_path, **body):
    path = tmp_path / "settings.json"
    env = {"AITK_SETTINGS": str(path), "AITK_MOUNT_ROOT": str(tmp_path)}
    return load_settings(env, json.dumps({"base_model": "org/base", **body}).encode()), env, path


def test_a_merged_adapter_whose_weights_changed_needs_a_restart_on_both_sides(tmp_path):
    """A merged adapter is part of the base weights: new weights in place (only adapter_versions differs)
    cannot be applied live. The server's check and deploy's reasons follow the one rule."""
    body = {"adapters": {"a": "models/a"}, "merge_adapter": True}
    served, _, _ = settings(tmp_path, **body, adapter_versions={"a": "1111"})
    new, _, _ = settings(tmp_path, **body, adapter_versions={"a": "2222"})
    assert restart_reasons(served, new) == ["merge_adapter (a merged adapter is part of the base weights)"]
    before = DeployedSettings("org/base", {"a": "models/a"}, True, adapter_versions={"a": "1111"})
    after = DeployedSettings("org/base", {"a": "models/a"}, True, adapter_versions={"a": "2222"})
    assert deploy_restart_reasons(before, after, [], "app") == ["merge_adapter (a merged adapter is part of the base weights)"]
    # not merged: new weights are an adapter-only change, applied live
    plain, _, _ = settings(tmp_path, adapters={"a": "models/a"}, adapter_versions={"a": "1111"})
    plain_new, _, _ = settings(tmp_path, adapters={"a": "models/a"}, adapter_versions={"a": "2222"})
    assert restart_reasons(plain, plain_new) == []


class Engine:
    def __init__(self, served):
        self.settings, self.settings_hash, self.apply_error, self.calls = served, served.settings_hash, None, 0

    def variants(self):
        return ["base"]

    def apply_adapters(self, new):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("out of memory (injected)")
        self.settings, self.settings_hash = new, new.settings_hash


def test_the_watcher_keeps_watching_after_an_apply_raises_anything(tmp_path):
    served, env, path = settings(tmp_path, adapters={})
    engine = Engine(served)

    async def run():
        task = asyncio.create_task(watch_settings(engine, env, interval=0.02))
        path.write_text(json.dumps({"base_model": "org/base", "adapters": {"a": "models/a"}}))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if engine.apply_error:
                break
        assert engine.apply_error and "RuntimeError: out of memory" in engine.apply_error["error"]
        assert not task.done()  # still watching
        path.write_text(json.dumps({"base_model": "org/base", "adapters": {"b": "models/b"}}))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if engine.calls == 2:
                break
        task.cancel()
        assert engine.calls == 2 and list(engine.settings.adapters) == ["b"]

    asyncio.run(run())


def test_a_card_never_says_settings_are_served_when_the_server_did_not_say_so():
    from aitk_nb.running_app import Served

    assert Served({"status": "ok"}, 1).line().endswith("not confirmed")  # it said "settings None served"
    assert Served({"settings_hash": "ab12"}, 1).line() == "settings ab12 served"
