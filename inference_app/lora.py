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

On a CPU with oneDNN, a forward of 3 or more rows takes the packed weights of ``PackedLora``
instead (issue 17): a batch on one adapter multiplies by that adapter merged into the base weight
(the base model's single product), a mix by ``[W; A]`` packed together, then the masked ``B``.

Adapters PEFT implements with extra machinery (DoRA and the other ``lora_variant`` kinds, a bias on
``B``, LoRA on embeddings or convolutions, ``modules_to_save``) are not covered:
``MultiLora.unsupported`` says why, and the engine keeps PEFT's ``adapter_names`` path for them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .packed import can_pack, pack_weight, packed_linear, use_packed


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

    def __init__(self, base: nn.Linear, adapters: dict[int, tuple[torch.Tensor, torch.Tensor] | PreparedLayer],
                 rows: AdapterRows):
        """``adapters``: slot -> (A ``[r, in]``, B ``[out, r]`` with the scaling already applied), or the
        ``PreparedLayer`` ``prepare_layer`` made of them (its tensors, merged copies included, are reused as
        they are: a live change prepares only the adapters it adds; issue 17)."""
        super().__init__()
        self.base_layer = base
        self.rows = rows
        prepared = {s: p if isinstance(p, PreparedLayer) else prepare_layer(base, *p) for s, p in adapters.items()}
        order = sorted(prepared)
        self.A = nn.Parameter(torch.cat([prepared[s].a for s in order]), requires_grad=False)
        self.B = nn.Parameter(torch.cat([prepared[s].b for s in order], dim=1), requires_grad=False)
        # The adapters this layer holds and their ranks: layers with the same layout share a step's mask.
        self.layout = tuple((s, prepared[s].a.shape[0]) for s in order)
        # Which slot each stacked column belongs to (for the mixed-batch mask), and each adapter's own
        # contiguous weights for a batch on one adapter (a few MB per adapter on the demo model).
        self.column_slots = torch.cat([torch.full((prepared[s].a.shape[0],), s) for s in order]).to(base.weight.device)
        self.per_adapter = {s: (p.a, p.b) for s, p in prepared.items()}
        self.prepared = prepared
        self.in_features = base.weight.shape[1]
        self.packed = PackedLora(base.weight, base.bias, self.A, prepared) if can_pack(base.weight) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.rows
        if not rows.active:
            return self.base_layer(x)
        packed = self.packed if self.packed is not None and use_packed(x, self.in_features) else None
        if rows.single is not None:
            if rows.single not in self.per_adapter:  # this adapter does not touch this layer
                return self.base_layer(x)
            if packed is not None:  # the adapter merged into the base weight: the base model's cost
                return packed_linear(x, packed.merged[rows.single], packed.bias)
            if self.packed is not None:  # the same, for one or two rows
                return F.linear(x, self.packed.merged_plain[rows.single], self.packed.bias)
            a, b = self.per_adapter[rows.single]
            return self.base_layer(x).add_(F.linear(F.linear(x, a), b))
        mask = rows.mask(self.layout, self.column_slots, x.dtype)
        if packed is not None:  # base output and every adapter's A projection from one packed product
            y = packed_linear(x, packed.fused, packed.fused_bias)
            return F.linear(y[..., packed.out_features:] * mask, self.B).add_(y[..., :packed.out_features])
        h = F.linear(x, self.A).mul_(mask)
        return self.base_layer(x).add_(F.linear(h, self.B))


class PackedLora:
    """One layer's adapters merged into its weight, and packed for oneDNN (``packed.py``) for 3 or more rows.

    Measured on the decode step of the demo model at batch 8 (issue 17): every extra small operation
    per LoRA layer costs far more than its arithmetic on a shared 2-core CPU, as each one starts the
    OpenMP threads again, and a LoRA layer's two small products (``x @ A.T`` then ``@ B.T``) made
    adapter rows a third slower than base rows. So:

    * ``merged[slot]``: ``W + B @ A`` of one adapter (scaling folded in), for a forward whose rows all
      use that adapter: the same single product as the base model. Kept packed, and as is
      (``merged_plain``) for one or two rows, where MKL's own path is the faster (``packed.py``): two
      copies of the layer's weight per adapter (about 2 x 106 MB per adapter on q, k, v, o of the demo
      model).
    * ``fused``: ``[W; A of every adapter]``, for a mixed forward: one product gives the base output and
      every adapter's rank columns; only the masked ``@ B.T`` remains.

    The base weight itself stays as it is (a mix never changes a base row's product beyond float
    rounding, and a base-only forward never reads these). The merged copies come from each adapter's
    ``PreparedLayer``, made once when the adapter is loaded (one product and one reorder per layer); a
    change of the adapter set rebuilds only ``fused`` (one concatenation and one reorder per layer,
    whatever the number of adapters).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, A: torch.Tensor,
                 prepared: dict[int, PreparedLayer]):
        weight = weight.detach()
        self.out_features = weight.shape[0]
        self.bias = bias
        self.fused = pack_weight(torch.cat([weight, A.detach()]))
        self.fused_bias = None if bias is None else torch.cat([bias.detach(), bias.new_zeros(A.shape[0])])
        # each adapter's merged copies were made once, when it was prepared (``prepare_layer``)
        self.merged_plain = {s: p.merged_plain for s, p in prepared.items()}
        self.merged = {s: p.merged for s, p in prepared.items()}


class PreparedLayer:
    """One adapter's weights for one LoRA layer, ready to stack: ``a`` ``[r, in]``, ``b`` ``[out, r]`` with the
    scaling folded in, and (float32 on a CPU with oneDNN) ``W + b @ a`` as is and packed for ``PackedLora``.

    Made once per adapter version and kept while it is served: a live change stacks the prepared layers of
    the unchanged adapters as they are (the same tensors) and prepares only the new or changed one (issue 17).
    """

    __slots__ = ("a", "b", "merged_plain", "merged")

    def __init__(self, a: torch.Tensor, b: torch.Tensor, merged_plain: torch.Tensor | None, merged: torch.Tensor | None):
        self.a, self.b, self.merged_plain, self.merged = a, b, merged_plain, merged


def prepare_layer(base: nn.Linear, a: torch.Tensor, b: torch.Tensor) -> PreparedLayer:
    """``PreparedLayer`` of one adapter's ``a``, ``b`` (scaled) for the ``Linear`` ``base``: a few large torch ops
    (one product, one reorder), which release the GIL while they run."""
    dtype, device = base.weight.dtype, base.weight.device
    a, b = a.detach().to(device, dtype).contiguous(), b.detach().to(device, dtype).contiguous()
    if not can_pack(base.weight):
        return PreparedLayer(a, b, None, None)
    merged_plain = torch.addmm(base.weight.detach(), b, a)
    return PreparedLayer(a, b, merged_plain, pack_weight(merged_plain))


def prepare_adapter(peft_model, adapter: str, pause=lambda: time.sleep(0)) -> dict[str, PreparedLayer]:
    """Layer path (in the plain base model) -> ``PreparedLayer`` of ``adapter`` on a PEFT model that holds it,
    for the layers it touches. ``pause`` runs between layers (by default it yields the GIL, so a decoding
    thread running beside a live change is not starved by it)."""
    from peft.tuners.lora import Linear as LoraLinear

    prepared = {}
    for path, module in peft_model.get_base_model().named_modules():
        if type(module) is not LoraLinear or adapter not in module.lora_A:
            continue
        prepared[path] = prepare_layer(module.base_layer, module.lora_A[adapter].weight,
                                       module.lora_B[adapter].weight * module.scaling[adapter])
        pause()
    return prepared


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
        names = list(peft_model.peft_config)
        prepared = {name: prepare_adapter(peft_model, name) for name in names}
        return cls.stack(peft_model.get_base_model(), {name: prepared[name] for name in names})

    @classmethod
    def stack(cls, model: nn.Module, adapters: dict[str, dict[str, PreparedLayer]], pause=lambda: time.sleep(0)) -> MultiLora:
        """``model`` (a plain base model, or one whose LoRA layers PEFT injected) with the ``Linear`` (or the
        ``lora.Linear``'s base layer) at each layer path of ``adapters`` (name -> ``prepare_adapter``'s result)
        replaced by a ``MultiLoraLinear`` stacking those prepared layers as they are. Slots follow the order of
        ``adapters``."""
        rows = AdapterRows({name: slot for slot, name in enumerate(adapters)})
        paths = {}
        for name, layers in adapters.items():
            for path, layer in layers.items():
                paths.setdefault(path, {})[rows.slots[name]] = layer
        for path, stacked in paths.items():
            module = model.get_submodule(path)
            base = module if type(module) is nn.Linear else module.base_layer
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent), child, MultiLoraLinear(base, stacked, rows))
            pause()
        return cls(model, rows)


def peft_adapter_names(adapters: Sequence[str]) -> dict:
    """The fallback for adapters ``MultiLora`` does not stack: PEFT's own mixed-batch argument."""
    return {"adapter_names": list(adapters)}


__all__ = ["AdapterRows", "MultiLora", "MultiLoraLinear", "PackedLora", "PreparedLayer", "peft_adapter_names",
           "prepare_adapter", "prepare_layer"]
