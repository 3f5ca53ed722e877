"""PSNR and SSIM as the SR literature computes them: Y channel (BT.601), border crop, uint8 outputs.

Numpy functions for evaluation, and `keras.metrics.Metric` versions for `model.fit`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

# MATLAB rgb2ycbcr (ITU-R BT.601), Y row, for R, G, B in 0…255.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray, round_to_uint8: bool = False) -> np.ndarray:
    """Y of MATLAB's `rgb2ycbcr` on a uint8 (0–255) image, as float64; greyscale passes through.

    `round_to_uint8=True` gives what MATLAB returns for uint8 input (rounded Y).

    Example:
    >>> rgb_to_y(np.array([[[255, 255, 255]]], np.uint8)).round(3).tolist()
    [[235.0]]
    """
    image = np.asarray(image)
    if image.ndim == 2 or image.shape[-1] == 1:
        y = image.reshape(image.shape[:2]).astype(np.float64)
    else:
        y = 16.0 + image[..., :3].astype(np.float64) @ _Y_WEIGHTS
    return np.round(y) if round_to_uint8 else y


def _crop(image: np.ndarray, border: int) -> np.ndarray:
    return image[border : image.shape[0] - border, border : image.shape[1] - border] if border else image


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0, peak: float = 255.0) -> float:
    """PSNR in dB of two single-channel images (e.g. Y) after cropping `border` pixels per side."""
    a, b = _crop(np.asarray(reference, np.float64), border), _crop(np.asarray(test, np.float64), border)
    if a.shape != b.shape:
        raise ValueError(f"PSNR of differently shaped images: {a.shape} vs {b.shape}.")
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering with a symmetric 1-D window along both axes."""
    n = len(window)
    rows = sum(window[i] * image[i : image.shape[0] - n + 1 + i] for i in range(n))
    return sum(window[i] * rows[:, i : rows.shape[1] - n + 1 + i] for i in range(n))


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0, peak: float = 255.0) -> float:
    """Wang et al.'s `ssim_index`: 11×11 Gaussian (σ 1.5), K = (0.01, 0.03), 'valid', mean of the map."""
    a, b = _crop(np.asarray(reference, np.float64), border), _crop(np.asarray(test, np.float64), border)
    if a.shape != b.shape:
        raise ValueError(f"SSIM of differently shaped images: {a.shape} vs {b.shape}.")
    window = _gaussian_window()
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
    var_a = _filter_valid(a * a, window) - mu_a**2
    var_b = _filter_valid(b * b, window) - mu_b**2
    cov = _filter_valid(a * b, window) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def blocking_effect_factor(image: np.ndarray, block_size: int = 8) -> float:
    """Yim & Bovik's blocking effect factor of one single-channel image (0–255 units).

    The mean squared difference across the 8×8 block boundaries minus that across the
    other neighbouring pixels, weighted by `log2(B) / log2(min(H, W))`, and 0 when the
    boundaries are no sharper than the rest. Boundary counts as in the literature's code
    (`H · (W // B − 1)` horizontal, `W · (H // B − 1)` vertical).
    """
    image = np.asarray(image, np.float64)
    height, width = image.shape
    columns = np.arange(block_size - 1, width - 1, block_size)
    rows = np.arange(block_size - 1, height - 1, block_size)
    horizontal = (image[:, :-1] - image[:, 1:]) ** 2  # difference of column j and j + 1
    vertical = (image[:-1, :] - image[1:, :]) ** 2
    boundary = horizontal[:, columns].sum() + vertical[rows, :].sum()
    inside = horizontal.sum() + vertical.sum() - boundary
    n_boundary = height * (width // block_size - 1) + width * (height // block_size - 1)
    n_inside = height * (width - 1) + width * (height - 1) - n_boundary
    d_boundary, d_inside = boundary / n_boundary, inside / n_inside
    if d_boundary <= d_inside:
        return 0.0
    return float(np.log2(block_size) / np.log2(min(height, width)) * (d_boundary - d_inside))


def psnr_b(reference: np.ndarray, test: np.ndarray, peak: float = 255.0) -> float:
    """PSNR-B (Yim & Bovik 2011): PSNR with the test image's blocking effect factor added to the MSE.

    Single-channel images; the JPEG artifact-removal literature reports it on greyscale sets.

    Example:
    >>> clean = np.tile(np.arange(16.0), (16, 1))
    >>> round(psnr_b(clean, clean + 1), 2)
    48.13
    """
    a, b = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"PSNR-B needs two single-channel images of one shape, got {a.shape} and {b.shape}.")
    total = np.mean((a - b) ** 2) + blocking_effect_factor(b)
    return float("inf") if total == 0 else float(10 * np.log10(peak**2 / total))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A [0, 1] float image as uint8: ×255, clipped, rounded (the authors' `quantize`)."""
    return np.clip(np.round(np.asarray(image, np.float64) * 255.0), 0, 255).astype(np.uint8)


def y_psnr_ssim(hr: np.ndarray, sr: np.ndarray, scale: int) -> tuple[float, float]:
    """PSNR and SSIM on the Y channel of two uint8 images, cropping `scale` pixels at each border."""
    y_hr, y_sr = rgb_to_y(hr), rgb_to_y(sr)
    return psnr(y_hr, y_sr, border=scale), ssim(y_hr, y_sr, border=scale)


def _y_uint8_tensor(images):
    """[0, 1] NHWC tensors → Y (0–255) of the uint8-rounded image, NHW1, in float32."""
    q = ops.round(ops.clip(ops.cast(images, "float32"), 0.0, 1.0) * 255.0)
    if q.shape[-1] == 1:
        return q
    weights = ops.convert_to_tensor(_Y_WEIGHTS.astype("float32").reshape(3, 1))
    return 16.0 + ops.matmul(q[..., :3], weights)


class _YMetric(keras.metrics.Mean):
    """Mean of a per-image score on the Y channel of uint8-rounded images, `border` pixels cropped."""

    def __init__(self, border: int = 0, name: str = "y_metric", **kwargs):
        super().__init__(name=name, **kwargs)
        self.border = int(border)

    def _score(self, reference, test):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        b = self.border
        a, p = _y_uint8_tensor(y_true), _y_uint8_tensor(y_pred)
        if b:
            a, p = a[:, b:-b, b:-b], p[:, b:-b, b:-b]
        return super().update_state(self._score(a, p), sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "border": self.border}


@keras.saving.register_keras_serializable(package="keras_din")
class YPSNR(_YMetric):
    """Mean Y-channel PSNR (dB) of uint8-rounded outputs, `border` pixels cropped (default: the scale).

    For `model.fit(..., metrics=[YPSNR(border=4)])` with channels_last images in [0, 1].
    """

    def __init__(self, border: int = 0, name: str = "psnr", **kwargs):
        super().__init__(border=border, name=name, **kwargs)

    def _score(self, reference, test):
        mse = ops.mean(ops.square(reference - test), axis=(1, 2, 3))
        return 10.0 * ops.log10(255.0**2 / ops.maximum(mse, 1e-10))


@keras.saving.register_keras_serializable(package="keras_din")
class YSSIM(_YMetric):
    """Mean Y-channel SSIM (Wang et al., 11×11 Gaussian σ 1.5, 'valid') of uint8-rounded outputs."""

    def __init__(self, border: int = 0, name: str = "ssim", **kwargs):
        super().__init__(border=border, name=name, **kwargs)

    def _score(self, reference, test):
        g = _gaussian_window().astype("float32")
        kernel = ops.convert_to_tensor(np.outer(g, g).reshape(11, 11, 1, 1))

        def blur(x):
            return ops.conv(x, kernel, padding="valid")

        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        mu_a, mu_b = blur(reference), blur(test)
        var_a = blur(reference * reference) - mu_a**2
        var_b = blur(test * test) - mu_b**2
        cov = blur(reference * test) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        return ops.mean(ssim_map, axis=(1, 2, 3))
