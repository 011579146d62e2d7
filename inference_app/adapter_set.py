"""The served model for a set of adapters, built beside the running one (issue 17: adapters live).

A running server changes its adapters without a restart: the new set is built on a *shell* of the
base model (a copy of its module tree that shares every weight tensor, so it costs no weight memory),
each new or changed adapter is checked and loaded with PEFT alone on a shell of its own, its weights
prepared for the stacked LoRA (``lora.prepare_adapter``: A, scaled B, and its merged, packed copies of
each layer's weight), and the prepared weights of every unchanged adapter are stacked as they are
(``lora.MultiLora.stack``): a change costs what changed. The scheduler swaps the new model in at a
step boundary (``BatchScheduler.replace_model``). The base weights are never reloaded; the packed
copies of the base linear layers (``packed.py``) are reused.

Each adapter is checked before it can go live (``load_adapter``): its ``adapter_config.json`` is a
readable LoRA config, the base model it records is the one served, its rank is positive, its target
modules exist in the base model and its weights load and fit them. A failure names the adapter, what
is wrong and how to fix it; nothing of the running set is touched.

Adapters are held under internal names (``a0``, ``a1`` ...), one per loaded version: a changed adapter
gets a new internal name, so a request that started on the old weights finishes on them (the swap
waits for it) while new requests use the new ones.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from .errors import AdapterConfigError

log = logging.getLogger("inference_app")


@dataclass(frozen=True)
class LoadedAdapter:
    """One adapter version, checked and read into memory (its PEFT config and state dict)."""

    name: str  # the public name (the variant)
    path: Path
    version: tuple  # what identifies this version: (path, the deploy's digest of its files or their stat)
    config: object  # peft.LoraConfig
    state_dict: dict
    # "trained on base model X, and this server serves Y" when the names differ: a folder may be renamed
    # (`--model models/base`), so the weights decide (`_peft_model`); said with the refusal when they do not fit
    other_base: str | None = None


def adapter_version(path: Path, digest: str | None) -> tuple:
    """The deploy's digest of the folder when settings.json carries one, else the files' sizes and times."""
    if digest:
        return (str(path), digest)
    try:
        stats = tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()))
    except OSError:
        stats = ()
    return (str(path), stats)


def same_base(recorded: str | None, served_id: str, served: str) -> bool:
    """Whether an adapter's recorded base model is the served one. Fine-tuning records a hub id or a
    path (in its own container or machine), and the served model is a share folder named after it:
    the last path segment is compared. Nothing recorded is taken as a match. Names are a hint, not
    proof (a copy of the model may sit in a folder of any name): whether the weights fit decides."""
    if not recorded:
        return True
    tail = recorded.rstrip("/").rsplit("/", 1)[-1].lower()
    return tail in {served_id.lower(), served.rstrip("/").rsplit("/", 1)[-1].lower()}


def load_adapter(name: str, path: Path, version: tuple, *, served_id: str, served: str) -> LoadedAdapter:
    """Read and check one adapter folder; ``AdapterConfigError`` naming the adapter and the fix."""
    from peft import PeftConfig
    from peft.utils import load_peft_weights
    from safetensors import SafetensorError

    where = f"adapter {name!r} at {path}"
    config_file = path / "adapter_config.json"
    if not path.is_dir():
        raise AdapterConfigError(f"{where}: folder does not exist; deploy the adapter folder")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
        config = PeftConfig.from_pretrained(str(path))
    except FileNotFoundError:
        raise AdapterConfigError(f"{where}: no adapter_config.json (not a PEFT adapter); deploy the folder "
                                 "`save_pretrained` of a PEFT model writes") from None
    except (ValueError, TypeError, OSError) as e:  # JSON errors are ValueErrors
        raise AdapterConfigError(f"{where}: adapter_config.json cannot be read ({type(e).__name__}: {e}); "
                                 "deploy the folder `save_pretrained` of a PEFT model writes") from None
    if str(getattr(config, "peft_type", "")) not in ("LORA", "PeftType.LORA"):
        raise AdapterConfigError(f"{where}: a {config.peft_type} adapter; this server serves LoRA adapters only")
    recorded = raw.get("base_model_name_or_path")
    other_base = None
    if not same_base(recorded, served_id, served):
        other_base = f"trained on base model {recorded!r}, and this server serves {served_id!r}"
    ranks = [config.r, *dict(config.rank_pattern or {}).values()]
    if not all(isinstance(r, int) and r >= 1 for r in ranks):
        raise AdapterConfigError(f"{where}: rank r must be a positive integer, got {ranks}; fix adapter_config.json")
    try:
        state_dict = load_peft_weights(str(path), device="cpu")
    except (FileNotFoundError, ValueError, OSError, SafetensorError) as e:  # SafetensorError: a damaged file
        raise AdapterConfigError(f"{where}: its weights cannot be read (adapter_model.safetensors missing or "
                                 f"damaged: {type(e).__name__}: {e}); deploy the adapter folder again") from None
    return LoadedAdapter(name, path, version, config, state_dict, other_base)


def shell(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s module tree that shares every parameter and buffer (no weight memory)."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def _peft_model(model: nn.Module, adapters: dict[str, LoadedAdapter]):
    """``adapters`` (internal name -> adapter) loaded by PEFT onto ``model`` (a shell of the base model);
    ``AdapterConfigError`` naming the adapter that does not fit."""
    from peft import PeftModel
    from peft.utils import set_peft_model_state_dict

    peft_model = None
    for internal, adapter in adapters.items():
        try:
            if peft_model is None:
                peft_model = PeftModel(model, adapter.config, adapter_name=internal, low_cpu_mem_usage=True)
            else:
                peft_model.add_adapter(internal, adapter.config, low_cpu_mem_usage=True)
            result = set_peft_model_state_dict(peft_model, adapter.state_dict, adapter_name=internal,
                                               low_cpu_mem_usage=True)
        except (ValueError, RuntimeError, KeyError, TypeError) as e:  # no such target module, shapes that differ
            if adapter.other_base:
                raise AdapterConfigError(
                    f"adapter {adapter.name!r} at {adapter.path}: {adapter.other_base}, and its weights do not fit it "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:300]}); deploy an adapter trained from the served "
                    "model, or deploy its base model with --model") from None
            raise AdapterConfigError(
                f"adapter {adapter.name!r} at {adapter.path} does not fit the served base model "
                f"({type(e).__name__}: {str(e).splitlines()[0][:300]}); was it trained from this base model?") from None
        missing = [k for k in result.missing_keys if f".{internal}." in k and "lora_" in k]
        if result.unexpected_keys or missing:
            keys = (result.unexpected_keys or missing)[:2]
            raise AdapterConfigError(
                f"adapter {adapter.name!r} at {adapter.path}: its weights do not match its config or the served "
                f"base model ({'unexpected' if result.unexpected_keys else 'missing'} {', '.join(keys)}); "
                "deploy the folder `save_pretrained` wrote, unchanged")
        if adapter.other_base:
            log.warning("adapter %r at %s: %s; its weights fit the served model, so it is served", adapter.name,
                        adapter.path, adapter.other_base)
    return peft_model


def prepare(skeleton: nn.Module, internal: str, adapter: LoadedAdapter):
    """One adapter's stacked-LoRA weights, alone (``lora.prepare_adapter``: layer path -> ``PreparedLayer``), or
    the reason ``MultiLora`` cannot stack it (a str). PEFT loads and checks only this adapter, on a shell of
    the base model dropped afterwards."""
    from .lora import MultiLora, prepare_adapter

    peft_model = _peft_model(shell(skeleton), {internal: adapter})
    if (why := MultiLora.unsupported(peft_model)) is not None:
        return why
    return prepare_adapter(peft_model, internal)


def build(skeleton: nn.Module, adapters: dict[str, LoadedAdapter], packed: dict[int, nn.Module],
          prepared: dict | None = None):
    """The model serving ``skeleton`` (the plain base model) plus ``adapters`` (internal name -> adapter),
    and the scheduler's ``row_adapters`` for it (None: no adapters). ``packed`` maps id(weight) to the
    base layer's packed twin, reused across builds (grown when a build packs more).

    ``prepared`` (internal name -> ``prepare``'s result) is the cache of the adapters' prepared weights
    kept across builds (issue 17): an adapter already in it is stacked from it as it is (the same tensors),
    only the others are prepared, and the entries of adapters not in ``adapters`` are dropped (their memory
    returns once the old model is let go). On ``AdapterConfigError`` it is left as it was."""
    from .lora import MultiLora, peft_adapter_names
    from .packed import pack_linears

    prepared = {} if prepared is None else prepared
    model = shell(skeleton)
    if adapters:
        fresh = {internal: prepare(skeleton, internal, adapter)
                 for internal, adapter in adapters.items() if internal not in prepared}
        for internal in [i for i in prepared if i not in adapters]:
            del prepared[internal]
        prepared.update(fresh)
        why = next((f"adapter {adapters[i].name!r}: {p}" for i, p in prepared.items() if isinstance(p, str)), None)
        if why is None:
            row_adapters = MultiLora.stack(model, {internal: prepared[internal] for internal in adapters})
        else:
            log.info("adapters applied through PEFT's adapter_names (slower): %s", why)
            peft_model = _peft_model(model, adapters)
            peft_model.eval()
            return peft_model, peft_adapter_names
    else:
        prepared.clear()
        row_adapters = None
    model.eval()
    _reuse_packed(model, packed)
    pack_linears(model)
    for module in model.modules():
        if type(module).__name__ == "PackedLinear":
            packed.setdefault(id(module.weight), module)
    return model, row_adapters


def _reuse_packed(model: nn.Module, packed: dict[int, nn.Module]) -> None:
    """Put back the packed twin of every plain linear layer that already has one (packing costs time and a
    second copy of the weight)."""
    for path, module in list(model.named_modules()):
        if type(module) is nn.Linear and (twin := packed.get(id(module.weight))) is not None:
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, twin)


__all__ = ["LoadedAdapter", "adapter_version", "build", "load_adapter", "prepare", "same_base", "shell"]
