"""One node of DIN's interleaved grid: co-attention over two branches, then a WRDB."""

import keras

from keras_din.layers._data_format import standardize_data_format
from keras_din.layers.asyca import AsyCA
from keras_din.layers.wrdb import WRDB


@keras.saving.register_keras_serializable(package="keras_din")
class InterleavedBlock(keras.layers.Layer):
    """`WRDB(AsyCA(previous_branch, current))`: block k of branch s ≥ 2.

    Called on `[previous_branch, current]`, where `previous_branch` is block k of
    branch s − 1 and `current` is block k − 1 of this branch (for k = 1, block 1
    of branch s − 1 again, as in the authors' network).

    Args:
        num_features: channels C of both inputs and of the output.
        growth_rate: growth rate of the WRDB's dense blocks.
        attention_ratio: AsyCA's bottleneck reduction.
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras_din
    >>> node = keras_din.layers.InterleavedBlock(num_features=8, growth_rate=4, attention_ratio=4)
    >>> x = np.zeros((1, 5, 5, 8), "float32")
    >>> tuple(node([x, x]).shape)
    (1, 5, 5, 8)
    """

    def __init__(
        self,
        num_features: int,
        growth_rate: int,
        attention_ratio: int = 8,
        data_format: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_features = int(num_features)
        self.growth_rate = int(growth_rate)
        self.attention_ratio = int(attention_ratio)
        self.data_format = standardize_data_format(data_format)
        common = dict(data_format=self.data_format, dtype=self.dtype_policy)
        self.asyca = AsyCA(self.num_features, self.attention_ratio, name="asyca", **common)
        self.wrdb = WRDB(self.num_features, self.growth_rate, name="wrdb", **common)

    def build(self, input_shape):
        self.asyca.build(input_shape)
        self.wrdb.build(input_shape[0])

    def call(self, inputs):
        return self.wrdb(self.asyca(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_features=self.num_features,
            growth_rate=self.growth_rate,
            attention_ratio=self.attention_ratio,
            data_format=self.data_format,
        )
        return config
