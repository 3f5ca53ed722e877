"""Image files: reading (orientation, metadata, 16-bit and float TIFF), atomic writing, and listing.

`read_image` / `write_image_atomic` keep what a restored image should keep (ICC profile, DPI,
descriptive EXIF, sample depth where the format holds it); `load_image` reads the plain uint8
RGB or greyscale samples that datasets are scored and trained on; `IMAGE_SUFFIXES` is the one
list of the files keras-din reads as images.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from keras_din._io.atomic import atomic_path
from keras_din.errors import ConfigError, ImageError

# The image files keras-din reads (folders are listed by these suffixes) and the formats it writes.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
OUTPUT_FORMATS = tuple(suffix[1:] for suffix in IMAGE_SUFFIXES)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; `FileNotFoundError` for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Image folder {str(folder)!r} does not exist.")
    files = _images_in(folder)
    if not files:
        raise FileNotFoundError(f"Image folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    return files


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: str | os.PathLike, channels: int | None = 3) -> np.ndarray:
    """An image file's uint8 samples: H×W×3 RGB (`channels=3`), H×W×1 BT.601 luma (1), or as stored (`None`:
    H×W for a greyscale file, else H×W×3 RGB). What datasets are trained and scored on; no orientation.
    """
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (greyscale), 3 (RGB) or None (as stored), got {channels!r}.")
    with Image.open(path) as image:
        if channels is None:
            return np.asarray(image if image.mode == "L" else image.convert("RGB"))
        grey = np.asarray(image.convert("L" if channels == 1 else "RGB"))
        return grey[..., None] if channels == 1 else grey


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


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
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
    return orient(array, int(orientation)), info


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
            raise ImageError(f"not an image file that can be read ({type(error).__name__}: {error})") from error
        raise ImageError(
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


def resampled_info(info: dict, source_shape: tuple[int, ...], result_shape: tuple[int, ...]) -> dict:
    """`info` (from `read_image`) for an image resampled from `source_shape` to `result_shape` (height, width first).

    The resolution (`dpi`, and EXIF's XResolution and YResolution where the file has them) is multiplied by
    the change in pixel count per axis, so the result prints at the size the input did: a 300 dpi photo
    super-resolved ×2 is a 600 dpi one. Same-size restoration changes nothing.

    >>> resampled_info({"dpi": (72.0, 96.0)}, (100, 50, 3), (400, 200, 3))["dpi"]
    (288.0, 384.0)
    """
    factors = (result_shape[1] / source_shape[1], result_shape[0] / source_shape[0])  # x, y
    if factors == (1.0, 1.0):
        return info
    info = dict(info)
    if info.get("dpi"):
        info["dpi"] = tuple(float(value) * factor for value, factor in zip(info["dpi"][:2], factors))
    if info.get("exif"):
        exif = Image.Exif()
        exif.load(info["exif"])
        for tag, factor in zip((0x011A, 0x011B), factors):  # XResolution, YResolution
            with contextlib.suppress(KeyError, TypeError, ValueError, ZeroDivisionError):  # absent or no number
                value = float(exif[tag])
                if 0 < value < math.inf:
                    exif[tag] = value * factor
        info["exif"] = exif.tobytes()
    return info


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


def write_image_atomic(
    array: np.ndarray, path: str | os.PathLike, overwrite: bool = False, info: dict | None = None
) -> Path:
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
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"Unknown image format for {str(path)!r}: use .png, .jpg, .bmp, .tif or .webp.")
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
        if fmt == "PNG":
            # zlib level 3 instead of Pillow's 6: the 20 ×2 results of the mixed-photo benchmark encode in
            # 0.58 s instead of 1.99 s (2-core AMX Xeon) for 5.4 MB instead of 5.1 MB; the pixels are the same.
            options["compress_level"] = 3
    with atomic_path(path, overwrite) as temporary:
        if fmt == "TIFF":
            _write_tiff(np.asarray(array), str(temporary), info)
        else:
            image.save(temporary, format=fmt, **options)
    return path


def output_suffix(fmt: str, name: str = "format") -> str:
    """The file suffix for an output format name (`png`, `.PNG`, `tif`...); anything else, a path included, is refused.

    Example:
    >>> output_suffix("PNG"), output_suffix(".tif")
    ('.png', '.tif')
    >>> output_suffix("x/y.png", name="--format")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_din.errors.ConfigError: --format must be one of png, ... (a format name, not a path), got 'x/y.png'.
    """
    text = str(fmt)
    key = (text[1:] if text.startswith(".") else text).lower()
    if key not in OUTPUT_FORMATS:
        raise ConfigError(
            f"{name} must be one of {', '.join(OUTPUT_FORMATS)} (a format name, not a path), got {fmt!r}."
        )
    return "." + key


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns, in order, without repeats.

    A name that matches nothing is kept, so that it is reported as unreadable.
    """
    found: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            found += _images_in(path)
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
