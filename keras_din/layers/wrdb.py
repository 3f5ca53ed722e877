"""The weighted residual dense block (WRDB) of DIN."""

import keras
from keras import ops

from keras_din.layers._data_format import standardize_data_format
from keras_din.layers._inline import channel_affine, conv2d
from keras_din.layers.rdb import RDB

# The learned weights on WRDB's dense skips, named as in the authors' code: convA_N is the
# N-th weighted skip taken from source A (1: the head's output a, 2: RDB1's b, 3: RDB2's c).
SKIP_NAMES = ("conv1_1", "conv1_2", "conv1_3", "conv2_1", "conv2_2", "conv3_1")


@keras.saving.register_keras_serializable(package="keras_din")
class WRDB(keras.layers.Layer):
    """Weighted residual dense block: a 3×3 head, three RDBs and weighted dense skips.

    With `a = lrelu(conv0(x))` and per-channel (depth-wise 1×1) weights `d`:
    `b = RDB1(a) + d11(a)`, `c = RDB2(b) + d21(b) + d12(a)`,
    `e = RDB3(c) + d13(a) + d22(b) + d31(c)`, and the block returns `x + 0.1 * e`.

    Args:
        num_features: channels of the input and of the output.
        growth_rate: growth rate of the three inner RDBs.
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras_din
    >>> block = keras_din.layers.WRDB(num_features=8, growth_rate=4)
    >>> tuple(block(np.zeros((2, 6, 5, 8), "float32")).shape)
    (2, 6, 5, 8)
    """

    residual_scale = 0.1
    negative_slope = 0.2

    def __init__(self, num_features: int, growth_rate: int, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.growth_rate = int(growth_rate)
        self.data_format = standardize_data_format(data_format)
        common = dict(data_format=self.data_format, dtype=self.dtype_policy)
        self.conv0 = keras.layers.Conv2D(self.num_features, 3, padding="same", name="conv0", **common)
        self.rdbs = [RDB(self.num_features, self.growth_rate, name=f"RDB{i + 1}", **common) for i in range(3)]
        for name in SKIP_NAMES:
            setattr(self, name, keras.layers.DepthwiseConv2D(1, name=name, **common))

    @property
    def skips(self) -> dict:
        """The six depth-wise 1×1 skip weights, by the authors' names."""
        return {name: getattr(self, name) for name in SKIP_NAMES}

    def build(self, input_shape):
        self.conv0.build(input_shape)
        for layer in (*self.rdbs, *self.skips.values()):
            layer.build(input_shape)

    def call(self, x):
        # The head conv and the skips run inline on their layers' variables (see `_inline`).
        def d(name, tensor):
            return channel_affine(getattr(self, name), tensor, self.data_format)

        a = ops.leaky_relu(conv2d(self.conv0, x, self.data_format), negative_slope=self.negative_slope)
        b = self.rdbs[0](a) + d("conv1_1", a)
        c = self.rdbs[1](b) + d("conv2_1", b) + d("conv1_2", a)
        e = self.rdbs[2](c) + d("conv1_3", a) + d("conv2_2", b) + d("conv3_1", c)
        return x + self.residual_scale * e

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, growth_rate=self.growth_rate, data_format=self.data_format)
        return config
