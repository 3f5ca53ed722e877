"""Tiled inference: coverage and blending (hypothesis), exactness for local operators, real DIN images."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_din
from keras_din.inference import bucketed_length
from keras_din.restore import ImageRestorer, choose_tile, restore_array
from keras_din.tiling import count_tiles, tile_starts, tiled_apply


def _upscale_blur(radius: int, scale: int):
    """A local operator: box blur of the given radius (edge-replicated), then nearest ×scale."""

    def run(batch):
        padded = np.pad(batch, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
        h, w = batch.shape[1:3]
        size = 2 * radius + 1
        blurred = sum(padded[:, i : i + h, j : j + w] for i in range(size) for j in range(size)) / size**2
        return blurred.repeat(scale, axis=1).repeat(scale, axis=2)

    return run


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 70),
    width=st.integers(1, 70),
    tile=st.integers(4, 24),
    overlap_fraction=st.floats(0, 0.9),
    scale=st.sampled_from([1, 2, 3]),
    batch=st.integers(1, 3),
)
def test_tiles_cover_every_pixel_and_reproduce_a_pointwise_operator(
    height, width, tile, overlap_fraction, scale, batch
):
    overlap = min(int(tile * overlap_fraction), tile - 1)
    image = np.random.default_rng(height * 100 + width).random((height, width, 2)).astype(np.float32)
    run = _upscale_blur(0, scale)
    out = tiled_apply(run, image, scale, tile, overlap, batch_size=batch)
    assert out.shape == (height * scale, width * scale, 2)
    np.testing.assert_allclose(out, run(image[None])[0], atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(height=st.integers(1, 60), width=st.integers(1, 60), radius=st.integers(1, 3))
def test_overlap_with_enough_context_is_exact_for_local_operators(height, width, radius):
    # Weights vanish within overlap // 4 of an inner tile edge: that much context suffices.
    overlap = 4 * radius + 4
    tile = overlap + 5
    image = np.random.default_rng(height + 7 * width).random((height, width, 1)).astype(np.float32)
    run = _upscale_blur(radius, 2)
    np.testing.assert_allclose(tiled_apply(run, image, 2, tile, overlap), run(image[None])[0], atol=1e-5)


def test_tile_bookkeeping():
    assert tile_starts(100, 40, 8) == [0, 32, 60]
    assert count_tiles(100, 30, 40, 8) == 3
    with pytest.raises(ValueError, match="overlap=8 for tile=8"):
        tiled_apply(lambda b: b, np.zeros((9, 9, 1)), 1, 8, 8)


@pytest.fixture(scope="module")
def local_din():
    """A DIN without attention (one branch): a local operator, so tiling must be exact."""
    model = keras_din.DIN(version="conference", scale=2, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.2, weight.shape).astype("float32"))
    return model


def test_receptive_field_then_exact_tiled_din(local_din):
    impulse = np.zeros((61, 61, 3), np.float32)
    impulse[30, 30] = 1.0
    base = restore_array(local_din, np.zeros_like(impulse), tile=None)
    response = np.abs(restore_array(local_din, impulse, tile=None) - base).max(axis=-1) > 0
    rows = np.nonzero(response.any(axis=1))[0]
    radius = int(np.ceil(max(60 - rows.min(), rows.max() - 61) / 2))  # in LR pixels
    assert 15 <= radius <= 30
    overlap = 4 * radius + 4
    # Sizes on the bucket ladder: on JAX, restore pads other sizes with mirrored pixels, which
    # changes the edges by an amount that depends on the size (see keras_din.inference).
    image = np.random.default_rng(1).random((144, 96, 3)).astype(np.float32)
    whole = restore_array(local_din, image, tile=None)
    tiled = restore_array(local_din, image, tile=bucketed_length(overlap + 20), overlap=overlap)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_auto_tiling_and_the_restorer_api(local_din):
    assert choose_tile(local_din, 64, 64, "auto") is None
    assert choose_tile(local_din, 4000, 4000, "auto") == 192
    with pytest.raises(ValueError, match="tile must be"):
        choose_tile(local_din, 10, 10, 0)
    from PIL import Image

    rgba = Image.fromarray(np.random.default_rng(2).integers(0, 256, (9, 7, 4), dtype=np.uint8), "RGBA")
    restored = ImageRestorer(local_din, tile=4, overlap=1)([rgba, np.zeros((3, 1), np.uint16)])
    assert restored[0].mode == "RGBA" and restored[0].size == (14, 18)
    assert restored[1].dtype == np.uint16 and restored[1].shape == (6, 2)
