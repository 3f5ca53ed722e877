"""keras-din: DIN (Deep Interleaved Network with Asymmetric Co-Attention) for Keras 3."""

from keras_din import layers
from keras_din.convert import CheckpointError, convert_official_checkpoint
from keras_din.export import ExportError, export_model
from keras_din.hub import upload_preset
from keras_din.model import DIN
from keras_din.preset import PresetError
from keras_din.preset_registry import DEFAULT_PRESET, list_presets
from keras_din.restore import ImageRestorer
from keras_din.version import __version__

__all__ = [
    "DIN",
    "DEFAULT_PRESET",
    "ImageRestorer",
    "layers",
    "convert_official_checkpoint",
    "CheckpointError",
    "PresetError",
    "ExportError",
    "export_model",
    "list_presets",
    "upload_preset",
    "__version__",
]
