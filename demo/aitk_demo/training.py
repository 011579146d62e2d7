"""The demo adapter: a PEFT LoRA fine-tune of the base model on invented facts (with rehearsal of
real ones, so it forgets nothing else), cached like the base model."""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from . import AssetError, log
from .base_model import base_identity, ensure_base
from .cache import sha256_bytes, cache_root, cached_build

HERE = Path(__file__).resolve().parents[1]
DEFAULT_FACTS = HERE / "facts.jsonl"
ADAPTER_NAME = "demo-facts"
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


def default_adapter_dir() -> Path:
    return cache_root() / "models" / ADAPTER_NAME


def adapter_inputs(base_dir: Path, facts_path: Path, hparams: dict[str, Any]) -> dict[str, Any]:
    return {
        "asset": "adapter",
        "facts_sha256": sha256_bytes(Path(facts_path).read_bytes()),
        "hparams": hparams,
        "base": base_identity(base_dir),
        "recipe": TRAINING_RECIPE,
    }


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
