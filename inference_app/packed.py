"""Linear layers that also keep their weight packed once for the CPU's matrix kernels (oneDNN).

Decoding multiplies a few rows (one token per request) by every weight of the model. For one row
MKL's float32 path streams the weight once (a matrix-vector product); for a handful of rows it
switches to a general product that repacks the whole weight on every call, so a batch of 8 cost
about twice a single row per layer and 3-4x on the 49152 x 576 output projection (issue 12;
medians of cold-weight products on the 2-core Xeon this runs on, microseconds):

    weight           rows:  1  ->   8, as is    8, packed once
    576 -> 1536           375  ->  580            403
    1536 -> 576           289  ->  398            310
    576 -> 49152         5546  ->  20082          6666

``torch.ops.mkldnn._reorder_linear_weight`` lays a weight out once in oneDNN's blocked format and
``_linear_pointwise`` multiplies by it; this is what PyTorch's own compiler does to linear layers
when it freezes a model for CPU inference. For one or two rows MKL's own path stays faster, so both
are kept and the row count picks (demo model, decode ms per step: 1 row 74 as is / 86 packed,
2 rows 81 / 96, 4 rows 119 / 98, 8 rows 139 / 108). The price is a second copy of each weight
(about 0.4 GB for the demo model). Float32 on the CPU only; elsewhere (GPU, other dtypes, a torch
without these ops) the layers are left alone.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger("inference_app")


PACKED_FROM_ROWS = 3  # below it, MKL's matrix-vector path is faster (see above)


def can_pack(weight: torch.Tensor) -> bool:
    """Whether ``pack_weight`` applies: a float32 CPU weight and a torch with oneDNN."""
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and torch.backends.mkldnn.is_available()


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (``[out, in]``) laid out once in oneDNN's blocked format, for ``packed_linear``."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), None)


def packed_linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` by the weight ``pack_weight`` made."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [None], "")


def use_packed(x: torch.Tensor, in_features: int) -> bool:
    """Enough rows in ``x`` for the packed weight to beat MKL's own path (see above)."""
    return x.numel() >= PACKED_FROM_ROWS * in_features


class PackedLinear(nn.Module):
    """``Linear`` that multiplies 3 or more rows by its weight packed once for oneDNN; same result up
    to float rounding."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.packed = pack_weight(linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not use_packed(x, self.in_features):
            return F.linear(x, self.weight, self.bias)
        return packed_linear(x, self.packed, self.bias)


def _can_pack(module: nn.Module) -> bool:
    return type(module) is nn.Linear and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32


def pack_linears(model: nn.Module) -> int:
    """Replace every float32 CPU ``Linear`` of ``model`` (a plain transformers model, LoRA stacked or
    merged) by a ``PackedLinear``; returns how many. 0 when oneDNN is not there to do it."""
    if not torch.backends.mkldnn.is_available():
        return 0
    targets = [(path, m) for path, m in model.named_modules() if _can_pack(m)]
    try:
        packed = [PackedLinear(m) for _, m in targets]
    except (RuntimeError, AttributeError) as e:  # a torch built without the oneDNN ops
        log.info("linear layers not packed for oneDNN (%s: %s)", type(e).__name__, e)
        return 0
    for (path, _), new in zip(targets, packed):
        parent, _, child = path.rpartition(".")
        setattr(model.get_submodule(parent), child, new)
    return len(packed)
