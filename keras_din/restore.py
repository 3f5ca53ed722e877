"""Restoring images with a DIN: array in, array out, and image files on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps


def _to_unit_float(image: np.ndarray) -> tuple[np.ndarray, np.dtype]:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0, image.dtype
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0, image.dtype
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32), image.dtype
    raise TypeError(f"Image dtype {image.dtype} is not supported: use uint8, uint16 or a float array in [0, 1].")


def _from_unit_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    image = np.clip(image, 0.0, 1.0)
    if dtype == np.uint8:
        return np.round(image * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(image * 65535.0).astype(np.uint16)
    return image.astype(dtype)


def _run(model, batch: np.ndarray) -> np.ndarray:
    """`model` on an NHWC float32 batch, whatever the model's data_format; NHWC float32 out."""
    if model.data_format == "channels_first":
        batch = batch.transpose(0, 3, 1, 2)
    output = keras.ops.convert_to_numpy(model(batch, training=False)).astype(np.float32)
    return output.transpose(0, 2, 3, 1) if model.data_format == "channels_first" else output


def _self_ensemble(model, batch: np.ndarray) -> np.ndarray:
    """Mean of the model's outputs over the 8 flips/rotations of the input (geometric self-ensemble)."""
    total = None
    for k in range(4):
        for flip in (False, True):
            variant = np.rot90(batch, k, axes=(1, 2))
            variant = variant[:, :, ::-1] if flip else variant
            out = _run(model, np.ascontiguousarray(variant))
            out = out[:, :, ::-1] if flip else out
            out = np.rot90(out, -k, axes=(1, 2))
            total = out if total is None else total + out
    return total / 8.0


def restore_array(model, image: np.ndarray, self_ensemble: bool = False) -> np.ndarray:
    """Runs `model` on one H×W or H×W×C image and returns the result in the input's dtype.

    uint8 and uint16 images are scaled to [0, 1]; float images are taken as [0, 1].
    A greyscale image fed to a colour model is replicated to three channels and the
    result averaged back to one; the output is clipped to the valid range.
    `self_ensemble=True` averages the outputs of the 8 flips/rotations (×8 time).

    Example:
    >>> import numpy as np, keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
    >>> restore_array(model, np.zeros((5, 6, 3), np.uint8)).shape
    (10, 12, 3)
    """
    pixels, dtype = _to_unit_float(image)
    grey = pixels.ndim == 2
    if grey:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        raise ValueError(f"Expected an H×W or H×W×C image, got an array of shape {np.shape(image)}.")
    channels = pixels.shape[-1]
    if channels == 1 and model.in_channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    elif channels != model.in_channels:
        raise ValueError(
            f"The image has {channels} channels but the model expects {model.in_channels}."
        )
    batch = pixels[None]
    output = (_self_ensemble(model, batch) if self_ensemble else _run(model, batch))[0]
    if channels == 1 and output.shape[-1] != 1:
        output = output.mean(axis=-1, keepdims=True)
    if grey:
        output = output[..., 0]
    return _from_unit_float(output, dtype)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image file as uint8 (or uint16) RGB or greyscale, EXIF orientation applied."""
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(image, dtype=np.uint16)
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return np.asarray(image)


def write_image_atomic(array: np.ndarray, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Writes an image so that `path` is either absent or complete, never half-written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        Image.fromarray(array).save(temporary, format=Image.registered_extensions().get(path.suffix.lower()))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions.
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
