"""Many LoRA adapters in one batch: each row's adapter applied by one masked matmul pair per layer.

Why not PEFT's own ``adapter_names`` (issue 12): for every forward PEFT registers a hook on each of
the ~120 LoRA layers of the demo model, and each layer loops in Python over the adapters present,
building index lists and scattering the sub-batch results back. On a CPU that is a quarter to a third
of the throughput of the base model alone. Here, once at load, each PEFT ``lora.Linear`` is replaced
by a ``MultiLoraLinear`` that holds every adapter's weights stacked (``A`` as ``[sum of ranks, in]``,
``B`` as ``[out, sum of ranks]``, the adapter's scaling folded into ``B``), as punica / S-LoRA do.
Before each forward the scheduler calls ``AdapterRows.select`` with the rows' adapters, and every
layer then does at most:

* all rows on the base model: nothing beyond the base ``Linear``;
* all rows on one adapter: ``x @ A_a.T @ B_a.T`` with that adapter's slices (two small matmuls);
* a mix: ``((x @ A.T) * mask) @ B.T`` over the stacked weights, where ``mask[row, column]`` is 1
  when the column belongs to the row's adapter — one masked matmul pair whatever the mix, no
  Python loop over adapters. The extra work is the other adapters' rank columns, about 2% of a
  layer's FLOPs per adapter at rank 16 on the demo model: cheaper on a CPU than gathering a weight
  copy per row, which is what punica's kernels do on a GPU.

The masks depend only on the batch's adapters and on which adapters a layer holds, so they are
built once per step per distinct layout (usually one), not once per layer.

Adapters PEFT implements with extra machinery (DoRA and the other ``lora_variant`` kinds, a bias on
``B``, LoRA on embeddings or convolutions, ``modules_to_save``) are not covered:
``MultiLora.unsupported`` says why, and the engine keeps PEFT's ``adapter_names`` path for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class AdapterRows:
    """Which adapter each row of the next forward uses; read by every ``MultiLoraLinear``."""

    def __init__(self, slots: dict[str, int]):
        self.slots = slots  # adapter name -> slot number (0, 1, ...)
        self.single: int | None = None  # every row on this adapter's slot
        self.active = False  # False: every row on the base model
        self._rows: torch.Tensor | None = None  # the slot of each row, -1 for base
        self._masks: dict[tuple, torch.Tensor] = {}

    def select(self, adapters: Sequence[str]) -> None:
        """Set the rows of the next forward; names not in ``slots`` (PEFT's ``__base__``) are the base model."""
        slots = [self.slots.get(a, -1) for a in adapters]
        distinct = set(slots)
        self.active = distinct != {-1}
        self.single = slots[0] if len(distinct) == 1 and self.active else None
        self._rows = torch.tensor(slots)[:, None, None] if self.active and self.single is None else None
        self._masks.clear()

    def mask(self, layout: tuple, column_slots: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``[rows, 1, columns]``: 1 where a column (a rank of one adapter) belongs to the row's adapter."""
        m = self._masks.get(layout)
        if m is None:
            m = self._masks[layout] = (self._rows.to(column_slots.device) == column_slots).to(dtype)
        return m


class MultiLoraLinear(nn.Module):
    """A base ``Linear`` plus every adapter's LoRA for it, applied per row as ``AdapterRows`` says."""

    def __init__(self, base: nn.Linear, adapters: dict[int, tuple[torch.Tensor, torch.Tensor]], rows: AdapterRows):
        """``adapters``: slot -> (A ``[r, in]``, B ``[out, r]`` with the scaling already applied)."""
        super().__init__()
        self.base_layer = base
        self.rows = rows
        order = sorted(adapters)
        dtype, device = base.weight.dtype, base.weight.device
        self.A = nn.Parameter(torch.cat([adapters[s][0] for s in order]).to(device, dtype), requires_grad=False)
        self.B = nn.Parameter(torch.cat([adapters[s][1] for s in order], dim=1).to(device, dtype), requires_grad=False)
        # The adapters this layer holds and their ranks: layers with the same layout share a step's mask.
        self.layout = tuple((s, adapters[s][0].shape[0]) for s in order)
        # Which slot each stacked column belongs to (for the mixed-batch mask), and each adapter's own
        # contiguous weights for a batch on one adapter (a few MB per adapter on the demo model).
        self.column_slots = torch.cat([torch.full((adapters[s][0].shape[0],), s) for s in order]).to(device)
        self.per_adapter = {s: (a.to(device, dtype).contiguous(), b.to(device, dtype).contiguous()) for s, (a, b) in adapters.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        rows = self.rows
        if not rows.active:
            return out
        if rows.single is not None:
            weights = self.per_adapter.get(rows.single)
            if weights is None:  # this adapter does not touch this layer
                return out
            return out.add_(F.linear(F.linear(x, weights[0]), weights[1]))
        h = F.linear(x, self.A).mul_(rows.mask(self.layout, self.column_slots, x.dtype))
        return out.add_(F.linear(h, self.B))


class MultiLora:
    """The PEFT model's LoRA layers replaced by ``MultiLoraLinear``; ``model`` is the plain transformers model.

    The scheduler calls it with the adapter of each row before every forward; it returns the extra
    keyword arguments of that forward (none: the rows are set in ``AdapterRows``).
    """

    def __init__(self, model: nn.Module, rows: AdapterRows):
        self.model = model
        self.rows = rows

    def __call__(self, adapters: Sequence[str]) -> dict:
        self.rows.select(adapters)
        return {}

    @staticmethod
    def unsupported(peft_model) -> str | None:
        """Why this PEFT model's adapters cannot be stacked; ``None`` when they can."""
        from peft.tuners.lora import Linear as LoraLinear
        from peft.tuners.tuners_utils import BaseTunerLayer

        for name, module in peft_model.named_modules():
            kind = type(module).__name__
            if isinstance(module, BaseTunerLayer) and type(module) is not LoraLinear:
                return f"{name}: LoRA on a layer of kind {kind} (only LoRA on Linear layers is stacked)"
            if kind in ("ModulesToSaveWrapper", "TrainableTokensWrapper"):
                return f"{name} is a {kind} (modules_to_save / trainable tokens)"
            if type(module) is LoraLinear:
                if type(module.base_layer) is not nn.Linear:
                    return f"{name} wraps a {type(module.base_layer).__name__}, not a Linear"
                variants, biases = getattr(module, "lora_variant", None), getattr(module, "lora_bias", None)
                if variants is None or biases is None:  # a PEFT whose LoRA layer this code does not know
                    return f"{name}: this PEFT version's LoRA layer has no lora_variant / lora_bias to check"
                for adapter in module.lora_A:
                    if variants.get(adapter) is not None or biases.get(adapter):
                        return f"adapter {adapter!r} at {name} uses a LoRA variant (DoRA ...) or a bias on B"
        return None

    @classmethod
    def wrap(cls, peft_model) -> MultiLora:
        """Replace every LoRA layer of a supported PEFT model (see ``unsupported``); the PEFT wrapper is dropped."""
        from peft.tuners.lora import Linear as LoraLinear

        rows = AdapterRows({name: slot for slot, name in enumerate(peft_model.peft_config)})
        model = peft_model.get_base_model()
        for path, module in list(model.named_modules()):
            if type(module) is not LoraLinear:
                continue
            stacked = {
                rows.slots[a]: (module.lora_A[a].weight.detach(), module.lora_B[a].weight.detach() * module.scaling[a])
                for a in module.lora_A if a in rows.slots
            }
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent), child, MultiLoraLinear(module.base_layer, stacked, rows))
        return cls(model, rows)


def peft_adapter_names(adapters: Sequence[str]) -> dict:
    """The fallback for adapters ``MultiLora`` does not stack: PEFT's own mixed-batch argument."""
    return {"adapter_names": list(adapters)}


__all__ = ["AdapterRows", "MultiLora", "MultiLoraLinear", "peft_adapter_names"]
