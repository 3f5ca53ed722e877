"""DIN's reconstruction head: convolutions and pixel shuffles to the target scale."""

import keras

from keras_din.architecture import SHUFFLE_FACTORS
from keras_din.layers._data_format import channel_axis, standardize_data_format
from keras_din.layers._inline import conv2d
from keras_din.layers.pixel_shuffle import pixel_shuffle

# Pixel-shuffle factors per scale, as in the authors' `UPNet`; scale 1 is plain reconstruction.


@keras.saving.register_keras_serializable(package="keras_din")
class Upsampler(keras.layers.Layer):
    """Sub-pixel upsampler: `[conv3×3 C → C·r², pixel shuffle r]` per factor, then conv3×3 → out.

    Scale 2 and 3 use one shuffle, 4 two ×2 shuffles, 8 three; scale 1 is the final
    3×3 convolution alone (same-size restoration). No activations.

    Args:
        num_features: channels C of the input features.
        scale: 1, 2, 3, 4 or 8.
        out_channels: channels of the reconstructed image.
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras_din
    >>> up = keras_din.layers.Upsampler(num_features=8, scale=4, out_channels=3)
    >>> tuple(up(np.zeros((1, 5, 6, 8), "float32")).shape)
    (1, 20, 24, 3)
    """

    def __init__(self, num_features: int, scale: int, out_channels: int = 3, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if scale not in SHUFFLE_FACTORS:
            raise ValueError(f"Upsampler scale must be one of {sorted(SHUFFLE_FACTORS)}, got {scale!r}.")
        self.num_features = int(num_features)
        self.scale = int(scale)
        self.out_channels = int(out_channels)
        self.data_format = standardize_data_format(data_format)
        common = dict(kernel_size=3, padding="same", data_format=self.data_format, dtype=self.dtype_policy)
        # convs[m] is the authors' `UPNet.{2m}`; the last one reconstructs the image.
        self.convs = [
            keras.layers.Conv2D(self.num_features * r * r, name=f"conv{m}", **common)
            for m, r in enumerate(self.factors)
        ]
        self.convs.append(keras.layers.Conv2D(self.out_channels, name=f"conv{len(self.factors)}", **common))

    @property
    def factors(self) -> tuple[int, ...]:
        return SHUFFLE_FACTORS[self.scale]

    def build(self, input_shape):
        shape = list(input_shape)
        axis = channel_axis(self.data_format)
        shape[axis] = self.num_features
        for conv in self.convs:
            conv.build(tuple(shape))

    def call(self, x):
        for conv, factor in zip(self.convs, self.factors):
            x = pixel_shuffle(conv2d(conv, x, self.data_format), factor, self.data_format)
        return conv2d(self.convs[-1], x, self.data_format)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = channel_axis(self.data_format)
        for i in (1, 2) if axis == -1 else (2, 3):
            shape[i] = None if shape[i] is None else shape[i] * self.scale
        shape[axis] = self.out_channels
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_features=self.num_features,
            scale=self.scale,
            out_channels=self.out_channels,
            data_format=self.data_format,
        )
        return config
