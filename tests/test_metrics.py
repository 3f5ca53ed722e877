"""PSNR/SSIM against scikit-image on real images, and the Keras metric versions against numpy."""

import keras
import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from keras_din.metrics import YPSNR, YSSIM, psnr, rgb_to_y, ssim, to_uint8, y_psnr_ssim

from conftest import DATASETS


@pytest.fixture(scope="module")
def pair():
    hr = np.asarray(Image.open(DATASETS / "Set5" / "HR" / "butterfly.png").convert("RGB"))[:120, :100]
    noise = np.random.default_rng(0).normal(0, 12, hr.shape)
    return hr, np.clip(np.round(hr + noise), 0, 255).astype(np.uint8)


def test_y_channel_is_matlab_rgb2ycbcr(pair):
    hr, _ = pair
    np.testing.assert_allclose(rgb_to_y(hr), rgb2ycbcr(hr)[..., 0], atol=1e-9)


@pytest.mark.parametrize("border", [0, 3])
def test_psnr_and_ssim_match_scikit_image(pair, border):
    hr, noisy = pair
    a, b = rgb_to_y(hr), rgb_to_y(noisy)
    crop = (slice(border, a.shape[0] - border or None), slice(border, a.shape[1] - border or None))
    expected_psnr = peak_signal_noise_ratio(a[crop], b[crop], data_range=255)
    expected_ssim = structural_similarity(
        a[crop], b[crop], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert psnr(a, b, border=border) == pytest.approx(expected_psnr, abs=1e-9)
    assert ssim(a, b, border=border) == pytest.approx(expected_ssim, abs=1e-9)


def test_identical_images():
    image = np.arange(64 * 64, dtype=np.float64).reshape(64, 64) % 255
    assert psnr(image, image) == float("inf")
    assert ssim(image, image) == pytest.approx(1.0)


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match=r"\(5, 5\) vs \(5, 4\)"):
        psnr(np.zeros((5, 5)), np.zeros((5, 4)))


def test_keras_metrics_match_the_numpy_protocol(pair):
    hr, noisy = pair
    other = np.asarray(Image.fromarray(noisy).transpose(Image.FLIP_LEFT_RIGHT))
    y_true = np.stack([hr, hr]).astype("float32") / 255.0
    y_pred = np.stack([noisy, other]).astype("float32") / 255.0
    expected = [y_psnr_ssim(hr, to_uint8(p), 2) for p in y_pred]
    metric_psnr, metric_ssim = YPSNR(border=2), YSSIM(border=2)
    metric_psnr.update_state(y_true, y_pred)
    metric_ssim.update_state(y_true, y_pred)
    assert float(metric_psnr.result()) == pytest.approx(np.mean([e[0] for e in expected]), abs=2e-3)
    assert float(metric_ssim.result()) == pytest.approx(np.mean([e[1] for e in expected]), abs=2e-4)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric_psnr))
    assert clone.border == 2
