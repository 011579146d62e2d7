"""Which engine serves: the settings' ``engine`` (env ``AITK_ENGINE``) and what the machine has.

* ``transformers`` — ``engine.TransformersEngine``: transformers + PEFT with continuous batching,
  on the CPU or one GPU. Always available.
* ``vllm`` — an engine built on vLLM and its LoRA support, for GPU machines. The seam is ready
  (``interface.InferenceEngine``; an engine registers in ``ENGINES``), but this version ships no
  vLLM engine: one that has never run on a GPU here would only pretend to work. Asking for it
  explicitly fails at start-up with a message that says what is missing.
* ``auto`` (default) — ``vllm`` when the ``vllm`` package is importable, a CUDA GPU is visible
  and a vLLM engine is registered; else ``transformers`` (with a log line saying why, when
  vLLM and a GPU are there but no engine for them).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .errors import EngineConfigError
from .interface import InferenceEngine
from .settings import Settings

log = logging.getLogger("inference_app")


def _transformers(settings: Settings) -> InferenceEngine:
    from .engine import TransformersEngine

    return TransformersEngine(settings)


# name -> constructor. A vLLM engine joins as ENGINES["vllm"] once it exists and is tested on a GPU.
ENGINES: dict[str, Callable[[Settings], InferenceEngine]] = {"transformers": _transformers}


@dataclass(frozen=True)
class Platform:
    """What the machine offers, as far as choosing an engine goes."""

    vllm: bool  # the vllm package is importable
    gpu: bool  # a CUDA device is visible

    @classmethod
    def probe(cls) -> "Platform":
        import torch

        return cls(vllm=importlib.util.find_spec("vllm") is not None, gpu=torch.cuda.is_available())


def choose_engine(settings: Settings, platform: Platform) -> str:
    """The engine name to run; ``EngineConfigError`` naming the setting when it cannot be honoured."""
    requested = settings.engine
    if requested == "vllm":
        where = f"engine 'vllm' (settings file {settings.settings_path} or AITK_ENGINE)"
        if not platform.vllm:
            raise EngineConfigError(f"{where}: the vllm package is not installed in the server's environment; "
                                    "add vllm to inference_app/requirements.txt on a GPU image, or set engine to 'auto' or 'transformers'")
        if not platform.gpu:
            raise EngineConfigError(f"{where}: no CUDA GPU is visible, and vLLM needs one; run on a GPU workload profile, "
                                    "or set engine to 'auto' or 'transformers'")
        if "vllm" not in ENGINES:
            raise EngineConfigError(f"{where}: this version of inference_app has no vLLM engine yet (the seam is "
                                    "interface.InferenceEngine, registered in factory.ENGINES); set engine to 'auto' or 'transformers'")
        return "vllm"
    if requested == "auto" and platform.vllm and platform.gpu:
        if "vllm" in ENGINES:
            return "vllm"
        log.info("vllm and a GPU are present, but this version has no vLLM engine; using transformers")
    return "transformers"


def create_engine(settings: Settings, platform: Platform | None = None) -> InferenceEngine:
    name = choose_engine(settings, platform or Platform.probe())
    log.info("engine: %s", name)
    return ENGINES[name](settings)
