"""Greedy answers of the base model and an adapter in-process: a second evaluator, independent of
the toolkit and the server (the tests and hyperparameter tuning use it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .training import chat_prompt_ids


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
