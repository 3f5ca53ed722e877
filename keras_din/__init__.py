"""keras-din: DIN (Deep Interleaved Network with Asymmetric Co-Attention) for Keras 3."""

from keras_din import layers
from keras_din.convert import CheckpointError, convert_official_checkpoint
from keras_din.model import DIN
from keras_din.preset import PresetError
from keras_din.version import __version__

__all__ = ["DIN", "layers", "convert_official_checkpoint", "CheckpointError", "PresetError", "__version__"]
