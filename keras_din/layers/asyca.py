"""Asymmetric co-attention (AsyCA): a learned, per-channel choice between two states."""

import keras
from keras import ops

from keras_din.layers._data_format import channel_axis, spatial_axes, standardize_data_format
from keras_din.layers._inline import conv2d


@keras.saving.register_keras_serializable(package="keras_din")
class AsyCA(keras.layers.Layer):
    """Asymmetric co-attention fusing two feature maps of equal shape.

    `concat(x1, x2)` → 1×1 conv (2C → C) → global average pool → 1×1 conv
    (C → C // ratio) → ReLU → 1×1 conv (→ 2C). The 2C logits are read as
    (weights for x1, weights for x2) and a softmax is taken across the pair, per
    sample and channel; the output is `w1 * x1 + w2 * x2` on the raw inputs.

    Args:
        num_features: channels C of each input.
        ratio: bottleneck reduction; the bottleneck has `C // ratio` channels (floor).
            The conference network uses 8, the enhanced one 4.
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras_din
    >>> attention = keras_din.layers.AsyCA(num_features=8, ratio=4)
    >>> x1, x2 = np.zeros((1, 4, 4, 8), "float32"), np.ones((1, 4, 4, 8), "float32")
    >>> tuple(attention([x1, x2]).shape)
    (1, 4, 4, 8)
    """

    def __init__(self, num_features: int, ratio: int = 8, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.ratio = int(ratio)
        if self.ratio < 1 or self.num_features // self.ratio < 1:
            raise ValueError(
                f"AsyCA needs num_features // ratio >= 1 (its bottleneck width), got "
                f"num_features={self.num_features}, ratio={self.ratio}: raise num_features or lower the ratio."
            )
        self.data_format = standardize_data_format(data_format)
        common = dict(kernel_size=1, data_format=self.data_format, dtype=self.dtype_policy)
        self.conv_init = keras.layers.Conv2D(self.num_features, name="conv_init", **common)
        self.conv_dc = keras.layers.Conv2D(self.num_features // self.ratio, name="conv_dc", **common)
        self.conv_ic = keras.layers.Conv2D(2 * self.num_features, name="conv_ic", **common)

    def build(self, input_shape):
        shape = list(input_shape[0])
        axis = channel_axis(self.data_format)
        shape[axis] = 2 * self.num_features
        self.conv_init.build(tuple(shape))
        pooled = [shape[0], 1, 1, 1]
        pooled[axis] = self.num_features
        self.conv_dc.build(tuple(pooled))
        pooled[axis] = self.num_features // self.ratio
        self.conv_ic.build(tuple(pooled))

    def call(self, inputs):
        x1, x2 = inputs
        fmt = self.data_format
        axis = channel_axis(fmt)
        mixed = conv2d(self.conv_init, ops.concatenate([x1, x2], axis=axis), fmt)
        pooled = ops.mean(mixed, axis=spatial_axes(fmt), keepdims=True)
        logits = conv2d(self.conv_ic, ops.relu(conv2d(self.conv_dc, pooled, fmt)), fmt)
        logits1, logits2 = ops.split(logits, 2, axis=axis)
        # softmax over the pair (l1, l2) is (sigmoid(l1 - l2), 1 - sigmoid(l1 - l2)).
        w1 = ops.sigmoid(logits1 - logits2)
        return x2 + w1 * (x1 - x2)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, ratio=self.ratio, data_format=self.data_format)
        return config
