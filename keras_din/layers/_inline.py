"""A sub-layer's arithmetic run inline on its variables, without the sub-layer's `__call__`.

RDB and WRDB are DIN's innermost blocks (60 RDBs and 120 skips in the paper-size network).
Calling their Conv2D / DepthwiseConv2D sub-layers costs more Keras bookkeeping per call than
arithmetic at small sizes, and torch runs a grouped 1×1 convolution as one tiny convolution
per channel. The blocks therefore keep those sub-layers as the owners of their variables
(names, shapes and checkpoints unchanged) and compute with these functions instead. Measured
(benchmarks/README.md): each change −11 to −21 % of torch's eager time, a few percent on the other
backends' eager modes, nothing under `tf.function` / `jax.jit`; outputs bit-identical.

Every convolution of the layers goes through `conv2d`, which is also where TensorFlow's missing
NCHW CPU convolution is worked around (`_tf_needs_nhwc`) and where torch adds the bias inside its
convolution (`_torch_conv2d`).
"""

import functools

import keras
from keras import ops


def _per_channel(variable, like, data_format: str):
    # A (C,)-sized variable reshaped to broadcast over `like`'s channel axis, in `like`'s dtype.
    shape = (-1,) if data_format == "channels_last" else (-1, 1, 1)
    return ops.reshape(ops.cast(variable, like.dtype), shape)


@functools.cache
def _tf_needs_nhwc() -> bool:
    """Whether TensorFlow must be given NHWC convolutions.

    TensorFlow's own CPU Conv2D kernel implements NHWC only ("The Conv2D op currently only
    supports the NHWC tensor format on the CPU"); NCHW works on CPU only through its oneDNN
    kernels, which TF enables by default on AVX512-VNNI/BF16 or AMX CPUs alone (and never with
    TF_ENABLE_ONEDNN_OPTS=0). Without a GPU, channels_first convolutions are therefore run as
    transpose → NHWC convolution → transpose, on every CPU alike. `DIN` avoids the transposes
    altogether by computing NHWC on TensorFlow (`model._compute_data_format`).
    """
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.config.list_logical_devices("GPU")


def _torch_conv2d(x, kernel, bias):
    """A stride-1, "same"-padded NCHW convolution with its bias, in torch itself.

    `keras.ops.conv` takes no bias, so on torch each convolution would be followed by a second
    pass over its output to add it; torch's `conv2d` adds it inside oneDNN's kernel instead.
    Measured with torch's profiler (conference ×4 at 160×120, Intel Xeon with AMX, 2 threads):
    the adds' time 0.45 s → 0.21 s of about 6 s of operator time per forward pass.
    """
    import torch

    return torch.nn.functional.conv2d(x, ops.transpose(kernel, (3, 2, 0, 1)), bias, padding="same")


def conv2d(layer, x, data_format: str):
    """`layer(x)` for a stride-1, "same"-padded, linear `keras.layers.Conv2D` with a bias."""
    kernel = ops.cast(layer.kernel, x.dtype)
    if data_format == "channels_first" and keras.backend.backend() == "torch":
        return _torch_conv2d(x, kernel, ops.cast(layer.bias, x.dtype))
    if data_format == "channels_first" and _tf_needs_nhwc():
        y = ops.conv(ops.transpose(x, (0, 2, 3, 1)), kernel, strides=1, padding="same")
        y = y + _per_channel(layer.bias, y, "channels_last")
        return ops.transpose(y, (0, 3, 1, 2))
    y = ops.conv(x, kernel, strides=1, padding="same", data_format=data_format)
    return y + _per_channel(layer.bias, y, data_format)


def channel_affine(layer, x, data_format: str):
    """`layer(x)` for a 1×1 `keras.layers.DepthwiseConv2D` with a bias: `x * w + b` per channel."""
    return x * _per_channel(layer.kernel, x, data_format) + _per_channel(layer.bias, x, data_format)
