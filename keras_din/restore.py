"""Restoring images with a DIN: arrays or PIL images of any size in, the same kind out.

`restore_array` / `ImageRestorer` handle dtypes (uint8, uint16, float), greyscale, RGB
and RGBA (alpha upscaled separately with bicubic), tiled inference for large images and
the x8 self-ensemble; `read_image` / `write_image_atomic` do the file side.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from keras_din.inference import predictor_for
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

    Runs the model's compiled inference forward (`keras_din.inference`), made once per model.
    """
    return predictor_for(model)(batch)


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


def check_tiling(tile, overlap, names: tuple[str, str] = ("tile", "overlap")) -> int | str | None:
    """Validates a tile size and overlap once, before any image: returns the tile as an int, `"auto"` or `None`.

    `tile` is a positive int (or a string of digits), `"auto"`, or `None`/`"none"`; `overlap` is an
    int ≥ 0 smaller than the tile (for `"auto"`, than `DEFAULT_TILE`), which `keras_din.tiling` needs
    for tiles to advance. `names` name the two settings in the messages (the CLI passes its options).

    Example:
    >>> check_tiling("64", 8), check_tiling("none", 8), check_tiling("auto", 32)
    (64, None, 'auto')
    >>> check_tiling(8, 8, names=("--tile", "--overlap"))
    Traceback (most recent call last):
    ...
    ValueError: --overlap (8) must be smaller than --tile (8): tiles overlapping by a whole tile never advance.
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
            raise ValueError(f"{tile_name} must be a positive number of LR pixels, 'auto' or 'none', got {tile!r}.")
        value = int(value)
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"{overlap_name} must be a whole number of LR pixels, 0 or more, got {overlap!r}.")
    if value is not None and overlap >= (DEFAULT_TILE if value == "auto" else value):
        bound = f"the automatic tile size ({DEFAULT_TILE})" if value == "auto" else f"{tile_name} ({value})"
        raise ValueError(
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
    tile = check_tiling(tile, overlap)
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

    def __init__(self, model, tile: int | str | None = "auto", overlap: int = DEFAULT_OVERLAP, self_ensemble: bool = False):
        self.model = model
        self.tile = check_tiling(tile, overlap)  # once, here: not per image
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


class ImageDepthWarning(UserWarning):
    """An image file's samples could not be kept at their depth (read or written with fewer bits)."""


_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
# A TIFF's own tags describe its layout (size, strips, compression...) and must not be copied onto
# another image: of its first IFD, only these descriptive text tags travel as EXIF (with the Exif
# and GPS sub-IFDs where Pillow reads them): ImageDescription, Make, Model, Software, DateTime,
# Artist, HostComputer, Copyright.
_DESCRIPTIVE_TAGS = (0x010E, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x013C, 0x8298)
_SUB_IFDS = (0x8769, 0x8825)  # Exif, GPS
# Pillow modes whose colour space is not RGB/grey: their ICC profile does not fit the RGB result.
_OTHER_COLOUR_SPACES = ("CMYK", "LAB", "HSV", "YCbCr")


def _descriptive(tag: int, value) -> bool:
    """Whether a descriptive tag's value describes the picture (not tifffile's or ImageJ's layout record)."""
    if not value:
        return False
    if tag == 0x010E and isinstance(value, str):
        text = value.lstrip()
        return not (text.startswith("{") and '"shape"' in text) and not text.startswith("ImageJ=")
    return True


def _is_tiff(path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) in _TIFF_SIGNATURES


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Applies an EXIF/TIFF orientation (1–8) to an H×W[×C] array, as `ImageOps.exif_transpose` does."""
    swap = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731 - Pillow's TRANSPOSE
    operations = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: swap,
        6: lambda a: swap(a)[:, ::-1],  # ROTATE_270 (90° clockwise)
        7: lambda a: swap(a)[::-1, ::-1],
        8: lambda a: swap(a)[::-1],  # ROTATE_90 (counter-clockwise)
    }
    return np.ascontiguousarray(operations[orientation](array)) if orientation in operations else array


def _pillow_metadata(image: Image.Image, exif: Image.Exif) -> dict:
    """ICC profile, DPI and EXIF (orientation reset) of an image Pillow opened, for `write_image_atomic`."""
    info = {}
    if image.info.get("icc_profile") and image.mode not in _OTHER_COLOUR_SPACES:
        info["icc_profile"] = image.info["icc_profile"]
    tiff = image.format == "TIFF"
    # Pillow reports dpi=(1, 1) for a TIFF without resolution tags: keep only a resolution the file states.
    if "dpi" in image.info and (not tiff or 0x011A in image.tag_v2):
        info["dpi"] = image.info["dpi"]
    if tiff:
        info["compression"] = image.info.get("compression", "raw")
        clean = Image.Exif()
        for tag in _DESCRIPTIVE_TAGS:
            if _descriptive(tag, exif.get(tag)):
                clean[tag] = exif[tag]
        for tag in _SUB_IFDS:
            try:
                sub = exif.get_ifd(tag)
            except Exception:  # an unreadable sub-IFD is dropped, not fatal
                sub = {}
            if sub:
                clean.get_ifd(tag).update(sub)
                clean[tag] = clean.get_ifd(tag)
        exif = clean
    elif exif:
        exif[0x0112] = 1  # the orientation has been applied
    if exif:
        info["exif"] = exif.tobytes()
    return info


class _Undecodable(Exception):
    """tifffile cannot decode a deep TIFF's samples (a compression it needs imagecodecs for)."""


def _read_deep_tiff(path) -> tuple[np.ndarray, dict] | None:
    """A TIFF whose samples Pillow would cut to 8 bits or cannot read (16-bit colour, float), via tifffile.

    `None` for other files, which Pillow reads; `_Undecodable` if tifffile cannot decode the samples.
    """
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception:  # not a TIFF tifffile reads: Pillow reads it or names the problem
        return None
    with tif:
        try:
            page = tif.pages[0]
        except Exception:
            return None
        dtype = None if page.dtype is None else np.dtype(page.dtype)
        photometric, samples = (-1 if page.photometric is None else int(page.photometric)), page.samplesperpixel
        if dtype is None or not (dtype == np.uint16 or dtype.kind == "f") or page.axes not in ("YX", "YXS", "SYX"):
            return None
        grey = photometric == 1 and (samples == 2 or (samples == 1 and dtype.kind == "f"))  # MINISBLACK
        if not (grey or (photometric == 2 and samples in (3, 4))):  # RGB(A)
            return None
        try:
            array = page.asarray()
        except Exception as error:  # e.g. LZW without imagecodecs
            compression = getattr(page.compression, "name", page.compression)
            raise _Undecodable(f"{dtype.name} samples, {compression} compression: {error}") from error
        tags = page.tags
        orientation = tags.valueof(0x0112, 1)
        info: dict = {"compression": "raw" if int(page.compression) == 1 else "compressed"}
        icc = tags.valueof(0x8773)
        if icc:
            info["icc_profile"] = bytes(icc)
        x, y, unit = tags.valueof(0x011A), tags.valueof(0x011B), tags.valueof(0x0128, 2)
        if x and y and int(unit) in (2, 3):  # per inch, per centimetre
            ratio = lambda v: float(v[0]) / float(v[1]) if isinstance(v, tuple) else float(v)  # noqa: E731
            info["dpi"] = tuple(ratio(v) * (1.0 if int(unit) == 2 else 2.54) for v in (x, y))
        exif = Image.Exif()
        for tag in _DESCRIPTIVE_TAGS:
            value = tags.valueof(tag)
            if isinstance(value, str) and _descriptive(tag, value):
                exif[tag] = value
        if len(exif):
            info["exif"] = exif.tobytes()
    if page.axes == "SYX":
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha -> RGBA, as Pillow's LA is read
        array = np.concatenate([array[..., :1].repeat(3, axis=-1), array[..., 1:]], axis=-1)
    if dtype.kind == "f":
        array = array.astype(np.float32) if dtype.itemsize < 4 else array
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 1):
            warnings.warn(
                "float samples outside [0, 1]: restoring takes floats as [0, 1] and clips the rest.",
                ImageDepthWarning,
                stacklevel=3,
            )
    return _orient(array, int(orientation)), info


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Reads an image file, EXIF orientation applied, as L, RGB or RGBA samples, plus save metadata.

    Samples are uint8 or uint16; a float TIFF gives float32 (or float64), taken as [0, 1]. 16-bit
    colour and float TIFFs are read with tifffile (Pillow would keep 8 bits); CMYK and other colour
    spaces are converted to RGB (their ICC profile is dropped, it would not fit). A 16-bit colour
    PNG is read by Pillow, as 8 bits. The metadata dict holds what `write_image_atomic` can carry
    over: ICC profile, EXIF (orientation reset; of a TIFF, only its descriptive tags), DPI, and for
    a TIFF whether it was compressed.
    """
    undecodable = None
    if _is_tiff(path):
        try:
            deep = _read_deep_tiff(path)
        except _Undecodable as error:
            undecodable = str(error)
        else:
            if deep is not None:
                return deep
    try:
        array, info = _read_with_pillow(path)
    except Exception as error:
        if undecodable is None:
            raise
        raise ValueError(
            f"cannot decode this TIFF ({undecodable}); installing imagecodecs lets tifffile decode it."
        ) from error
    if undecodable is not None and array.dtype == np.uint8:
        warnings.warn(
            f"read with 8 bits per sample: tifffile cannot decode it ({undecodable}); "
            "installing imagecodecs lets tifffile read it at full depth.",
            ImageDepthWarning,
            stacklevel=2,
        )
    return array, info


def _read_with_pillow(path) -> tuple[np.ndarray, dict]:
    with Image.open(path) as image:
        image.load()
        exif = image.getexif()
        transposed = ImageOps.exif_transpose(image)
        info = _pillow_metadata(image, exif)
        image = transposed
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return np.asarray(image, dtype=np.uint16), info
        if image.mode == "I":
            return np.clip(np.asarray(image), 0, 65535).astype(np.uint16), info
        if image.mode == "F":
            return np.asarray(image, dtype=np.float32), info
        if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            image = image.convert("RGBA")
        elif image.mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        return np.asarray(image), info


def _to_8_bits(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)


def _fit_to_format(array: np.ndarray, fmt: str, path: Path) -> np.ndarray:
    """Samples a Pillow writer of `fmt` takes: 16-bit greyscale stays 16-bit in PNG, the rest 8 bits."""
    if array.dtype == np.uint8:
        return array
    grey = array.ndim == 2
    if fmt == "PNG" and grey:
        if array.dtype == np.uint16:
            return array
        return np.round(np.clip(array, 0.0, 1.0) * 65535.0).astype(np.uint16)
    kind = "16-bit" if array.dtype == np.uint16 else "float"
    reason = "16-bit PNG is written for greyscale only" if fmt == "PNG" else f"{fmt} holds 8 bits"
    warnings.warn(
        f"{path.name}: {kind} {'greyscale' if grey else 'colour'} written with 8 bits per sample "
        f"({reason}; TIFF keeps {kind} samples).",
        ImageDepthWarning,
        stacklevel=3,
    )
    return _to_8_bits(array)


def _write_tiff(array: np.ndarray, path: str, info: dict) -> None:
    """A TIFF by tifffile, any depth: deflate-compressed unless the input TIFF was not; ICC, DPI, text tags."""
    import tifffile

    colour = array.ndim == 3
    options: dict = {"photometric": "rgb" if colour else "minisblack", "metadata": None, "software": False}
    if colour and array.shape[-1] == 4:
        options["extrasamples"] = ["unassalpha"]
    if info.get("compression") != "raw":
        options["compression"] = "zlib"  # Adobe deflate: lossless, read everywhere, no extra codec needed
        if array.dtype.kind in "ui":
            options["predictor"] = True  # horizontal differencing (the float predictor needs imagecodecs)
    if info.get("dpi"):
        options["resolution"] = tuple(float(v) for v in info["dpi"][:2])
        options["resolutionunit"] = "INCH"
    if info.get("icc_profile"):
        options["iccprofile"] = info["icc_profile"]
    if info.get("exif"):
        exif = Image.Exif()
        exif.load(info["exif"])
        texts = [(tag, exif.get(tag)) for tag in _DESCRIPTIVE_TAGS]
        options["extratags"] = [(tag, "s", 0, v, True) for tag, v in texts if isinstance(v, str) and v and v.isascii()]
    tifffile.imwrite(path, array, **options)


def _publish(temporary: str, path: Path, overwrite: bool) -> None:
    """Gives the finished `temporary` the name `path` at once; without `overwrite`, only if `path` is still free.

    The check and the naming are one step (a hard link fails on an existing name), so two writers
    racing for one name cannot replace each other's file.
    """
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if os.name == "nt":
                os.rename(temporary, path)  # refuses an existing name on Windows
                return
            # Claim the name exclusively (an empty file, briefly), then put the finished file in its place.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.replace(temporary, path)
            return
    except FileExistsError:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.") from None
    os.unlink(temporary)


def write_image_atomic(array: np.ndarray, path: str | os.PathLike, overwrite: bool = False, info: dict | None = None) -> Path:
    """Writes an image so that `path` is either absent or complete, never half-written.

    The format follows the suffix. Without `overwrite` an existing `path` is refused, also one
    that appears while this image is being encoded (the file is written under a temporary name,
    then hard-linked to `path`, which fails if the name is taken; on a file system without hard
    links the name is first claimed by an exclusive create, an empty file until the finished one
    replaces it). `info` (from `read_image`) carries ICC profile, EXIF and DPI over where the
    format allows. TIFF (written by tifffile) keeps 8-bit, 16-bit and float samples, grey, RGB or
    RGBA, and of the EXIF only the descriptive text tags; PNG keeps 16-bit greyscale; otherwise
    samples are written with 8 bits, with an `ImageDepthWarning` when that loses depth.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"Unknown image format for {str(path)!r}: use .png, .jpg, .bmp, .tif or .webp.")
    info = info or {}
    if fmt != "TIFF":
        image = Image.fromarray(_fit_to_format(np.asarray(array), fmt, path))
        if fmt in ("JPEG", "BMP") and image.mode == "RGBA":
            image = image.convert("RGB")
        options = {k: v for k, v in info.items() if k in ("icc_profile", "exif", "dpi")}
        if fmt == "BMP":
            options.pop("exif", None)
            options.pop("icc_profile", None)
        if fmt == "JPEG":
            options["quality"] = 95
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        if fmt == "TIFF":
            _write_tiff(np.asarray(array), temporary, info)
        else:
            image.save(temporary, format=fmt, **options)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions.
        _publish(temporary, path, overwrite)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = tuple(suffix[1:] for suffix in IMAGE_SUFFIXES)


def output_suffix(fmt: str, name: str = "format") -> str:
    """The file suffix for an output format name (`png`, `.PNG`, `tif`...); anything else, a path included, is refused.

    Example:
    >>> output_suffix("PNG"), output_suffix(".tif")
    ('.png', '.tif')
    >>> output_suffix("x/y.png", name="--format")
    Traceback (most recent call last):
    ...
    ValueError: --format must be one of png, jpg, jpeg, bmp, tif, tiff, webp (a format name, not a path), got 'x/y.png'.
    """
    text = str(fmt)
    key = (text[1:] if text.startswith(".") else text).lower()
    if key not in OUTPUT_FORMATS:
        raise ValueError(f"{name} must be one of {', '.join(OUTPUT_FORMATS)} (a format name, not a path), got {fmt!r}.")
    return "." + key


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
            total = tiles_for(restorer.model, array.shape, restorer.tile, restorer.overlap)
            with tqdm(total=total, desc=source.name, unit="tile", leave=False, disable=not progress or total < 2) as bar:
                result = restorer.restore(array, progress=bar)
            with _reporting_warnings(source, tqdm):
                write_image_atomic(result, target, overwrite=overwrite, info=info)
        except Exception as error:  # one bad image must not stop the batch: report it, go on
            failures.append((source, str(error)))
            tqdm.write(f"error: {source}: {error}", file=sys.stderr)
            continue
        log(f"{source} -> {target}")
    return failures
