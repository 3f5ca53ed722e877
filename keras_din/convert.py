"""Converting the authors' PyTorch checkpoints of DIN into `keras_din.DIN` models.

The checkpoint format itself (reading, detecting the configuration, mapping tensors)
is `keras_din.preset.checkpoint`; its public names are re-exported here, where they
have always been.
"""

from __future__ import annotations

import os

from keras_din.model import DIN
from keras_din.preset.checkpoint import (  # noqa: F401 - the public names of keras_din.convert
    CHECKPOINT_SUFFIXES,
    CheckpointError,
    detect_config,
    load_official_state_dict,
    model_from_checkpoint,
    official_layer_map,
    official_state_dict,
    read_checkpoint,
)


def convert_official_checkpoint(path: str | os.PathLike, data_format: str | None = None, dtype=None) -> DIN:
    """Builds the `DIN` that an authors' checkpoint describes and loads its weights.

    Args:
        path: a `.pth` training checkpoint or state dict, or a `.safetensors` file.
        data_format: layout of the returned model (`None`: Keras' config).
        dtype: dtype policy of the returned model.

    Example:
    >>> import keras_din
    >>> model = keras_din.convert_official_checkpoint("conference_x4.pth")  # doctest: +SKIP
    >>> model.save_to_preset("din_conference_x4")  # doctest: +SKIP
    """
    return model_from_checkpoint(DIN, path, data_format=data_format, dtype=dtype)
