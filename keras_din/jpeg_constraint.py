"""JPEG's quantisation constraint: a restored image kept consistent with the JPEG file it came from.

A JPEG file stores each 8×8 block of its luma (Y) plane as DCT coefficients rounded to multiples
of the file's quantisation table `q`: coefficient `k` of the original block lay in the cell
`[(c_k - 1/2) q_k, (c_k + 1/2) q_k]` around the stored `c_k q_k`. The images whose blocks fall
in those cells form a convex set that holds the original, so clipping a restored image's
coefficients into their cells (its projection onto that set; the 8×8 DCT is orthonormal) never
moves it further from the original: the quantisation constraint of projection-based JPEG
deblocking (Zakhor 1992; Yang, Galatsanos and Katsaggelos 1993). After a network it undoes what
the file rules out, e.g. the fine detail a blind model smooths away in a quality-90 JPEG.

Only luma is constrained. A colour image's Y (JPEG's full-range BT.601) is projected and the
change added to R, G and B alike (which keeps Cb and Cr). The cells are read from the decoded
image itself (its rounded 8-bit samples put a few coefficients of fine tables in a neighbouring
cell), the blocks cut by the right and bottom edges are left as they are, and the result is
clipped to [0, 1]: the guarantee is exact only up to those.

Example:
>>> import io, numpy as np
>>> from PIL import Image
>>> clean = np.random.default_rng(0).integers(0, 256, (16, 24), np.uint8)
>>> buffer = io.BytesIO(); Image.fromarray(clean).save(buffer, format="JPEG", quality=90)
>>> constraint = JpegConstraint.from_bytes(buffer.getvalue())
>>> decoded = np.asarray(Image.open(buffer), np.float32)[..., None] / 255
>>> restored = constraint.project(np.full_like(decoded, 0.5), decoded)  # a flat guess, pulled back
>>> bool(np.abs(restored - decoded).max() < np.abs(0.5 - decoded).max())
True
"""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from keras_din._io.images import orient
from keras_din.errors import ConfigError

# The orthonormal 8-point DCT-II (JPEG's), row k = frequency k.
# float32 throughout: a photo's planes are large and float32 keeps their DCTs within 1e-3 of 255.
_DCT = np.array(
    [[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * x + 1) * k * np.pi / 16) for x in range(8)] for k in range(8)],
    np.float32,
)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # JPEG's (JFIF) Y of R, G, B
# EXIF orientations 6 and 8 undo each other; every other one undoes itself.
_INVERSE_ORIENTATION = {6: 8, 8: 6}
CHOICES = ("auto", "on", "off")


def uses_jpeg_constraint(preset: str, choice: str = "auto") -> bool:
    """Whether restoring with `preset` keeps JPEG inputs consistent with their files: `"on"`, `"off"`, or
    `"auto"`: on for a registered JPEG artifact-removal preset (by name or Hub handle) and for a preset
    folder whose `metadata.json` says `"task": "jpeg"` (the bundled presets' folders, and a model saved
    with `save_to_preset(folder, metadata={"task": "jpeg"})`); off for anything else, a `.keras` training
    checkpoint included (it records no task: pass `"on"` for one of a JPEG run).

    Example:
    >>> uses_jpeg_constraint("din_small_jpeg"), uses_jpeg_constraint("din_small_denoise")
    (True, False)
    """
    from keras_din.preset.format import METADATA_FILE, PresetError, read_preset_json
    from keras_din.preset.registry import PRESETS

    if choice not in CHOICES:
        raise ConfigError(f"jpeg_constraint {choice!r}: use one of {', '.join(CHOICES)}.")
    if choice != "auto":
        return choice == "on"
    if any(info.task == "jpeg" and preset in (info.name, info.hf_handle) for info in PRESETS.values()):
        return True
    if not isinstance(preset, (str, os.PathLike)) or not Path(preset).is_dir():
        return False
    try:
        metadata = read_preset_json(Path(preset), METADATA_FILE)
    except PresetError:
        return False  # no readable metadata: loading the preset says what is wrong with it
    return isinstance(metadata, dict) and metadata.get("task") == "jpeg"


@dataclasses.dataclass(frozen=True)
class JpegConstraint:
    """The luma quantisation table of one JPEG file and the EXIF orientation it was read with.

    Attributes:
        table: the 8×8 luma quantisation table, natural (row-major) order.
        orientation: the EXIF orientation (1–8) applied when the file was read (`read_image` applies it).
    """

    table: np.ndarray
    orientation: int = 1

    def __post_init__(self):
        table = np.asarray(self.table, np.float32)
        if table.shape != (8, 8) or not np.all(table >= 1):
            raise ConfigError(f"A JPEG quantisation table is 8×8 with entries of at least 1, got {self.table!r}.")
        if self.orientation not in range(1, 9):
            raise ConfigError(f"An EXIF orientation is 1 to 8, got {self.orientation!r}.")
        object.__setattr__(self, "table", table)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "JpegConstraint | None":
        """The constraint of a JPEG file read with its EXIF orientation applied (as `read_image` reads it).

        `None` for any other file, or a JPEG whose luma it cannot name. A JPEG counts when it is
        greyscale or YCbCr colour with full-resolution luma (not a CMYK or an Adobe RGB-coded one).
        """
        try:
            with Image.open(path) as image:
                constraint = cls.from_image(image)
                orientation = image.getexif().get(0x0112, 1)
        except OSError:  # not an image Pillow opens: no JPEG to be consistent with
            return None
        if constraint is None or orientation not in range(2, 9):
            return constraint
        return dataclasses.replace(constraint, orientation=int(orientation))

    @classmethod
    def from_bytes(cls, data: bytes) -> "JpegConstraint | None":
        """The constraint of JPEG-encoded bytes (see `from_file`)."""
        return cls.from_file(io.BytesIO(data))

    @classmethod
    def from_image(cls, image: Image.Image) -> "JpegConstraint | None":
        """The constraint of a JPEG as Pillow opened it (its EXIF orientation not applied); else `None`."""
        if image.format != "JPEG" or image.mode not in ("L", "RGB") or image.info.get("adobe_transform") == 0:
            return None
        layers = getattr(image, "layer", None) or []
        if not layers or not getattr(image, "quantization", None):
            return None
        _, horizontal, vertical, table_index = layers[0]
        if (horizontal, vertical) != (max(c[1] for c in layers), max(c[2] for c in layers)):
            return None  # luma sampled below the full resolution: its blocks are not the image's 8×8 grid
        table = np.asarray(image.quantization[table_index])
        if table.size != 64 or table.min() < 1:  # a damaged or hostile table: no cells to trust
            return None
        return cls(table.reshape(8, 8))

    def project(self, restored: np.ndarray, decoded: np.ndarray) -> np.ndarray:
        """`restored` with its luma's 8×8 DCT coefficients clipped into the cells of `decoded`, the JPEG's pixels.

        Both are H×W×C float arrays in [0, 1] (C 1 or 3; H×W for greyscale), oriented as read;
        the result has `restored`'s shape, float32, clipped to [0, 1].
        """
        restored, decoded = np.asarray(restored, np.float32), np.asarray(decoded, np.float32)
        if restored.shape != decoded.shape or restored.ndim not in (2, 3):
            raise ConfigError(
                f"The JPEG constraint needs a restored image of the JPEG's own size: got {restored.shape} for a "
                f"{decoded.shape} JPEG (it applies to same-size restoration, not to super-resolution)."
            )
        channels = 1 if restored.ndim == 2 else restored.shape[-1]
        if channels not in (1, 3):
            raise ConfigError(f"The JPEG constraint takes greyscale or RGB images, got {channels} channels.")
        back = _INVERSE_ORIENTATION.get(self.orientation, self.orientation)
        restored_y, decoded_y = (orient(_luma(a), back) * np.float32(255) for a in (restored, decoded))
        change = orient(_projected(restored_y, decoded_y, self.table) - restored_y, self.orientation) / np.float32(255)
        result = restored + (change if restored.ndim == 2 else change[..., None])
        return np.clip(result, 0.0, 1.0)


def _luma(image: np.ndarray) -> np.ndarray:
    """An H×W plane: a greyscale image's samples, a colour one's JPEG luma."""
    if image.ndim == 2:
        return image
    return image[..., 0] if image.shape[-1] == 1 else image @ _LUMA


def _projected(plane: np.ndarray, decoded: np.ndarray, table: np.ndarray) -> np.ndarray:
    """`plane` (0–255) with the DCT of each complete 8×8 block clipped into the cells of `decoded`'s."""
    rows, columns = plane.shape[0] // 8, plane.shape[1] // 8
    if rows == 0 or columns == 0:
        return plane

    def coefficients(samples):
        blocks = samples[: rows * 8, : columns * 8].reshape(rows, 8, columns, 8).transpose(0, 2, 1, 3)
        return _DCT @ (blocks - np.float32(128)) @ _DCT.T

    stored = np.round(coefficients(decoded) / table)
    clipped = np.clip(coefficients(plane), (stored - 0.5) * table, (stored + 0.5) * table)
    result = plane.copy()
    result[: rows * 8, : columns * 8] = (
        (_DCT.T @ clipped @ _DCT + 128.0).transpose(0, 2, 1, 3).reshape(rows * 8, columns * 8)
    )
    return result
