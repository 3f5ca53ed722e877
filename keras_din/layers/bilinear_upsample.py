"""Integer-factor bilinear upsampling with PyTorch's `align_corners=False` sampling."""

import keras
from keras import ops

from keras_din.layers._data_format import spatial_axes, standardize_data_format


def _upsample_axis(x, factor: int, axis: int):
    """Bilinear ×factor along one axis: half-pixel centres, borders clamped, no antialiasing.

    Output sample `o = factor·k + i` reads source coordinate `k + f_i` with
    `f_i = (i + 0.5) / factor − 0.5`, i.e. a fixed two-tap blend of rows k−1, k or
    k, k+1. Written with slices and a reshape (no gather), so it exports cleanly.
    """
    head = (slice(None),) * axis
    first, last = x[head + (slice(0, 1),)], x[head + (slice(-1, None),)]
    padded = ops.concatenate([first, x, last], axis=axis)
    before = padded[head + (slice(0, -2),)]
    after = padded[head + (slice(2, None),)]
    phases = []
    for i in range(factor):
        offset = (i + 0.5) / factor - 0.5
        if offset < 0:
            phases.append(-offset * before + (1 + offset) * x)
        else:
            phases.append((1 - offset) * x + offset * after if offset > 0 else x)
    stacked = ops.stack(phases, axis=axis + 1)
    shape = list(ops.shape(x))
    shape[0] = -1
    shape[axis] = shape[axis] * factor
    return ops.reshape(stacked, tuple(shape))


@keras.saving.register_keras_serializable(package="keras_din")
class BilinearUpsample(keras.layers.Layer):
    """Bilinear upsampling by an integer factor, as PyTorch's `interpolate(..., align_corners=False)`.

    This is the global skip of DIN's enhanced version: source coordinate
    `(dst + 0.5) / factor − 0.5`, clamped at the borders, no antialiasing.

    Args:
        factor: integer upsampling factor (1 returns the input).
        data_format: `"channels_last"` (default from Keras' config) or `"channels_first"`.

    Example:
    >>> import numpy as np, keras, keras_din
    >>> up = keras_din.layers.BilinearUpsample(factor=2)
    >>> keras.ops.convert_to_numpy(up(np.arange(4, dtype="float32").reshape(1, 1, 4, 1)))[0, 0, :, 0].tolist()
    [0.0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.0]
    """

    def __init__(self, factor: int, data_format: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(factor) < 1:
            raise ValueError(f"BilinearUpsample factor must be a positive integer, got {factor!r}.")
        self.factor = int(factor)
        self.data_format = standardize_data_format(data_format)

    def call(self, x):
        if self.factor == 1:
            return x
        for axis in spatial_axes(self.data_format):
            x = _upsample_axis(x, self.factor, axis)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for i in spatial_axes(self.data_format):
            shape[i] = None if shape[i] is None else shape[i] * self.factor
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(factor=self.factor, data_format=self.data_format)
        return config
