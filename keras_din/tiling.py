"""Tiled inference: overlapping tiles, blended without seams, memory bounded by the tile size."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering `length`, neighbours overlapping by ≥ `overlap`.

    Example:
    >>> tile_starts(10, 4, 2)
    [0, 2, 4, 6]
    >>> tile_starts(3, 8, 2)
    [0]
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _axis_weights(length: int, start: int, tile: int, total: int, overlap: int, scale: int) -> np.ndarray:
    """Blend weights along one axis of one tile's output (length `tile * scale`).

    On an edge shared with a neighbour, the outer `overlap // 4` LR pixels get
    weight 0 (context only), the next `overlap − 2·(overlap // 4)` ramp linearly
    to 1; edges on the image border keep weight 1. Overlapping neighbours' weights
    therefore never vanish together, and every pixel kept has context on all sides.
    """
    out = np.arange(tile * scale, dtype=np.float64)
    weights = np.ones(tile * scale)
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    if start > 0:
        weights = np.minimum(weights, np.clip((out + 0.5 - margin * scale) / (ramp * scale), 0, 1))
    if start + tile < total:
        reverse = tile * scale - 1 - out
        weights = np.minimum(weights, np.clip((reverse + 0.5 - margin * scale) / (ramp * scale), 0, 1))
    return weights


def tiled_apply(
    run: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: int,
    tile: int,
    overlap: int,
    batch_size: int = 1,
    progress=None,
) -> np.ndarray:
    """Applies `run` (NHWC float32 → NHWC, ×`scale`) to one H×W×C image tile by tile.

    Tiles are `tile`×`tile` LR pixels (smaller images: one tile of the image's
    size), all of one size, neighbours overlapping by at least `overlap` pixels and
    blended with `_axis_weights`. Peak memory is that of `batch_size` tiles plus
    the output image.
    """
    if overlap < 0 or overlap >= tile:
        raise ValueError(f"Tile overlap must be in [0, tile), got overlap={overlap} for tile={tile}.")
    height, width = image.shape[:2]
    th, tw = min(tile, height), min(tile, width)
    rows, cols = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
    weight_rows = [_axis_weights(height, r, th, height, overlap, scale) for r in rows]
    weight_cols = [_axis_weights(width, c, tw, width, overlap, scale) for c in cols]
    output = None
    total = np.zeros((height * scale, width * scale, 1), np.float32)
    jobs = [(i, j) for i in range(len(rows)) for j in range(len(cols))]
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first : first + batch_size]
        batch = np.stack([image[rows[i] : rows[i] + th, cols[j] : cols[j] + tw] for i, j in chunk])
        results = run(batch)
        if output is None:
            output = np.zeros((height * scale, width * scale, results.shape[-1]), np.float32)
        for (i, j), result in zip(chunk, results):
            w = np.outer(weight_rows[i], weight_cols[j]).astype(np.float32)[..., None]
            window = (slice(rows[i] * scale, (rows[i] + th) * scale), slice(cols[j] * scale, (cols[j] + tw) * scale))
            output[window] += w * result
            total[window] += w
        if progress is not None:
            progress.update(len(chunk))
    return output / total


def count_tiles(height: int, width: int, tile: int, overlap: int) -> int:
    """How many tiles `tiled_apply` runs for an image of this size."""
    return len(tile_starts(height, min(tile, height), overlap)) * len(tile_starts(width, min(tile, width), overlap))
