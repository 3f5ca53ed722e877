"""Degradations: MATLAB-bicubic properties (hypothesis), BD, noise, JPEG, mod-crop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_din.degradations import (
    add_gaussian_noise,
    degrade,
    degrade_bd,
    gaussian_kernel,
    imresize,
    jpeg_compress,
    modcrop,
)

sizes = st.integers(min_value=1, max_value=24)
scales = st.sampled_from([2, 3, 4, 1 / 2, 1 / 3, 1 / 4])


@settings(max_examples=40, deadline=None)
@given(height=sizes, width=sizes, scale=scales, value=st.floats(0, 1))
def test_constant_images_stay_constant_and_sizes_follow_matlab(height, width, scale, value):
    image = np.full((height, width, 3), value)
    expected_shape = (int(np.ceil(height * scale)), int(np.ceil(width * scale)), 3)
    if min(expected_shape[:2]) < 1:
        with pytest.raises(ValueError, match="empty"):
            imresize(image, scale)
        return
    out = imresize(image, scale)
    assert out.shape == expected_shape
    np.testing.assert_allclose(out, value, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(length=st.integers(8, 30), scale=st.sampled_from([2, 3, 4]), slope=st.floats(-3, 3), offset=st.floats(-5, 5))
def test_upscaling_reproduces_linear_ramps_away_from_the_borders(length, scale, slope, offset):
    # Keys' cubic reproduces polynomials up to degree 2, so a ramp is exact where no border is in reach.
    ramp = offset + slope * np.arange(length, dtype=np.float64)
    image = np.tile(ramp[None, :], (4, 1))
    out = imresize(image, scale)
    x = (np.arange(length * scale) + 0.5) / scale - 0.5  # MATLAB's output → input mapping
    inner = (x >= 2) & (x <= length - 3)
    expected = np.broadcast_to(offset + slope * x[inner], out[:, inner].shape)
    np.testing.assert_allclose(out[:, inner], expected, atol=1e-9)


def test_uint8_in_uint8_out_rounded_once():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 18, 3), dtype=np.uint8)
    out = imresize(image, 1 / 3)
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3)
    np.testing.assert_array_equal(out, np.clip(np.round(imresize(image.astype(float), 1 / 3)), 0, 255))


def test_output_shape_argument_and_missing_arguments():
    assert imresize(np.zeros((10, 20)), output_shape=(5, 7)).shape == (5, 7)
    with pytest.raises(ValueError, match="scale or output_shape"):
        imresize(np.zeros((4, 4)))


def test_modcrop():
    assert modcrop(np.zeros((481, 321, 3)), 4).shape == (480, 320, 3)


def test_bd_blurs_with_the_papers_gaussian_then_decimates():
    kernel = gaussian_kernel(7, 1.6)
    assert kernel.shape == (7, 7) and kernel.sum() == pytest.approx(1.0)
    assert kernel[3, 3] / kernel[3, 4] == pytest.approx(np.exp(1 / (2 * 1.6**2)))
    image = np.zeros((21, 21))
    image[9, 9] = 1.0  # an impulse at a sampled position returns the kernel's centre there
    out = degrade_bd(image, 3)
    assert out.shape == (7, 7)
    assert out[3, 3] == pytest.approx(kernel[3, 3])
    assert degrade(np.full((12, 9, 3), 77, np.uint8), "BD", 3).tolist() == np.full((4, 3, 3), 77).tolist()


def test_noise_and_dn():
    rng = np.random.default_rng(1)
    image = np.full((200, 200), 128, np.uint8)
    noisy = add_gaussian_noise(image, 30, rng)
    assert noisy.dtype == np.uint8
    assert np.std(noisy.astype(float)) == pytest.approx(30, rel=0.05)
    dn = degrade(np.full((40, 40, 3), 128, np.uint8), "DN", 2, rng)
    assert dn.shape == (20, 20, 3) and np.std(dn.astype(float)) > 20
    with pytest.raises(ValueError, match="Unknown degradation 'XX'"):
        degrade(image, "XX", 2)


def test_jpeg_quality_controls_the_loss():
    rng = np.random.default_rng(2)
    image = np.clip(rng.normal(128, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
    error = {q: np.abs(jpeg_compress(image, q).astype(float) - image).mean() for q in (10, 90)}
    assert error[90] < error[10]
    with pytest.raises(TypeError, match="uint8"):
        jpeg_compress(image.astype(float), 50)
