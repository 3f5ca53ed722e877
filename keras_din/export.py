"""Exporting a DIN to ONNX or a TensorFlow SavedModel, with dynamic batch, height and width.

The exported graph takes one NHWC float32 input named `"image"` (values in [0, 1],
any batch, height and width) and returns `"restored"`, the model's output (not
clamped). Both formats are produced by TensorFlow (tf2onnx for ONNX), whatever
Keras backend the caller runs: under JAX or PyTorch the export runs in a
`KERAS_BACKEND=tensorflow` subprocess.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from keras_din._io.atomic import staging_folder
from keras_din.errors import ConfigError, KerasDinError

if TYPE_CHECKING:  # Keras loads on first export, not on import: `keras-din --help` reads FORMATS from here
    from keras_din.model import DIN

FORMATS = ("onnx", "saved_model")
DEFAULT_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "restored"
# Per format, the modules the export imports and the pip requirement that provides each.
_REQUIREMENTS = {
    "onnx": {"tensorflow": "tensorflow-cpu", "tf2onnx": "tf2onnx"},
    "saved_model": {"tensorflow": "tensorflow-cpu"},
}


class ExportError(KerasDinError, RuntimeError):
    """An export that failed while converting; the message carries the converter's own error."""


def export_model(
    preset_or_model: DIN | str | os.PathLike,
    path: str | os.PathLike,
    format: str = "onnx",
    *,
    overwrite: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Exports a DIN as an ONNX file or a TensorFlow SavedModel folder with dynamic batch, height and width.

    The export is channels_last float32 whatever the model's `data_format` and
    dtype policy (a copy is rebuilt from the config and weights when they differ):
    input `"image"` of shape (batch, height, width, in_channels) in [0, 1], output
    `"restored"` of shape (batch, height·scale, width·scale, out_channels). The
    output appears complete or not at all.

    Args:
        preset_or_model: a `keras_din.DIN`, or anything `DIN.from_preset` accepts
            (registered name, `hf://` handle, preset folder, authors' checkpoint).
        path: the `.onnx` file or the SavedModel folder to write.
        format: `"onnx"` (tf2onnx) or `"saved_model"` (serving signature
            `serving_default`).
        overwrite: replace an existing `path`; otherwise it is refused.
        opset: ONNX opset (ONNX only).

    Returns:
        `path`, absolute.

    Raises:
        FileExistsError: `path` exists and `overwrite` is false.
        ImportError: TensorFlow (or tf2onnx for ONNX) is not installed.
        ExportError: the conversion itself failed.

    Example:
    >>> import numpy as np, onnxruntime, keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)
    >>> path = export_model(model, "/tmp/din_tiny.onnx", overwrite=True)
    >>> session = onnxruntime.InferenceSession(path)
    >>> session.run(["restored"], {"image": np.zeros((1, 5, 7, 3), "float32")})[0].shape
    (1, 10, 14, 3)
    """
    if format not in FORMATS:
        raise ConfigError(f"Export format must be one of {FORMATS}, got {format!r}.")
    path = Path(path).expanduser().absolute()
    _refuse_existing(path, overwrite)
    _require(format)
    model = _channels_last_float32(_as_model(preset_or_model))
    path.parent.mkdir(parents=True, exist_ok=True)
    import keras

    if keras.backend.backend() == "tensorflow":
        _export_with_tensorflow(model, path, format, overwrite, opset)
    else:
        _export_in_tensorflow_process(model, path, format, overwrite, opset)
    return path


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.")


def _require(format: str) -> None:
    """Raises an ImportError naming what to install when a module the format needs is missing."""
    missing = {module: pip for module, pip in _REQUIREMENTS[format].items() if importlib.util.find_spec(module) is None}
    if missing:
        raise ImportError(
            f"Exporting to {format} needs {' and '.join(missing)} (the export runs on TensorFlow whatever your "
            f'Keras backend): pip install "keras-din[export]" (or: pip install {" ".join(missing.values())}).'
        )


def _as_model(preset_or_model: DIN | str | os.PathLike) -> DIN:
    import keras

    from keras_din.model import DIN

    if isinstance(preset_or_model, DIN):
        return preset_or_model
    if isinstance(preset_or_model, keras.Model):
        raise TypeError(
            f"export_model exports a keras_din.DIN, got a {type(preset_or_model).__name__}; build it as keras_din.DIN."
        )
    return DIN.from_preset(preset_or_model)


def _channels_last_float32(model: DIN) -> DIN:
    """`model` if it is channels_last float32, else such a copy rebuilt from its config, with its weights."""
    if model.data_format == "channels_last" and model.dtype_policy.name == "float32":
        return model
    from keras_din.model import DIN

    # Kernels are stored (kh, kw, in, out) in both layouts, so the weights carry over as they are.
    copy = DIN.from_config({**model.get_config(), "data_format": "channels_last", "dtype": "float32"})
    copy.set_weights(model.get_weights())
    return copy


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """Where to write the export: `path.name` inside a temporary folder beside `path`, removed on the way out."""
    with staging_folder(path.parent, path.name) as folder:
        yield folder / path.name  # created by the writer, so with the user's usual permissions


def _install(staged: Path, path: Path, overwrite: bool) -> None:
    """Moves a finished export to `path`; an existing `path` is replaced only with `overwrite`."""
    _refuse_existing(path, overwrite)
    if not os.path.lexists(path) or (staged.is_file() and path.is_file()):
        os.replace(staged, path)  # atomic, also over an existing file
        return
    # A rename cannot replace a folder, or a file by a folder: move the old one aside first.
    with _staged(path) as aside:
        os.replace(path, aside)
        try:
            os.replace(staged, path)
        except OSError:
            os.replace(aside, path)
            raise


# === Backend-specific code ===========================================================
# tf2onnx converts TensorFlow graphs and SavedModels are TensorFlow's format, so the
# export itself runs on the TensorFlow backend. Keras fixes its backend once per
# process, so under JAX or PyTorch the model goes to a `KERAS_BACKEND=tensorflow`
# subprocess (`keras-din export`) through a temporary preset folder.


def _export_in_tensorflow_process(model: DIN, path: Path, format: str, overwrite: bool, opset: int) -> None:
    with tempfile.TemporaryDirectory(prefix="keras-din-export-") as folder:
        model.save_to_preset(folder)
        command = [sys.executable, "-m", "keras_din", "export", "--preset", folder, "--format", format]
        command += ["-o", str(path), "--opset", str(opset)] + (["--overwrite"] if overwrite else [])
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of error reports
        result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        # The child's last line is its error (`keras-din export: error: ...`, or a traceback's last line).
        lines = [line for line in result.stderr.splitlines() if line.strip()] or ["no error output"]
        detail = lines[-1].removeprefix("keras-din export: error: ")
        raise ExportError(
            f"Exporting to {str(path)!r} in a KERAS_BACKEND=tensorflow subprocess failed "
            f"(exit status {result.returncode}): {detail}"
        )


def _export_with_tensorflow(model: DIN, path: Path, format: str, overwrite: bool, opset: int) -> None:
    import tensorflow as tf

    spec = tf.TensorSpec((None, None, None, model.in_channels), tf.float32, name=INPUT_NAME)
    serve = tf.function(lambda image: {OUTPUT_NAME: model(image, training=False)}, input_signature=[spec])
    with _staged(path) as staged:
        try:
            if format == "onnx":
                _write_onnx(serve, model, staged, opset)
            else:
                _write_saved_model(serve, model, staged)
        except Exception as error:
            raise ExportError(f"Exporting DIN {model.version} x{model.scale} to {format} failed: {error}") from error
        _install(staged, path, overwrite)


def _write_onnx(serve, model: DIN, target: Path, opset: int) -> None:
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=opset)
    # tf2onnx names the dynamic dimensions unk__N; name them for readers of the graph.
    for value, names in (
        (proto.graph.input[0], ("batch", "height", "width")),
        (proto.graph.output[0], ("batch", f"height*{model.scale}", f"width*{model.scale}")),
    ):
        for dim, name in zip(value.type.tensor_type.shape.dim, names):
            dim.dim_param = name
    target.write_bytes(proto.SerializeToString())


def _write_saved_model(serve, model: DIN, target: Path) -> None:
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve)  # the first endpoint is also `serving_default`
    archive.write_out(str(target), verbose=False)
