"""Restoring arrays: dtypes, greyscale, layouts, and the self-ensemble's equivariance."""

import numpy as np
import pytest

import keras_din
from keras_din.restore import restore_array

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def model():
    model = keras_din.DIN(version="enhanced", scale=2, num_features=4, growth_rate=2, num_branches=2, num_blocks=1)
    for weight in model.weights:  # non-trivial weights, so that orientation matters
        weight.assign(RNG.normal(0, 0.3, weight.shape).astype("float32"))
    return model


def test_dtypes_are_kept(model):
    image = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert restore_array(model, image).dtype == np.uint8
    deep = restore_array(model, image.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == (10, 14, 3)
    floats = restore_array(model, image.astype(np.float32) / 255)
    assert floats.dtype == np.float32 and 0 <= floats.min() and floats.max() <= 1
    np.testing.assert_allclose(floats * 255, restore_array(model, image).astype(float), atol=0.51)


def test_greyscale_through_a_colour_model(model):
    grey = RNG.integers(0, 256, (6, 4), dtype=np.uint8)
    assert restore_array(model, grey).shape == (12, 8)
    with pytest.raises(ValueError, match="2 channels but the model expects 3"):
        restore_array(model, np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(TypeError, match="int32"):
        restore_array(model, np.zeros((4, 4, 3), np.int32))


def test_channels_first_model_gives_the_same_image(model, tmp_path):
    first = keras_din.DIN.from_preset(model.save_to_preset(tmp_path / "p"), data_format="channels_first")
    image = RNG.random((6, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(restore_array(first, image), restore_array(model, image), atol=1e-5)


def test_self_ensemble_is_equivariant_and_differs_from_one_pass(model):
    image = RNG.random((6, 5, 3)).astype(np.float32)
    ensemble = restore_array(model, image, self_ensemble=True)
    flipped = restore_array(model, np.ascontiguousarray(image[:, ::-1]), self_ensemble=True)[:, ::-1]
    rotated = np.rot90(restore_array(model, np.ascontiguousarray(np.rot90(image)), self_ensemble=True), -1)
    np.testing.assert_allclose(flipped, ensemble, atol=1e-5)
    np.testing.assert_allclose(rotated, ensemble, atol=1e-5)
    assert np.abs(ensemble - restore_array(model, image)).max() > 1e-3


def test_a_diverged_model_is_refused_not_written_as_black_pixels():
    diverged = keras_din.DIN(scale=2, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
    bias = diverged.weights[-1]
    bias.assign(np.full(bias.shape, np.nan, "float32"))
    with pytest.raises(FloatingPointError, match="NaN or Inf values.*float32 or mixed_bfloat16"):
        restore_array(diverged, RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8))
