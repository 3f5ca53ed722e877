"""What-if rewrites of DIN's layers, to measure what a change to keras_din would save.

Each variant patches one layer method of keras_din for the duration of a
`with` block, in this process only (no file is changed): a model called (and
so traced or compiled) inside the block runs the variant. Variants keep every
variable, so a variant model takes the baseline model's weights with
`set_weights` and must reproduce its outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


def _skips_as_multiply_add() -> Callable:
    """WRDB with its six depth-wise 1×1 skips computed as `x * w + b` instead of DepthwiseConv2D."""
    from keras import ops

    def call(self, x):
        axis_shape = (-1,) if self.data_format == "channels_last" else (-1, 1, 1)

        def skip(name, tensor):
            layer = getattr(self, name)
            scale = ops.reshape(ops.cast(layer.kernel, tensor.dtype), axis_shape)
            return tensor * scale + ops.reshape(ops.cast(layer.bias, tensor.dtype), axis_shape)

        a = ops.leaky_relu(self.conv0(x), negative_slope=self.negative_slope)
        b = self.rdbs[0](a) + skip("conv1_1", a)
        c = self.rdbs[1](b) + skip("conv2_1", b) + skip("conv1_2", a)
        e = self.rdbs[2](c) + skip("conv1_3", a) + skip("conv2_2", b) + skip("conv3_1", c)
        return x + self.residual_scale * e

    return call


def _identity_asyca_skipped() -> Callable:
    """InterleavedBlock that skips AsyCA when both inputs are one tensor (blocks s_1: AsyCA is then the identity)."""

    def call(self, inputs):
        previous, current = inputs
        return self.wrdb(previous if previous is current else self.asyca(inputs))

    return call


def _rdb_convs_as_ops() -> Callable:
    """RDB calling `keras.ops.conv` on its Conv2D layers' variables instead of each layer's `__call__`.

    Same arithmetic; what it removes is Keras' per-layer call machinery (six
    nested layer calls per RDB, 360 in the network).
    """
    from keras import ops

    from keras_din.layers._data_format import channel_axis

    def call(self, x):
        axis = channel_axis(self.data_format)
        bias_shape = (-1,) if self.data_format == "channels_last" else (-1, 1, 1)

        def conv(layer, tensor):
            kernel = ops.cast(layer.kernel, tensor.dtype)
            out = ops.conv(tensor, kernel, strides=1, padding="same", data_format=self.data_format)
            return out + ops.reshape(ops.cast(layer.bias, tensor.dtype), bias_shape)

        features = [x]
        for layer in self.convs[:-1]:
            grown = conv(layer, ops.concatenate(features, axis=axis))
            features.append(ops.leaky_relu(grown, negative_slope=self.negative_slope))
        return x + self.residual_scale * conv(self.convs[-1], ops.concatenate(features, axis=axis))

    return call


def _patch_targets() -> dict[str, tuple[type, Callable]]:
    from keras_din.layers.interleaved_block import InterleavedBlock
    from keras_din.layers.rdb import RDB
    from keras_din.layers.wrdb import WRDB

    return {
        "skips as multiply-add": (WRDB, _skips_as_multiply_add()),
        "RDB convs as ops (no per-layer calls)": (RDB, _rdb_convs_as_ops()),
        "identity AsyCA skipped": (InterleavedBlock, _identity_asyca_skipped()),
    }


VARIANTS = ("baseline", "skips as multiply-add", "RDB convs as ops (no per-layer calls)", "identity AsyCA skipped")


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Within the block, keras_din layers run variant `name` (one of `VARIANTS`)."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose from {VARIANTS}.")
    if name == "baseline":
        yield
        return
    layer_class, call = _patch_targets()[name]
    original = layer_class.call
    layer_class.call = call
    try:
        yield
    finally:
        layer_class.call = original
