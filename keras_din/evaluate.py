"""Benchmark evaluation as in the SR literature: PSNR/SSIM tables, JSON reports, visual comparisons.

Protocols (see ../shared/datasets/README.md):

* `bicubic` rows use the protocol that reproduces the published Bicubic rows: Y (BT.601,
  rounded to uint8) first, MATLAB bicubic down and up on Y/255 in float64, SR rounded.
* model rows follow EDSR/RDN/DIN: LR = MATLAB bicubic of the uint8 RGB HR (rounded to
  uint8), the network's output quantised to uint8, scored on Y without rounding.

Both crop `scale` pixels at every border.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from keras_din._io.atomic import atomic_path
from keras_din._io.images import list_images, load_image
from keras_din.data import degrade_same_size
from keras_din.degradations import degrade, imresize, jpeg_encode, modcrop
from keras_din.errors import ConfigError
from keras_din.jpeg_constraint import JpegConstraint, uses_jpeg_constraint
from keras_din.metrics import psnr, psnr_b, rgb_to_y, ssim, to_uint8, y_psnr_ssim

DEFAULT_DATASETS = ("Set5", "Set14", "B100", "Urban100")
# Same-size restoration tasks: the degradation option, its default levels, and the default sets
# (colour, greyscale) of the literature.
RESTORATION_TASKS = {
    "denoise": {"option": "noise_sigma", "levels": (15, 25, 50), "datasets": {3: ("CBSD68", "Kodak24"), 1: ()}},
    "jpeg": {
        "option": "jpeg_quality",
        "levels": (10, 20, 30, 40),
        "datasets": {3: ("LIVE1",), 1: ("Classic5", "LIVE1_gray")},
    },
}


def load_pairs(
    folder: str | os.PathLike, scale: int, degradation: str = "BI"
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`(name, HR, LR)` uint8 triples of a folder of HR images: mod-cropped HR, degraded LR."""
    rng = np.random.default_rng(0)  # DN's noise: fixed so that scores are repeatable
    return [
        (p.stem, hr, degrade(hr, degradation, scale, rng))
        for p in list_images(folder)
        for hr in [modcrop(load_image(p, channels=None), scale)]
    ]


def restoration_pairs(
    folder: str | os.PathLike,
    channels: int | None = 3,
    noise_sigma: float | None = None,
    jpeg_quality: int | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`(name, clean uint8, degraded)` triples of a folder for a same-size restoration task.

    The literature's protocols: JPEG by Pillow at `jpeg_quality` (degraded is uint8); noise
    N(0, σ/255) on the [0, 1] image, not clipped, from seed 0 for every image (degraded is
    float32). Images are read as RGB (`channels` 3), Pillow's BT.601 luma (1), or as
    stored (`None`: greyscale files as 1 channel, others as RGB).
    """
    pairs = []
    for path in list_images(folder):
        clean = load_image(path, channels or _stored_channels(path))
        degraded = degrade_same_size(clean, np.random.default_rng(0), noise_sigma, jpeg_quality)
        if noise_sigma is None:  # JPEG alone: the decoded image is exactly uint8
            degraded = to_uint8(degraded)
        pairs.append((path.stem, clean, degraded))
    return pairs


def restoration_scores(clean: np.ndarray, restored: np.ndarray, with_psnr_b: bool = False) -> tuple[float, ...]:
    """PSNR over all channels, SSIM (and PSNR-B) averaged over channels, no border.

    The restoration protocol; a float `restored` image is taken as [0, 1] and quantised to uint8 first.
    """
    clean, restored = np.atleast_3d(clean), np.atleast_3d(_quantised(restored))
    channels = range(clean.shape[-1])
    scores = (psnr(clean, restored), float(np.mean([ssim(clean[..., c], restored[..., c]) for c in channels])))
    if with_psnr_b:
        scores += (float(np.mean([psnr_b(clean[..., c], restored[..., c]) for c in channels])),)
    return scores


def _quantised(image: np.ndarray) -> np.ndarray:
    """A uint8 image as it is; a float one (taken as [0, 1]) quantised to uint8."""
    return image if image.dtype == np.uint8 else to_uint8(image)


def _stored_channels(path: Path) -> int:
    with Image.open(path) as image:
        return 1 if image.mode in ("L", "I;16", "I") else 3


def bicubic_scores(hr: np.ndarray, scale: int) -> tuple[float, float, np.ndarray]:
    """PSNR, SSIM and the bicubic Y image of one HR image under the published-table protocol."""
    y = rgb_to_y(hr, round_to_uint8=True)
    sr = np.clip(np.round(imresize(imresize(y / 255.0, 1 / scale), scale) * 255.0), 0, 255)
    return psnr(y, sr, border=scale), ssim(y, sr, border=scale), sr


def _restored(model, pairs, self_ensemble: bool, progress=None):
    """Yields `(HR, SR)` per pair, SR being the model's output for the LR image (uint8 for a uint8 LR image)."""
    from keras_din.restore import restore_array

    for _, hr, lr in pairs:
        yield hr, restore_array(model, lr, self_ensemble=self_ensemble)
        if progress is not None:
            progress.update(1)


def _means(scores: list[tuple[float, float]]) -> tuple[float, float]:
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def score_model(model, pairs, scale: int, self_ensemble: bool = False, progress=None) -> tuple[float, float]:
    """Mean PSNR and SSIM of `model` over `(name, HR, LR)` pairs.

    Super-resolution (`scale` > 1) is scored on Y with a `scale`-pixel border; same-size
    restoration (`scale` 1) on every channel with no border (`restoration_scores`).
    """
    score = restoration_scores if scale == 1 else lambda hr, sr: y_psnr_ssim(hr, sr, scale)
    return _means([score(hr, sr) for hr, sr in _restored(model, pairs, self_ensemble, progress)])


def _detail_crop(hr: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the `size`×`size` window with the most gradient energy (a telling crop)."""
    y = rgb_to_y(hr)
    energy = np.abs(np.diff(y, axis=0))[:, :-1] + np.abs(np.diff(y, axis=1))[:-1, :]
    step = max(size // 4, 1)
    best, corner = -1.0, (0, 0)
    for top in range(0, max(energy.shape[0] - size, 0) + 1, step):
        for left in range(0, max(energy.shape[1] - size, 0) + 1, step):
            value = energy[top : top + size, left : left + size].sum()
            if value > best:
                best, corner = value, (top, left)
    return corner


def _as_rgb(image: np.ndarray) -> Image.Image:
    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).convert("RGB")


def comparison_figure(
    panels: list[tuple[str, list[tuple[str, np.ndarray]]]], path: str | os.PathLike, zoom: int = 2
) -> Path:
    """Writes a PNG: one row per `(title, [(label, uint8 crop), ...])`, crops enlarged ×`zoom`."""
    label_height, pad = 16, 6
    rows = []
    for title, crops in panels:
        tiles = [_as_rgb(c).resize((c.shape[1] * zoom, c.shape[0] * zoom), Image.NEAREST) for _, c in crops]
        width = sum(t.width for t in tiles) + pad * (len(tiles) + 1)
        height = max(t.height for t in tiles) + 2 * label_height + 2 * pad
        row = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(row)
        draw.text((pad, 2), title, fill="black")
        x = pad
        for tile, (label, _) in zip(tiles, crops):
            row.paste(tile, (x, label_height + pad))
            draw.text((x, label_height + pad + tile.height + 2), label, fill="black")
            x += tile.width + pad
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    top = 0
    for row in rows:
        sheet.paste(row, (0, top))
        top += row.height
    with atomic_path(path) as temporary:
        sheet.save(temporary, format="PNG")
    return Path(path)


def evaluate(
    preset: str = "bicubic",
    data_root: str | os.PathLike = "../shared/datasets",
    datasets=DEFAULT_DATASETS,
    scales=None,
    self_ensemble: bool = False,
    json_path: str | os.PathLike | None = None,
    figure_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[dict]:
    """PSNR/SSIM rows (`dataset`, `scale`, `psnr`, `ssim`, `images`) for a preset or `"bicubic"`.

    A model preset is evaluated at its own scale (`scales` None; asking for another is an error);
    `"bicubic"` at every scale asked for (`scales` None: 2, 3 and 4). Optionally writes the JSON report and a PNG
    of visual comparisons (HR crop, bicubic, model) per dataset and scale.

    Example:
    >>> rows = evaluate("bicubic", datasets=["Set5"], scales=[4])  # doctest: +SKIP
    >>> round(rows[0]["psnr"], 2)  # doctest: +SKIP
    28.42
    """
    from tqdm.auto import tqdm

    model = None
    if preset != "bicubic":
        from keras_din.model import DIN

        model = DIN.from_preset(preset)
        scales = [model.scale] if scales is None else scales
        wrong = [s for s in scales if s != model.scale]
        if wrong:
            raise ConfigError(f"Preset {preset!r} is a ×{model.scale} model; it cannot be evaluated at scale {wrong}.")
    scales = (2, 3, 4) if scales is None else scales
    rows, panels = [], []
    for name in datasets:
        folder = Path(data_root) / name / "HR"
        for scale in scales:
            pairs = load_pairs(folder, scale)
            bar = tqdm(total=len(pairs), desc=f"{name} x{scale}", unit="image", disable=not progress, leave=False)
            scores, first_sr = [], None
            if model is None:
                for _, hr, _ in pairs:
                    scores.append(bicubic_scores(hr, scale)[:2])
                    bar.update(1)
            else:
                for hr, sr in _restored(model, pairs, self_ensemble, bar):
                    scores.append(y_psnr_ssim(hr, sr, scale))
                    first_sr = sr if first_sr is None else first_sr
            bar.close()
            value = _means(scores)
            rows.append({"dataset": name, "scale": scale, "psnr": value[0], "ssim": value[1], "images": len(pairs)})
            if figure_path is not None:
                panels.append(_panel(name, scale, pairs[0], first_sr))
    if json_path is not None:
        report = {"preset": preset, "self_ensemble": self_ensemble, "results": rows}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if figure_path is not None:
        comparison_figure(panels, figure_path)
    return rows


def evaluate_restoration(
    preset: str,
    task: str,
    levels=None,
    data_root: str | os.PathLike = "../shared/datasets",
    datasets=None,
    self_ensemble: bool = False,
    json_path: str | os.PathLike | None = None,
    figure_path: str | os.PathLike | None = None,
    progress: bool = True,
    jpeg_constraint: str = "auto",
) -> list[dict]:
    """Same-size restoration scores of a scale-1 preset (or `"input"`: the degraded input itself).

    `task` is `"denoise"` (levels: noise σ on 0–255, default 15, 25, 50; sets CBSD68, Kodak24)
    or `"jpeg"` (levels: Pillow qualities, default 10, 20, 30, 40; sets LIVE1 for a colour
    model, Classic5 and LIVE1_gray for a greyscale one). Each row holds `dataset`, `task`,
    `level`, `images`, the model's `psnr`, `ssim` (and `psnr_b` for JPEG) and the same for the
    degraded input (`input_psnr`, ...). PSNR on every channel, no border. `jpeg_constraint`
    (`"auto"`, `"on"`, `"off"`, as for `keras-din restore`: auto is on for the JPEG presets) keeps
    each JPEG task output consistent with its JPEG file, as `keras-din restore` does; those rows
    say `"jpeg_constraint": true` and give the network's own output's scores too (`network_psnr`, ...).

    Example:
    >>> rows = evaluate_restoration("din_small_denoise", "denoise", [25], datasets=["CBSD68"])  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    if task not in RESTORATION_TASKS:
        raise ConfigError(f"Unknown restoration task {task!r}: use one of {sorted(RESTORATION_TASKS)}.")
    spec = RESTORATION_TASKS[task]
    constrained = preset != "input" and uses_jpeg_constraint(preset, jpeg_constraint)
    if constrained and task != "jpeg":
        raise ConfigError(f"jpeg_constraint 'on' applies to the jpeg task, not to {task}.")
    model, channels = None, None
    if preset != "input":
        from keras_din.model import DIN

        model = DIN.from_preset(preset)
        if model.scale != 1:
            raise ConfigError(
                f"Preset {preset!r} is a ×{model.scale} super-resolution model; {task} needs a scale-1 model."
            )
        channels = model.in_channels
    levels = spec["levels"] if levels is None else tuple(levels)
    datasets = spec["datasets"][channels or 3] if datasets is None else tuple(datasets)
    with_psnr_b = task == "jpeg"
    rows, panels = [], []
    for name in datasets:
        for level in levels:
            pairs = restoration_pairs(Path(data_root) / name / "HR", channels, **{spec["option"]: level})
            bar = tqdm(total=len(pairs), desc=f"{name} {task} {level}", unit="image", disable=not progress, leave=False)
            inputs = [restoration_scores(clean, degraded, with_psnr_b) for _, clean, degraded in pairs]
            outputs, networks, first = [], [], None
            if model is None:
                bar.update(len(pairs))
            elif constrained:  # restore's steps: the network's [0, 1] image, projected, then quantised
                # Pillow's tables depend on the quality alone: one constraint serves the whole set
                jpeg = JpegConstraint.from_bytes(jpeg_encode(pairs[0][1], level))
                unit = [(stem, clean, degraded / np.float32(255)) for stem, clean, degraded in pairs]
                for (clean, network), (_, _, decoded) in zip(_restored(model, unit, self_ensemble, bar), unit):
                    restored = jpeg.project(network, decoded)
                    networks.append(restoration_scores(clean, network, with_psnr_b))
                    outputs.append(restoration_scores(clean, restored, with_psnr_b))
                    first = to_uint8(restored) if first is None else first
            else:
                for clean, restored in _restored(model, pairs, self_ensemble, bar):
                    outputs.append(restoration_scores(clean, restored, with_psnr_b))
                    first = restored if first is None else first
            bar.close()
            row = {"dataset": name, "task": task, "level": level, "images": len(pairs)}
            if with_psnr_b and model is not None:
                row["jpeg_constraint"] = constrained
            keys = ("psnr", "ssim", "psnr_b")[: 2 + with_psnr_b]
            for key, values in zip(keys, zip(*inputs)):
                row[f"input_{key}"] = float(np.mean(values))
            for key, values in zip(keys, zip(*outputs)):
                row[key] = float(np.mean(values))
            for key, values in zip(keys, zip(*networks)):
                row[f"network_{key}"] = float(np.mean(values))
            rows.append(row)
            if figure_path is not None:
                panels.append(_restoration_panel(name, task, level, pairs[0], first))
    if json_path is not None:
        report = {"preset": preset, "task": task, "self_ensemble": self_ensemble, "results": rows}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if figure_path is not None:
        comparison_figure(panels, figure_path)
    return rows


def _restoration_panel(dataset: str, task: str, level, pair, restored: np.ndarray | None):
    name, clean, degraded = pair
    degraded = _quantised(degraded)
    size = min(96, *clean.shape[:2])
    top, left = _detail_crop(clean, size)
    window = (slice(top, top + size), slice(left, left + size))
    label = {"denoise": f"noise sigma {level}", "jpeg": f"JPEG q {level}"}[task]  # the default font has no σ
    crops = [("clean", clean[window]), (f"{label} {psnr(clean, degraded):.2f} dB", degraded[window])]
    if restored is not None:
        restored = _quantised(restored)
        crops.append((f"DIN {psnr(clean, restored):.2f} dB", restored[window]))
    return f"{dataset} {label} - {name}", crops


def _panel(dataset: str, scale: int, pair, sr: np.ndarray | None):
    name, hr, lr = pair
    size = min(96, *hr.shape[:2]) // scale * scale
    top, left = _detail_crop(hr, size)
    window = (slice(top, top + size), slice(left, left + size))
    bicubic = imresize(lr, scale)
    crops = [("HR", hr[window]), (f"bicubic {y_psnr_ssim(hr, bicubic, scale)[0]:.2f} dB", bicubic[window])]
    if sr is not None:
        crops.append((f"DIN {y_psnr_ssim(hr, sr, scale)[0]:.2f} dB", sr[window]))
    return f"{dataset} x{scale} - {name}", crops
