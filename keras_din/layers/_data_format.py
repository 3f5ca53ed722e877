"""Axis bookkeeping shared by the layers: which axis holds channels, which hold space."""

import keras


def standardize_data_format(data_format: str | None) -> str:
    """Returns `"channels_last"` or `"channels_first"`; `None` means Keras' global setting."""
    if data_format is None:
        data_format = keras.config.image_data_format()
    data_format = str(data_format).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}.")
    return data_format


def channel_axis(data_format: str) -> int:
    return -1 if data_format == "channels_last" else 1


def spatial_axes(data_format: str) -> tuple[int, int]:
    return (1, 2) if data_format == "channels_last" else (2, 3)
