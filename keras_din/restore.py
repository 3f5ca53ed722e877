"""Restoring images with a DIN: arrays or PIL images of any size in, the same kind out.

`restore_array` / `ImageRestorer` handle dtypes (uint8, uint16, float), greyscale, RGB
and RGBA (alpha upscaled separately with bicubic), tiled inference for large images and
the x8 self-ensemble; `read_image` / `write_image_atomic` do the file side.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from keras_din._io.images import (  # noqa: F401 - the file side, re-exported for users of restore
    IMAGE_SUFFIXES,
    OUTPUT_FORMATS,
    ImageDepthWarning,
    expand_inputs,
    output_suffix,
    read_image,
    resampled_info,
    write_image_atomic,
)
from keras_din.errors import ConfigError, ImageError
from keras_din.inference import predictor_for
from keras_din.jpeg_constraint import JpegConstraint, uses_jpeg_constraint
from keras_din.tiling import count_tiles, tiled_apply

DEFAULT_TILE = 192
DEFAULT_OVERLAP = 32
# Auto-tiling budget for one forward pass (activations), in bytes.
DEFAULT_MEMORY_BUDGET = 1 << 30


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
    """`model` on an NHWC float32 batch, whatever the model's data_format; NHWC float32 out.

    Runs the model's compiled inference forward (`keras_din.inference`), made once per model, with
    shapes bucketed on JAX (a folder of many sizes compiles a few shapes, not one per image).
    """
    return predictor_for(model)(batch, bucket=True)


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


def estimate_bytes_per_pixel(model) -> int:
    """A generous estimate of forward-pass activation memory per input pixel (float32)."""
    dense = model.num_features + 5 * model.growth_rate  # widest concatenation inside an RDB
    live = 4 * dense + 6 * model.num_features * (model.num_blocks + 2)  # a few concats + kept branch states
    upsampled = model.num_features * model.scale**2 * 3
    return 4 * (live + upsampled)


def choose_tile(model, height: int, width: int, tile, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> int | None:
    """The tile size to use: `None` (whole image) when `tile="auto"` and the image fits the budget."""
    if tile is None:
        return None
    if tile == "auto":
        if height * width * estimate_bytes_per_pixel(model) <= memory_budget:
            return None
        return DEFAULT_TILE
    if int(tile) < 1:
        raise ConfigError(f"tile must be a positive number of LR pixels, 'auto' or None, got {tile!r}.")
    return int(tile)


def check_tiling(tile, overlap, names: tuple[str, str] = ("tile", "overlap")) -> int | str | None:
    """Validates a tile size and overlap once, before any image: returns the tile as an int, `"auto"` or `None`.

    `tile` is a positive int (or a string of digits), `"auto"`, or `None`/`"none"`; `overlap` is an
    int ≥ 0 smaller than the tile (for `"auto"`, than `DEFAULT_TILE`), which `keras_din.tiling` needs
    for tiles to advance. `names` name the two settings in the messages (the CLI passes its options).

    Example:
    >>> check_tiling("64", 8), check_tiling("none", 8), check_tiling("auto", 32)
    (64, None, 'auto')
    >>> check_tiling(8, 8, names=("--tile", "--overlap"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_din.errors.ConfigError: --overlap (8) must be smaller than --tile (8): ... never advance.
    """
    tile_name, overlap_name = names
    value = tile
    if isinstance(tile, str):
        word = tile.strip().lower()
        value = {"auto": "auto", "none": None}.get(word, word)
        if isinstance(value, str) and value != "auto":
            value = int(value) if value.isdigit() else tile
    elif isinstance(tile, float) and tile.is_integer():
        value = int(tile)
    if value is not None and value != "auto":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{tile_name} must be a positive number of LR pixels, 'auto' or 'none', got {tile!r}.")
        value = int(value)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ConfigError(f"{overlap_name} must be a whole number of LR pixels, 0 or more, got {overlap!r}.")
    if value is not None and overlap >= (DEFAULT_TILE if value == "auto" else value):
        bound = f"the automatic tile size ({DEFAULT_TILE})" if value == "auto" else f"{tile_name} ({value})"
        raise ConfigError(
            f"{overlap_name} ({overlap}) must be smaller than {bound}: tiles overlapping by a whole tile never advance."
        )
    return value


def restore_array(
    model,
    image: np.ndarray,
    self_ensemble: bool = False,
    tile: int | str | None = "auto",
    overlap: int = DEFAULT_OVERLAP,
    tile_batch_size: int = 1,
    progress=None,
    jpeg: JpegConstraint | None = None,
) -> np.ndarray:
    """Runs `model` on one H×W or H×W×C image and returns the result in the input's dtype.

    uint8 and uint16 images are scaled to [0, 1]; float images are taken as [0, 1].
    A greyscale image fed to a colour model is replicated to three channels and the
    result averaged back to one; RGBA keeps its alpha, upscaled with bicubic. The
    output is clipped to the valid range.

    Args:
        model: a `keras_din.DIN`.
        image: the image array.
        self_ensemble: average the outputs of the 8 flips/rotations (×8 time).
        tile: LR tile size; `"auto"` tiles only images whose estimated activation
            memory exceeds 1 GiB; `None` never tiles.
        overlap: LR pixels shared by neighbouring tiles (blended).
        tile_batch_size: tiles per forward pass.
        progress: a tqdm-like object updated once per tile.
        jpeg: the `JpegConstraint` of the JPEG file `image` was decoded from: a same-size
            model's output is then kept consistent with that file (its luma's DCT
            coefficients clipped into the file's quantisation cells).

    Example:
    >>> import numpy as np, keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
    >>> restore_array(model, np.zeros((5, 6, 3), np.uint8)).shape
    (10, 12, 3)
    """
    tile = check_tiling(tile, overlap)
    pixels, dtype = _to_unit_float(image)
    pixels, alpha = _to_model_channels(pixels, model.in_channels, np.shape(image))

    def run(batch):
        return _self_ensemble(model, batch) if self_ensemble else _run(model, batch)

    height, width = pixels.shape[:2]
    size = choose_tile(model, height, width, tile)
    if size is None:
        output = run(pixels[None])[0]
        if progress is not None:
            progress.update(1)
    else:
        output = tiled_apply(run, pixels, model.scale, size, overlap, tile_batch_size, progress)
    if not np.isfinite(output).all():
        raise FloatingPointError(
            f"The model's output has NaN or Inf values (dtype policy {model.dtype_policy.name}): its weights "
            "have diverged, or float16 overflowed. Restore in float32 or mixed_bfloat16, or use other weights."
        )
    output = _to_image_channels(output, np.shape(image), alpha)
    if jpeg is not None:  # the network's image (clipped to [0, 1]) made consistent with the JPEG file
        output = jpeg.project(np.clip(output, 0.0, 1.0), _to_unit_float(image)[0])
    return _from_unit_float(output, dtype)


def _to_model_channels(pixels: np.ndarray, in_channels: int, shape: tuple) -> tuple[np.ndarray, np.ndarray | None]:
    """An H×W×C float image as the model takes it, and the alpha set aside (RGBA into a colour model).

    Greyscale into a colour model is replicated to three channels."""
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if pixels.ndim != 3:
        raise ImageError(f"Expected an H×W or H×W×C image, got an array of shape {shape}.")
    alpha = None
    if pixels.shape[-1] == 4 and in_channels == 3:
        pixels, alpha = pixels[..., :3], pixels[..., 3]
    channels = pixels.shape[-1]
    if channels == 1 and in_channels == 3:
        return np.repeat(pixels, 3, axis=-1), alpha
    if channels != in_channels:
        raise ImageError(f"The image has {channels} channels but the model expects {in_channels}.")
    return pixels, alpha


def _to_image_channels(output: np.ndarray, shape: tuple, alpha: np.ndarray | None) -> np.ndarray:
    """The model's output in the input's channels (of `shape`): grey averaged back, alpha upscaled by bicubic."""
    if (len(shape) == 2 or shape[-1] == 1) and output.shape[-1] != 1:
        output = output.mean(axis=-1, keepdims=True)
    if alpha is not None:
        alpha_image = Image.fromarray(alpha.astype(np.float32), mode="F")
        upscaled = np.asarray(alpha_image.resize(output.shape[1::-1], Image.BICUBIC), np.float32)
        output = np.concatenate([output, upscaled[..., None]], axis=-1)
    return output[..., 0] if len(shape) == 2 else output


def tiles_for(model, image_shape: tuple[int, ...], tile="auto", overlap: int = DEFAULT_OVERLAP) -> int:
    """How many forward passes (tiles) `restore_array` makes for an image of this shape."""
    tile = check_tiling(tile, overlap)
    size = choose_tile(model, image_shape[0], image_shape[1], tile)
    return 1 if size is None else count_tiles(image_shape[0], image_shape[1], size, overlap)


class ImageRestorer:
    """Restores numpy arrays or PIL images of any size with a DIN, one or many at a time.

    Example:
    >>> import numpy as np, keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
    >>> restorer = keras_din.ImageRestorer(model, tile=64)
    >>> [a.shape for a in restorer([np.zeros((5, 6, 3), np.uint8), np.zeros((3, 3), np.uint8)])]
    [(10, 12, 3), (6, 6)]
    """

    def __init__(
        self,
        model,
        tile: int | str | None = "auto",
        overlap: int = DEFAULT_OVERLAP,
        self_ensemble: bool = False,
        jpeg_constraint: bool = False,
    ):
        self.model = model
        self.tile = check_tiling(tile, overlap)  # once, here: not per image
        self.overlap = overlap
        self.self_ensemble = self_ensemble
        if jpeg_constraint and model.scale != 1:
            raise ConfigError(f"jpeg_constraint applies to same-size restoration; this model upscales ×{model.scale}.")
        # Whether `restore_files` keeps each JPEG input's result consistent with its file (`JpegConstraint`).
        self.jpeg_constraint = jpeg_constraint

    @classmethod
    def from_preset(
        cls, preset: str | None = None, dtype=None, jpeg_constraint: str = "auto", **options
    ) -> "ImageRestorer":
        """An `ImageRestorer` for a preset (any `DIN.from_preset` argument).

        `jpeg_constraint`: `"auto"` (on for a JPEG artifact-removal preset: see `uses_jpeg_constraint`), `"on"`
        or `"off"`.
        """
        from keras_din.model import DIN

        if preset is None:
            from keras_din.preset.registry import DEFAULT_PRESET

            preset = DEFAULT_PRESET
        constrained = uses_jpeg_constraint(preset, jpeg_constraint)  # checked before the model loads
        overrides = {} if dtype is None else {"dtype": dtype}
        return cls(DIN.from_preset(preset, **overrides), jpeg_constraint=constrained, **options)

    def restore(self, image, progress=None, jpeg: JpegConstraint | None = None):
        """Restores one image: a numpy array (same dtype back) or a PIL image (same mode back).

        `jpeg`: the `JpegConstraint` of the JPEG file the image was decoded from (see `restore_array`); with
        `jpeg_constraint`, a PIL image Pillow opened from a JPEG gives its own.
        """
        if isinstance(image, Image.Image):
            if jpeg is None and self.jpeg_constraint:
                jpeg = JpegConstraint.from_image(image)
            mode = image.mode
            array = np.asarray(image if mode in ("L", "RGB", "RGBA", "I;16") else image.convert("RGB"))
            restored = self.restore(array, progress, jpeg)
            return (
                Image.fromarray(restored)
                if mode in ("L", "RGB", "RGBA", "I;16")
                else Image.fromarray(restored).convert(mode)
            )
        return restore_array(
            self.model,
            image,
            self_ensemble=self.self_ensemble,
            tile=self.tile,
            overlap=self.overlap,
            progress=progress,
            jpeg=jpeg,
        )

    def __call__(self, images):
        """One image, or a list of them (each may have its own size)."""
        if isinstance(images, (list, tuple)):
            return [self.restore(image) for image in images]
        return self.restore(images)


@contextlib.contextmanager
def _reporting_warnings(source: Path, tqdm):
    """Warnings raised inside (reading or writing `source`), printed as one `warning: SOURCE: ...` line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for warning in caught:
                tqdm.write(f"warning: {source}: {warning.message}", file=sys.stderr)


def restore_files(
    restorer: ImageRestorer,
    inputs: list[str],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    suffix: str | None = None,
    progress: bool = True,
    log=print,
) -> list[tuple[Path, str]]:
    """Restores image files into `output_dir` (same names; `suffix`, a name in `OUTPUT_FORMATS`, changes the format).

    With `restorer.jpeg_constraint`, each JPEG input's result is kept consistent with its file.

    Never overwrites an input, nor an existing output unless `overwrite` (also not one that
    another process writes meanwhile); writes atomically; a broken or unreadable input is
    reported and skipped, and a loss of bit depth is reported as a warning. Returns the
    `(input, error)` pairs that failed.
    """
    from tqdm.auto import tqdm

    suffix = None if suffix is None else output_suffix(suffix, name="suffix")
    out_dir = Path(output_dir)
    files = expand_inputs(inputs)
    failures = []
    images_bar = tqdm(files, desc="images", unit="image", disable=not progress)
    for source in images_bar:
        target = out_dir / (source.stem + (suffix or source.suffix or ".png"))
        try:
            if source.exists() and target.resolve() == source.resolve():
                raise FileExistsError(f"{target} is the input itself; choose another output folder.")
            if target.exists() and not overwrite:
                raise FileExistsError(f"{str(target)!r} exists; pass --overwrite to replace it.")
            with _reporting_warnings(source, tqdm):
                array, info = read_image(source)
            jpeg = JpegConstraint.from_file(source) if restorer.jpeg_constraint else None
            total = tiles_for(restorer.model, array.shape, restorer.tile, restorer.overlap)
            if len(files) == 1 and total == 1 and not restorer.self_ensemble:
                predictor_for(restorer.model, eager_first_call=True)  # one forward pass: not worth tracing
            with tqdm(
                total=total, desc=source.name, unit="tile", leave=False, disable=not progress or total < 2
            ) as bar:
                result = restorer.restore(array, progress=bar, jpeg=jpeg)
            with _reporting_warnings(source, tqdm):
                info = resampled_info(info, array.shape, result.shape)  # it prints at the input's size
                write_image_atomic(result, target, overwrite=overwrite, info=info)
        except Exception as error:  # one bad image must not stop the batch: report it, go on
            failures.append((source, str(error)))
            tqdm.write(f"error: {source}: {error}", file=sys.stderr)
            continue
        log(f"{source} -> {target}")
    return failures
