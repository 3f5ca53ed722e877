"""keras-din: DIN (Deep Interleaved Network with Asymmetric Co-Attention) for Keras 3.

The public names load on first use (PEP 562), so the command line's `--help` and argument
errors do not import Keras or a backend. Where Keras is imported already (`import keras`
before `import keras_din`, as isort orders them), DIN and its layers register with
`keras.saving` at once, so `keras.saving.load_model("x.keras")` finds them; otherwise they
register on first use of any public name.
"""

import importlib
import sys

from keras_din.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "DIN": "keras_din.model",
    "DEFAULT_PRESET": "keras_din.preset.registry",
    "ImageRestorer": "keras_din.restore",
    "JpegConstraint": "keras_din.jpeg_constraint",
    "convert_official_checkpoint": "keras_din.convert",
    "CheckpointError": "keras_din.preset.checkpoint",
    "KerasDinError": "keras_din.errors",
    "ConfigError": "keras_din.errors",
    "ImageError": "keras_din.errors",
    "StorageError": "keras_din.errors",
    "TrainingError": "keras_din.train",
    "PresetError": "keras_din.preset",
    "ExportError": "keras_din.export",
    "export_model": "keras_din.export",
    "list_presets": "keras_din.preset.registry",
    "upload_preset": "keras_din.preset.hub",
}
_SUBMODULES = ("layers",)

__all__ = ["layers", *_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_din.{name}")
    else:
        raise AttributeError(f"module 'keras_din' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


if "keras" in sys.modules:
    importlib.import_module("keras_din.model")
