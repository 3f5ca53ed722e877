"""Training data for `model.fit`: random LR/HR patch pairs from folders of images, any backend."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np

from keras_din._io.images import list_images, load_image
from keras_din.degradations import add_gaussian_noise, degrade, jpeg_compress, modcrop
from keras_din.errors import ConfigError


def _level_range(value, name: str, low: float, high: float) -> tuple[float, float] | None:
    """A fixed level `v` or a blind range `[lo, hi]` as `(lo, hi)`, checked against [low, high]."""
    if value is None:
        return None
    pair = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair):
        raise ConfigError(f"{name} must be a number or a [low, high] pair, got {value!r}.")
    if not low <= pair[0] <= pair[1] <= high:
        raise ConfigError(f"{name} must lie in [{low:g}, {high:g}] with low <= high, got {value!r}.")
    return float(pair[0]), float(pair[1])


def degrade_same_size(hr: np.ndarray, rng: np.random.Generator, noise_sigma=None, jpeg_quality=None) -> np.ndarray:
    """The float32 [0, 1] input of a same-size restoration task for one uint8 image.

    JPEG first (Pillow at quality `q`), then additive Gaussian noise N(0, σ/255) on the
    [0, 1] image, not clipped, as in the literature. Each of `noise_sigma` (0–255 scale) and
    `jpeg_quality` is a number or a `(low, high)` range drawn uniformly per call (integers
    for JPEG): one blind model for a range of levels.

    Example:
    >>> hr = np.full((8, 8, 3), 100, np.uint8)
    >>> degrade_same_size(hr, np.random.default_rng(0), noise_sigma=(0, 55)).dtype
    dtype('float32')
    """
    image = hr
    quality = _level_range(jpeg_quality, "jpeg_quality", 1, 95)
    if quality is not None:
        image = jpeg_compress(np.ascontiguousarray(image), int(rng.integers(quality[0], quality[1] + 1)))
    image = image.astype(np.float32) / 255.0
    sigma = _level_range(noise_sigma, "noise_sigma", 0, 255)
    if sigma is not None:
        level = sigma[0] if sigma[0] == sigma[1] else rng.uniform(*sigma)
        image = image + rng.normal(0.0, level / 255.0, image.shape).astype(np.float32)
    return image


class SRPatchDataset(keras.utils.PyDataset):
    """Random (LR, HR) patch batches for super-resolution or same-size restoration.

    HR images come from one or more folders; LR images are made once per image
    with the chosen degradation (`"BI"` MATLAB bicubic, `"BD"` blur-downsample,
    `"DN"` bicubic then noise σ 30 drawn afresh per patch) or read from paired
    folders (`lr_dirs`, same file names). For `scale=1`, `noise_sigma` and/or
    `jpeg_quality` (each a level or a blind `[low, high]` range) make the degraded
    input on the fly (`degrade_same_size`). Patches get random flips
    and 90° rotations. Batches are `float32` in [0, 1], channels_last (or
    channels_first), and depend only on `(seed, epoch, index)`: a resumed run
    sees the same data. Loading runs in parallel with `workers`.

    Args:
        hr_dirs: folder or list of folders of HR images.
        scale: 1, 2, 3, 4 or 8.
        patch_size: LR patch size (HR patches are `patch_size * scale`).
        batch_size: patches per batch.
        steps_per_epoch: batches per epoch.
        degradation: `"BI"`, `"BD"` or `"DN"` (ignored when `lr_dirs` is given or scale is 1).
        lr_dirs: paired LR folders, one per HR folder, matched by file name.
        noise_sigma: Gaussian noise σ (0–255 scale) added to the input, or a `[low, high]`
            range drawn per patch (scale 1).
        jpeg_quality: JPEG quality of the input, or a `[low, high]` range drawn per patch (scale 1).
        channels: 3 (RGB) or 1 (greyscale, Pillow's "L").
        augment: random flips and rotations.
        seed: the random seed.
        data_format: layout of the batches.

    Example:
    >>> data = SRPatchDataset("../shared/datasets/Set5/HR", scale=2, patch_size=16,
    ...                       batch_size=4, steps_per_epoch=2)  # doctest: +SKIP
    >>> lr, hr = data[0]  # doctest: +SKIP
    >>> lr.shape, hr.shape  # doctest: +SKIP
    ((4, 16, 16, 3), (4, 32, 32, 3))
    """

    def __init__(
        self,
        hr_dirs,
        scale: int,
        patch_size: int = 48,
        batch_size: int = 16,
        steps_per_epoch: int = 1000,
        degradation: str = "BI",
        lr_dirs=None,
        noise_sigma: float | None = None,
        jpeg_quality: int | None = None,
        augment: bool = True,
        seed: int = 0,
        data_format: str = "channels_last",
        channels: int = 3,
        workers: int = 1,
        use_multiprocessing: bool = False,
        max_queue_size: int = 10,
    ):
        super().__init__(workers=workers, use_multiprocessing=use_multiprocessing, max_queue_size=max_queue_size)
        hr_dirs = [hr_dirs] if isinstance(hr_dirs, (str, os.PathLike)) else list(hr_dirs)
        lr_dirs = None if lr_dirs is None else ([lr_dirs] if isinstance(lr_dirs, (str, os.PathLike)) else list(lr_dirs))
        if lr_dirs is not None and len(lr_dirs) != len(hr_dirs):
            raise ConfigError(
                f"lr_dirs has {len(lr_dirs)} folders but hr_dirs has {len(hr_dirs)}: pair them one to one."
            )
        self.scale = int(scale)
        self.patch_size = int(patch_size)
        self.batch_size = int(batch_size)
        self.steps_per_epoch = int(steps_per_epoch)
        self.degradation = degradation.upper()
        self.noise_sigma = _level_range(noise_sigma, "noise_sigma", 0, 255)
        self.jpeg_quality = _level_range(jpeg_quality, "jpeg_quality", 1, 95)
        self.channels = int(channels)
        self.augment = augment
        self.seed = int(seed)
        self.data_format = data_format
        self.epoch = 0
        self.pairs = []  # (lr uint8, hr uint8); LR is None where it is made on the fly
        hr_size = self.patch_size * self.scale
        for index, folder in enumerate(hr_dirs):
            for path in list_images(folder):
                hr = modcrop(load_image(path, self.channels), self.scale)
                if min(hr.shape[:2]) < hr_size:
                    continue  # smaller than one patch
                if lr_dirs is not None:
                    lr = load_image(Path(lr_dirs[index]) / path.name, self.channels)
                    expected = (hr.shape[0] // self.scale, hr.shape[1] // self.scale)
                    if lr.shape[:2] != expected:
                        raise ConfigError(f"LR image for {path} is {lr.shape[:2]}, expected {expected} (HR / scale).")
                elif self.scale == 1:
                    lr = None
                else:
                    # DN's noise is drawn per patch; its LR here is the noiseless BI image.
                    lr = degrade(hr, "BI" if self.degradation == "DN" else self.degradation, self.scale)
                self.pairs.append((lr, hr))
        if not self.pairs:
            raise ConfigError(f"No image in {hr_dirs} is at least {hr_size}×{hr_size} pixels (patch_size × scale).")

    def __len__(self) -> int:
        return self.steps_per_epoch

    def on_epoch_end(self):
        self.epoch += 1

    def _patch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        lr_full, hr_full = self.pairs[rng.integers(len(self.pairs))]
        p, s = self.patch_size, self.scale
        height, width = hr_full.shape[0] // s, hr_full.shape[1] // s
        y, x = rng.integers(height - p + 1), rng.integers(width - p + 1)
        hr = hr_full[y * s : (y + p) * s, x * s : (x + p) * s]
        if lr_full is None:
            lr = degrade_same_size(hr, rng, self.noise_sigma, self.jpeg_quality)
        else:
            lr = lr_full[y : y + p, x : x + p]
            if self.degradation == "DN" and self.scale > 1:
                lr = add_gaussian_noise(lr, 30.0, rng)
        if self.augment:
            k, flip = rng.integers(4), rng.integers(2)
            lr, hr = np.rot90(lr, k), np.rot90(hr, k)
            if flip:
                lr, hr = lr[:, ::-1], hr[:, ::-1]
        return lr, hr

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        lrs, hrs = zip(*(self._patch(rng) for _ in range(self.batch_size)))
        lr, hr = np.stack(lrs), np.stack(hrs).astype(np.float32) / 255.0
        lr = lr.astype(np.float32) / 255.0 if lr.dtype == np.uint8 else lr.astype(np.float32)
        if self.data_format == "channels_first":
            lr, hr = lr.transpose(0, 3, 1, 2), hr.transpose(0, 3, 1, 2)
        return lr, hr
