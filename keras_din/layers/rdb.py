"""The residual dense block (RDB) of DIN."""

import keras
from keras import ops

from keras_din.layers._data_format import channel_axis, standardize_data_format
from keras_din.layers._inline import conv2d


@keras.saving.register_keras_serializable(package="keras_din")
class RDB(keras.layers.Layer):
    """Residual dense block: densely connected 3×3 convolutions and a scaled residual.

    Five 3×3 convolutions each see the channel concatenation of the input and every
    earlier output and add `growth_rate` channels (LeakyReLU 0.2 after each); a sixth
    3×3 convolution fuses everything back to `num_features` channels with no
    activation, and the block returns `x + 0.1 * fused`.

    Args:
        num_features: channels of the input and of the output.
        growth_rate: channels each growth convolution adds.
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras_din
    >>> block = keras_din.layers.RDB(num_features=8, growth_rate=4)
    >>> tuple(block(np.zeros((1, 5, 7, 8), "float32")).shape)
    (1, 5, 7, 8)
    """

    num_growth_layers = 5
    residual_scale = 0.1
    negative_slope = 0.2

    def __init__(self, num_features: int, growth_rate: int, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.growth_rate = int(growth_rate)
        self.data_format = standardize_data_format(data_format)
        conv = dict(kernel_size=3, padding="same", data_format=self.data_format, dtype=self.dtype_policy)
        # convs[0:5] are the growth convolutions, convs[5] the fusion: the authors' conv1..conv6.
        self.convs = [
            keras.layers.Conv2D(self.growth_rate, name=f"conv{i + 1}", **conv) for i in range(self.num_growth_layers)
        ]
        self.convs.append(keras.layers.Conv2D(self.num_features, name=f"conv{self.num_growth_layers + 1}", **conv))

    def build(self, input_shape):
        axis = channel_axis(self.data_format)
        shape = list(input_shape)
        for conv in self.convs:
            conv.build(tuple(shape))
            shape[axis] += self.growth_rate

    def call(self, x):
        # The convolutions run inline on the Conv2D layers' variables (see `_inline`).
        axis, fmt = channel_axis(self.data_format), self.data_format
        features = [x]
        for conv in self.convs[:-1]:
            grown = conv2d(conv, ops.concatenate(features, axis=axis), fmt)
            features.append(ops.leaky_relu(grown, negative_slope=self.negative_slope))
        return x + self.residual_scale * conv2d(self.convs[-1], ops.concatenate(features, axis=axis), fmt)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, growth_rate=self.growth_rate, data_format=self.data_format)
        return config
