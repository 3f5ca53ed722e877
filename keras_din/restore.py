"""Restoring images with a DIN: arrays or PIL images of any size in, the same kind out.

`restore_array` / `ImageRestorer` handle dtypes (uint8, uint16, float), greyscale, RGB
and RGBA (alpha upscaled separately with bicubic), tiled inference for large images and
the x8 self-ensemble; `read_image` / `write_image_atomic` do the file side.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np
from PIL import Image, ImageOps

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
        raise ValueError(f"tile must be a positive number of LR pixels, 'auto' or None, got {tile!r}.")
    return int(tile)


def restore_array(
    model,
    image: np.ndarray,
    self_ensemble: bool = False,
    tile: int | str | None = "auto",
    overlap: int = DEFAULT_OVERLAP,
    tile_batch_size: int = 1,
    progress=None,
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
    alpha = None
    if pixels.shape[-1] == 4 and model.in_channels == 3:
        pixels, alpha = pixels[..., :3], pixels[..., 3]
    channels = pixels.shape[-1]
    if channels == 1 and model.in_channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    elif channels != model.in_channels:
        raise ValueError(f"The image has {channels} channels but the model expects {model.in_channels}.")

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
    if channels == 1 and output.shape[-1] != 1:
        output = output.mean(axis=-1, keepdims=True)
    if alpha is not None:
        alpha_image = Image.fromarray(alpha.astype(np.float32), mode="F")
        upscaled = np.asarray(alpha_image.resize(output.shape[1::-1], Image.BICUBIC), np.float32)
        output = np.concatenate([output, upscaled[..., None]], axis=-1)
    if grey:
        output = output[..., 0]
    return _from_unit_float(output, dtype)


def tiles_for(model, image_shape: tuple[int, ...], tile="auto", overlap: int = DEFAULT_OVERLAP) -> int:
    """How many forward passes (tiles) `restore_array` makes for an image of this shape."""
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

    def __init__(self, model, tile: int | str | None = "auto", overlap: int = DEFAULT_OVERLAP, self_ensemble: bool = False):
        self.model = model
        self.tile = tile
        self.overlap = overlap
        self.self_ensemble = self_ensemble

    @classmethod
    def from_preset(cls, preset: str | None = None, dtype=None, **options) -> "ImageRestorer":
        """An `ImageRestorer` for a preset (any `DIN.from_preset` argument)."""
        from keras_din.model import DIN

        if preset is None:
            from keras_din.preset_registry import DEFAULT_PRESET

            preset = DEFAULT_PRESET
        overrides = {} if dtype is None else {"dtype": dtype}
        return cls(DIN.from_preset(preset, **overrides), **options)

    def restore(self, image, progress=None):
        """Restores one image: a numpy array (same dtype back) or a PIL image (same mode back)."""
        if isinstance(image, Image.Image):
            mode = image.mode
            array = np.asarray(image if mode in ("L", "RGB", "RGBA", "I;16") else image.convert("RGB"))
            restored = self.restore(array, progress)
            return Image.fromarray(restored) if mode in ("L", "RGB", "RGBA", "I;16") else Image.fromarray(restored).convert(mode)
        return restore_array(
            self.model, image, self_ensemble=self.self_ensemble, tile=self.tile, overlap=self.overlap, progress=progress
        )

    def __call__(self, images):
        """One image, or a list of them (each may have its own size)."""
        if isinstance(images, (list, tuple)):
            return [self.restore(image) for image in images]
        return self.restore(images)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Reads an image file, EXIF orientation applied, as uint8/uint16 L, RGB or RGBA, plus save metadata.

    The metadata dict holds what `write_image_atomic` can carry over: ICC profile,
    EXIF (orientation reset), DPI.
    """
    with Image.open(path) as image:
        image.load()
        info = {key: image.info[key] for key in ("icc_profile", "dpi") if key in image.info}
        exif = image.getexif()
        image = ImageOps.exif_transpose(image)
        if exif:
            exif[0x0112] = 1  # the orientation has been applied
            info["exif"] = exif.tobytes()
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image, dtype=np.uint16), info
        if image.mode == "I":
            return np.clip(np.asarray(image), 0, 65535).astype(np.uint16), info
        if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
        elif image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        return np.asarray(image), info


def write_image_atomic(array: np.ndarray, path: str | os.PathLike, overwrite: bool = False, info: dict | None = None) -> Path:
    """Writes an image so that `path` is either absent or complete, never half-written.

    The format follows the suffix; `info` (from `read_image`) carries ICC profile,
    EXIF and DPI over where the format allows. 16-bit greyscale is kept; 16-bit
    colour is written as PNG 16-bit only via greyscale, otherwise reduced to 8 bits.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Unknown image format for {str(path)!r}: use .png, .jpg, .bmp, .tif or .webp.")
    if array.dtype == np.uint16 and (array.ndim == 3 or fmt not in ("PNG", "TIFF")):
        array = (array >> 8).astype(np.uint8)  # Pillow writes 16-bit greyscale only
    image = Image.fromarray(array)
    if fmt in ("JPEG", "BMP") and image.mode == "RGBA":
        image = image.convert("RGB")
    options = {k: v for k, v in (info or {}).items() if k in ("icc_profile", "exif", "dpi")}
    if fmt == "BMP":
        options.pop("exif", None)
        options.pop("icc_profile", None)
    if fmt == "JPEG":
        options["quality"] = 95
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        image.save(temporary, format=fmt, **options)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions.
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns, in order, without repeats.

    A name that matches nothing is kept, so that it is reported as unreadable.
    """
    found: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif any(ch in name for ch in "*?[") and not path.exists():
            found += sorted(Path(p) for p in glob.glob(name, recursive=True) if Path(p).is_file())
        else:
            found.append(path)
    unique, seen = [], set()
    for path in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def restore_files(
    restorer: ImageRestorer,
    inputs: list[str],
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    suffix: str | None = None,
    progress: bool = True,
    log=print,
) -> list[tuple[Path, str]]:
    """Restores image files into `output_dir` (same names; `suffix` changes the format).

    Never overwrites an input, nor an existing output unless `overwrite`; writes
    atomically; a broken or unreadable input is reported and skipped. Returns the
    `(input, error)` pairs that failed.
    """
    from tqdm.auto import tqdm

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
            array, info = read_image(source)
            total = tiles_for(restorer.model, array.shape, restorer.tile, restorer.overlap)
            with tqdm(total=total, desc=source.name, unit="tile", leave=False, disable=not progress or total < 2) as bar:
                result = restorer.restore(array, progress=bar)
            write_image_atomic(result, target, overwrite=overwrite, info=info)
        except Exception as error:  # one bad image must not stop the batch: report it, go on
            failures.append((source, str(error)))
            tqdm.write(f"error: {source}: {error}", file=sys.stderr)
            continue
        log(f"{source} -> {target}")
    return failures
