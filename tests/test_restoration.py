"""Same-size restoration: the literature's degradations, blind training data, task evaluation, training."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import keras_din
from keras_din.data import SRPatchDataset, degrade_same_size, load_image
from keras_din.evaluate import evaluate_restoration
from keras_din.metrics import blocking_effect_factor, psnr_b
from keras_din.preset.card import format_restoration_table
from keras_din.train import train

from conftest import DATASETS


def test_noise_is_the_literatures_seeded_unclipped_gaussian():
    clean = np.full((64, 64, 3), 250, np.uint8)
    noisy = degrade_same_size(clean, np.random.default_rng(7), noise_sigma=25)
    expected = 250 / 255 + np.random.default_rng(7).normal(0, 25 / 255, clean.shape)
    np.testing.assert_allclose(noisy, expected, atol=1e-6)
    assert noisy.max() > 1.0  # not clipped
    np.testing.assert_array_equal(noisy, degrade_same_size(clean, np.random.default_rng(7), noise_sigma=25))


def test_jpeg_is_pillows_encoder_and_grey_stays_one_channel():
    grey = load_image(
        DATASETS / "Classic5" / "HR" / sorted(p.name for p in (DATASETS / "Classic5" / "HR").iterdir())[0], 1
    )
    assert grey.ndim == 3 and grey.shape[-1] == 1
    buffer = io.BytesIO()
    Image.fromarray(grey[..., 0]).save(buffer, "JPEG", quality=20)
    expected = np.asarray(Image.open(buffer))[..., None]
    out = degrade_same_size(grey, np.random.default_rng(0), jpeg_quality=20)
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), expected)


def test_blind_ranges_draw_a_level_per_patch_and_bad_levels_are_named():
    clean = np.full((32, 32, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    spreads = {round(float(np.std(degrade_same_size(clean, rng, noise_sigma=[0, 55]))) * 255) for _ in range(12)}
    assert len(spreads) > 6 and max(spreads) <= 60
    with pytest.raises(ValueError, match="noise_sigma must lie in"):
        degrade_same_size(clean, rng, noise_sigma=[30, 10])
    with pytest.raises(ValueError, match="jpeg_quality must be a number or a"):
        degrade_same_size(clean, rng, jpeg_quality="high")


def test_greyscale_blind_jpeg_dataset(tmp_path):
    data = SRPatchDataset(
        DATASETS / "Set5" / "HR",
        scale=1,
        patch_size=16,
        batch_size=3,
        steps_per_epoch=1,
        jpeg_quality=[10, 90],
        channels=1,
    )
    degraded, clean = data[0]
    assert degraded.shape == clean.shape == (3, 16, 16, 1) and degraded.dtype == np.float32
    assert 0 < np.abs(degraded - clean).mean() < 0.1
    np.testing.assert_array_equal(degraded * 255, np.round(degraded * 255))  # decoded JPEG: exact uint8 levels


def test_psnr_b_of_a_blocky_image_by_hand():
    # Four flat 8×8 blocks 0, 10 / 20, 30: no difference inside blocks; across the vertical boundary
    # 16 rows × 10², across the horizontal one 16 columns × 20²; 32 boundary pairs; η = log2 8 / log2 16.
    blocky = np.kron(np.array([[0.0, 10.0], [20.0, 30.0]]), np.ones((8, 8)))
    assert blocking_effect_factor(blocky) == pytest.approx(0.75 * (16 * 100 + 16 * 400) / 32)
    flat = np.full((16, 16), 15.0)
    assert blocking_effect_factor(flat) == 0.0
    mse = np.mean((blocky - flat) ** 2)
    assert psnr_b(flat, blocky) == pytest.approx(10 * np.log10(255**2 / (mse + 187.5)))


def test_input_rows_reproduce_the_published_jpeg_baselines():
    """JPEG rows of the FBCNN/DnCNN-3 tables (PSNR) and of ARCNN's (PSNR-B), independent of this code."""
    rows = evaluate_restoration("input", "jpeg", [10, 40], DATASETS, ["Classic5"], progress=False)
    published = {10: (27.82, 25.21), 40: (32.43, 29.92)}
    for row in rows:
        assert row["input_psnr"] == pytest.approx(published[row["level"]][0], abs=0.005)
        assert row["input_psnr_b"] == pytest.approx(published[row["level"]][1], abs=0.011)
        assert "psnr" not in row
    assert "| Classic5 | jpeg | 10 | 5 | 27.82 / " in format_restoration_table(rows)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("restoration")
    (root / "Tiny" / "HR").mkdir(parents=True)
    image = np.asarray(Image.open(DATASETS / "Kodak24" / "HR" / "kodim01.png").convert("RGB"))
    Image.fromarray(image[100:148, 200:264]).save(root / "Tiny" / "HR" / "a.png")
    return root


def test_training_a_tiny_denoiser_then_evaluating_it(crops, tmp_path):
    """A same-size enhanced DIN trains on blind noise, validates, is evaluated per σ and beats the noisy input."""
    config = {
        "model": {
            "version": "enhanced",
            "scale": 1,
            "num_features": 8,
            "growth_rate": 4,
            "num_branches": 1,
            "num_blocks": 1,
        },
        "data": {
            "train": str(crops / "Tiny" / "HR"),
            "val": str(crops / "Tiny" / "HR"),
            "patch_size": 24,
            "batch_size": 4,
            "steps_per_epoch": 3,
            "noise_sigma": [0, 55],
            "val_noise_sigma": 50,
        },
        "solver": {"epochs": 1, "learning_rate": 1e-3},
        "output_dir": str(tmp_path / "run"),
    }
    model = train(config, verbose=0)
    log = (tmp_path / "run" / "log.csv").read_text()
    assert "val_psnr" in log.splitlines()[0]
    folder = model.save_to_preset(tmp_path / "preset")
    rows = evaluate_restoration(
        str(folder), "denoise", [50], crops, ["Tiny"], figure_path=tmp_path / "f.png", progress=False
    )
    clean = np.asarray(Image.open(crops / "Tiny" / "HR" / "a.png"), np.float64)
    noisy = clean / 255 + np.random.default_rng(0).normal(0, 50 / 255, clean.shape)  # seed 0 per image
    quantised = np.clip(np.round(noisy * 255), 0, 255)
    assert rows[0]["input_psnr"] == pytest.approx(10 * np.log10(255**2 / np.mean((clean - quantised) ** 2)))
    assert np.isfinite(rows[0]["psnr"]) and rows[0]["images"] == 1
    with Image.open(tmp_path / "f.png") as figure:
        assert figure.mode == "RGB" and figure.size[0] > 3 * 48
    with pytest.raises(ValueError, match="needs a scale-1 model"):
        sr = keras_din.DIN(scale=2, num_features=8, growth_rate=4, num_branches=1, num_blocks=1)
        evaluate_restoration(str(sr.save_to_preset(tmp_path / "sr")), "denoise", [50], crops, ["Tiny"], progress=False)


def test_report_json_has_the_task_rows(crops, tmp_path):
    evaluate_restoration("input", "denoise", [15, 50], crops, ["Tiny"], json_path=tmp_path / "r.json", progress=False)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["task"] == "denoise"
    assert [(r["dataset"], r["level"]) for r in report["results"]] == [("Tiny", 15), ("Tiny", 50)]
    assert report["results"][0]["input_psnr"] > report["results"][1]["input_psnr"] + 8
