"""The patch dataset: alignment of LR and HR patches, determinism, layouts, degradations."""

import numpy as np
import pytest
from PIL import Image

from keras_din.data import SRPatchDataset, list_images
from keras_din.degradations import degrade

from conftest import DATASETS


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Small random HR images and their BI LR images (paired folders)."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(3)
    (root / "HR").mkdir()
    (root / "LR").mkdir()
    for i, size in enumerate([(40, 36), (30, 44), (10, 10)]):  # the last is smaller than a patch
        hr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(hr).save(root / "HR" / f"img{i}.png")
        Image.fromarray(degrade(hr, "BI", 2)).save(root / "LR" / f"img{i}.png")
    return root


def _find(window: np.ndarray, image: np.ndarray):
    p = window.shape[0]
    for y in range(image.shape[0] - p + 1):
        for x in range(image.shape[1] - window.shape[1] + 1):
            if np.array_equal(image[y : y + p, x : x + window.shape[1]], window):
                return y, x
    return None


def test_lr_patches_are_the_hr_patches_windows(folders):
    data = SRPatchDataset(folders / "HR", scale=2, patch_size=8, batch_size=6, steps_per_epoch=2, augment=False)
    assert len(data.pairs) == 2  # the 10×10 image is skipped: smaller than a 16×16 HR patch
    lr, hr = data[0]
    assert lr.shape == (6, 8, 8, 3) and hr.shape == (6, 16, 16, 3) and lr.dtype == np.float32
    assert 0.0 <= lr.min() and lr.max() <= 1.0
    full = {
        i: (degrade(np.asarray(Image.open(p)), "BI", 2), np.asarray(Image.open(p)))
        for i, p in enumerate(list_images(folders / "HR"))
    }
    for lr_patch, hr_patch in zip(np.round(lr * 255).astype(np.uint8), np.round(hr * 255).astype(np.uint8)):
        located = [(i, _find(hr_patch, hr_full)) for i, (_, hr_full) in full.items()]
        i, (y, x) = next((i, where) for i, where in located if where is not None)
        assert y % 2 == 0 and x % 2 == 0
        np.testing.assert_array_equal(full[i][0][y // 2 : y // 2 + 8, x // 2 : x // 2 + 8], lr_patch)


def test_paired_folders_give_the_same_batches(folders):
    made = SRPatchDataset(folders / "HR", scale=2, patch_size=8, batch_size=4, steps_per_epoch=1, seed=5)
    paired = SRPatchDataset(
        folders / "HR", scale=2, patch_size=8, batch_size=4, steps_per_epoch=1, seed=5, lr_dirs=folders / "LR"
    )
    for a, b in zip(made[0], paired[0]):
        np.testing.assert_array_equal(a, b)


def test_batches_depend_only_on_seed_epoch_and_index(folders):
    def batch(seed, epoch, index):
        data = SRPatchDataset(folders / "HR", scale=2, patch_size=8, batch_size=4, steps_per_epoch=3, seed=seed)
        data.epoch = epoch
        return data[index][1]

    np.testing.assert_array_equal(batch(0, 1, 2), batch(0, 1, 2))
    assert not np.array_equal(batch(0, 1, 2), batch(0, 2, 2))
    assert not np.array_equal(batch(0, 1, 2), batch(1, 1, 2))


def test_channels_first_and_same_size_restoration(folders):
    data = SRPatchDataset(
        folders / "HR",
        scale=1,
        patch_size=12,
        batch_size=2,
        steps_per_epoch=1,
        noise_sigma=25,
        jpeg_quality=20,
        data_format="channels_first",
    )
    noisy, clean = data[0]
    assert noisy.shape == clean.shape == (2, 3, 12, 12)
    assert 0.03 < np.abs(noisy - clean).mean() < 0.3


def test_real_training_folders_and_errors(folders):
    data = SRPatchDataset(
        [DATASETS / "Set5" / "HR", DATASETS / "Set14" / "HR"], scale=4, patch_size=12, batch_size=2, steps_per_epoch=1
    )
    assert len(data.pairs) == 19
    with pytest.raises(FileNotFoundError, match="nowhere"):
        SRPatchDataset(folders / "nowhere", scale=2)
    with pytest.raises(ValueError, match="at least 200×200"):
        SRPatchDataset(folders / "HR", scale=4, patch_size=50)
    with pytest.raises(ValueError, match="pair them"):
        SRPatchDataset([folders / "HR"], scale=2, lr_dirs=[folders / "LR", folders / "LR"])
