"""Image degradations of the SR literature: MATLAB bicubic, BD blur, noise, JPEG, mod-crop.

All functions take and return numpy arrays, H×W or H×W×C. uint8 in gives uint8 out
(rounded once at the end, as MATLAB does); float in gives float64 out.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

DEGRADATIONS = ("BI", "BD", "DN")


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Keeps the top-left `H − H mod scale` rows and `W − W mod scale` columns.

    Example:
    >>> modcrop(np.zeros((7, 10, 3)), 3).shape
    (6, 9, 3)
    """
    height, width = image.shape[:2]
    return image[: height - height % scale, : width - width % scale]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = −0.5, as MATLAB's `imresize`."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _contributions(in_length: int, out_length: int, scale: float, antialias: bool):
    """Weights and source indices of MATLAB's `imresize` along one axis (symmetric borders)."""
    kernel_width = 4.0
    if scale < 1 and antialias:  # widen the kernel when shrinking: MATLAB's antialiasing
        kernel = lambda x: scale * _cubic(scale * x)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices - 1, 2 * in_length).astype(np.int64)]
    used = np.any(weights != 0, axis=0)
    return weights[:, used], indices[:, used]


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float, antialias: bool) -> np.ndarray:
    weights, indices = _contributions(image.shape[axis], out_length, scale, antialias)
    moved = np.moveaxis(image, axis, 0)
    out = np.zeros((out_length, *moved.shape[1:]), dtype=np.float64)
    for tap in range(weights.shape[1]):
        w = weights[:, tap].reshape((-1,) + (1,) * (moved.ndim - 1))
        out += w * moved[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(
    image: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB's `imresize(image, scale, 'bicubic')`, antialiased when shrinking.

    Keys cubic (a = −0.5), kernel widened by 1/scale when shrinking, symmetric
    border handling, the axis with the smaller scale resized first. uint8 input
    is computed in float64 and rounded to uint8 once at the end, as MATLAB does.

    Args:
        image: H×W or H×W×C array (uint8, or float in any range).
        scale: resize factor (e.g. 1/4 or 2); or give `output_shape`.
        output_shape: (height, width) of the result.
        antialias: MATLAB's `'Antialiasing'` option (default true).

    Example:
    >>> imresize(np.full((8, 8), 100, np.uint8), 1 / 4).tolist()
    [[100, 100], [100, 100]]
    """
    image = np.asarray(image)
    in_shape = image.shape[:2]
    if output_shape is None:
        if scale is None:
            raise ValueError("imresize needs scale or output_shape.")
        scales = (float(scale), float(scale))
        output_shape = tuple(int(np.ceil(n * scale)) for n in in_shape)
    else:
        scales = tuple(o / i for o, i in zip(output_shape, in_shape))
    if min(output_shape) < 1:
        raise ValueError(f"imresize to {output_shape} from {in_shape}: the result would be empty.")
    result = image.astype(np.float64)
    for axis in np.argsort(scales, kind="stable"):
        result = _resize_axis(result, int(axis), output_shape[axis], scales[axis], antialias)
    if image.dtype == np.uint8:
        return np.clip(np.round(result), 0, 255).astype(np.uint8)
    return result


def gaussian_kernel(size: int = 7, sigma: float = 1.6) -> np.ndarray:
    """Normalised 2-D Gaussian, as MATLAB's `fspecial('gaussian', size, sigma)`."""
    radius = (size - 1) / 2
    x = np.arange(size) - radius
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def _filter_replicate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB `imfilter(image, kernel, 'replicate')` (correlation, same size)."""
    k = kernel.shape[0] // 2
    pad = [(k, k), (k, k)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image.astype(np.float64), pad, mode="edge")
    out = np.zeros(image.shape, dtype=np.float64)
    height, width = image.shape[:2]
    for i in range(kernel.shape[0]):
        for j in range(kernel.shape[1]):
            out += kernel[i, j] * padded[i : i + height, j : j + width]
    return out


def _finish(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    if like.dtype == np.uint8:
        return np.clip(np.round(result), 0, 255).astype(np.uint8)
    return result


def degrade_bd(image: np.ndarray, scale: int = 3) -> np.ndarray:
    """BD: 7×7 Gaussian blur (σ = 1.6, replicate borders), then keep every `scale`-th pixel.

    As RDN/SRFBN/DIN's `Prepare_TestData_HR_LR.m`; the sampling starts at the
    first pixel (MATLAB `1:scale:end`).
    """
    blurred = _filter_replicate(np.asarray(image), gaussian_kernel(7, 1.6))
    return _finish(blurred[::scale, ::scale], np.asarray(image))


def degrade_bi(image: np.ndarray, scale: int) -> np.ndarray:
    """BI: MATLAB bicubic downscaling by `scale` (antialiased)."""
    return imresize(image, 1 / scale)


def add_gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Adds N(0, σ²) noise with σ on the 0–255 scale (uint8 in: rounded and clipped; float in [0, 1]: σ/255)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return _finish(image + rng.normal(0.0, sigma, image.shape), image)
    return image + rng.normal(0.0, sigma / 255.0, image.shape)


def degrade_dn(image: np.ndarray, scale: int, rng: np.random.Generator, sigma: float = 30.0) -> np.ndarray:
    """DN: BI downscaling, then Gaussian noise of σ = 30 (0–255 scale)."""
    return add_gaussian_noise(degrade_bi(image, scale), sigma, rng)


def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    """A uint8 image (H×W, H×W×1 or H×W×3) encoded as JPEG at `quality` (1–95) by Pillow; colour in 4:2:0.

    Example:
    >>> jpeg_encode(np.full((8, 8, 1), 128, np.uint8), 10)[:2]
    b'\\xff\\xd8'
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"JPEG encoding needs a uint8 image, got {image.dtype}.")
    single = image.ndim == 3 and image.shape[-1] == 1
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if single else image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg_compress(image: np.ndarray, quality: int) -> np.ndarray:
    """Encodes and decodes a uint8 image as JPEG at `quality` (1–95) with Pillow (`jpeg_encode`).

    Colour images use Pillow's default 4:2:0 chroma subsampling; H×W×1 stays H×W×1.

    Example:
    >>> jpeg_compress(np.full((8, 8, 1), 128, np.uint8), 10).shape
    (8, 8, 1)
    """
    data = jpeg_encode(image, quality)
    with Image.open(io.BytesIO(data)) as decoded:
        out = np.asarray(decoded)
    return out[..., None] if np.ndim(image) == 3 and np.shape(image)[-1] == 1 else out


def degrade(image: np.ndarray, kind: str, scale: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Applies a named SR degradation (`"BI"`, `"BD"`, `"DN"`) to a mod-cropped HR image."""
    kind = kind.upper()
    if kind == "BI":
        return degrade_bi(image, scale)
    if kind == "BD":
        return degrade_bd(image, scale)
    if kind == "DN":
        return degrade_dn(image, scale, rng if rng is not None else np.random.default_rng())
    raise ValueError(f"Unknown degradation {kind!r}: use one of {DEGRADATIONS}.")
