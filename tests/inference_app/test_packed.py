"""Packed linear layers (issue 12): the same products as the plain layers, for every row count on either
side of the switch between MKL's path and oneDNN's packed one, with or without a bias."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inference_app.packed import PACKED_FROM_ROWS, PackedLinear, pack_linears

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def test_pack_linears_replaces_each_linear_and_keeps_its_results():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 32, bias=False))
    before = [m for m in model if isinstance(m, nn.Linear)]
    xs = [torch.randn(rows, 64) for rows in (1, PACKED_FROM_ROWS - 1, PACKED_FROM_ROWS, 8, 17)] + [torch.randn(4, 5, 64)]
    with torch.inference_mode():
        want = [model(x) for x in xs]
        assert pack_linears(model) == 2
        assert [type(m) for m in model] == [PackedLinear, nn.ReLU, PackedLinear]
        assert model[0].weight is before[0].weight  # the weight is kept (one or two rows use it), not copied
        for x, w in zip(xs, want):
            got = model(x)
            assert got.shape == w.shape
            torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-5)


def test_only_float32_cpu_linears_are_packed():
    model = nn.Sequential(nn.Linear(8, 8).to(torch.float64), nn.Linear(8, 8))
    assert pack_linears(model) == 1 and type(model[0]) is nn.Linear and type(model[1]) is PackedLinear
