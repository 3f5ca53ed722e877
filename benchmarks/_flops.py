"""Analytic convolution FLOPs of a DIN, read from its weight shapes in the authors' layout.

Every DIN convolution has stride 1 and "same" padding, so a convolution with
weight shape (Cout, Cin/groups, k, k) applied at resolution H × W costs
2 · k · k · (Cin/groups) · Cout · H · W floating-point operations (one multiply and
one add per weight per output pixel; bias adds, activations, concatenations,
pooling, softmax and pixel shuffles are left out: they are memory-bound and a few
percent of the arithmetic). For the depth-wise 1×1 skips inside WRDB
(Cin/groups = 1) this is 2 · C · H · W.

All convolutions run at the low-resolution size except two kinds: AsyCA's
squeeze and expand convs (`AsyCA*.conv_dc`, `AsyCA*.conv_ic`) act on the globally
pooled 1 × 1 map, and the upsampler's conv `up_recon.UPNet.{2m}` sees the input
enlarged by the pixel-shuffle factors of the convs before it, each factor r read
off its conv's shape (Cout = Cin · r²). A training step is counted as 3 × the forward pass
(forward, gradient with respect to activations, gradient with respect to weights),
the usual convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

_UPNET_WEIGHT = re.compile(r"^up_recon\.UPNet\.(\d+)\.weight$")
_POOLED_WEIGHT = re.compile(r"^AsyCA\d+_\d+\.conv_(dc|ic)\.weight$")
TRAINING_FACTOR = 3


def forward_conv_flops(weight_shapes: Mapping[str, Sequence[int]], height: int, width: int) -> int:
    """Conv FLOPs of one forward pass on one `height` × `width` image.

    Args:
        weight_shapes: `{official tensor name: shape}`, e.g. from
            `keras_din.convert.official_state_dict(model)` or the authors'
            `model.state_dict()`; only 4-D `*.weight` tensors are counted.
        height, width: low-resolution input size.
    """
    upnet = sorted(int(m.group(1)) for m in map(_UPNET_WEIGHT.match, weight_shapes) if m)
    pixels = height * width
    resolution = {name: 1 for name in weight_shapes if _POOLED_WEIGHT.match(name)}  # name -> pixels it runs at
    area = 1
    for position, index in enumerate(upnet):
        resolution[f"up_recon.UPNet.{index}.weight"] = pixels * area
        cout, cin = weight_shapes[f"up_recon.UPNet.{index}.weight"][:2]
        if position < len(upnet) - 1:
            factor = math.isqrt(cout // cin)
            if factor * factor * cin != cout:
                raise ValueError(
                    f"up_recon.UPNet.{index}.weight has {cout} output channels for {cin} inputs: "
                    "not the input channels × a square pixel-shuffle factor."
                )
            area *= factor * factor
    total = 0
    for name, shape in weight_shapes.items():
        if name.endswith(".weight") and len(shape) == 4:
            total += 2 * math.prod(shape) * resolution.get(name, pixels)
    return total
