"""PyTorch-ordered pixel shuffle on `keras.ops`."""

from keras import ops


def pixel_shuffle(x, factor: int, data_format: str):
    """Rearranges `C·r²` channels into an r-times larger image with `C` channels.

    Follows PyTorch's `PixelShuffle` order: input channel `c·r² + i·r + j` lands on
    output channel `c` at sub-pixel (row `i`, column `j`). (TensorFlow's
    `depth_to_space` uses channel `(i·r + j)·C + c` instead.) Works with dynamic
    batch, height and width.
    """
    r = int(factor)
    if r == 1:
        return x
    shape = ops.shape(x)
    if data_format == "channels_last":
        h, w, c = shape[1], shape[2], shape[3] // (r * r)
        x = ops.reshape(x, (-1, h, w, c, r, r))
        x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
        return ops.reshape(x, (-1, h * r, w * r, c))
    c, h, w = shape[1] // (r * r), shape[2], shape[3]
    x = ops.reshape(x, (-1, c, r, r, h, w))
    x = ops.transpose(x, (0, 1, 4, 2, 5, 3))
    return ops.reshape(x, (-1, c, h * r, w * r))
