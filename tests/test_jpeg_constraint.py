"""JPEG's quantisation constraint: the cells of real Pillow JPEGs, the projection's guarantee, orientation, and
what `keras-din restore` / `evaluate` do with it on the shipped JPEG presets."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_din.cli import main
from keras_din.data import load_image
from keras_din.degradations import jpeg_encode
from keras_din.errors import ConfigError
from keras_din.jpeg_constraint import JpegConstraint, uses_jpeg_constraint
from keras_din.metrics import psnr
from keras_din.restore import ImageRestorer, read_image

from conftest import DATASETS

# The example luminance table of the JPEG standard (ITU T.81, Annex K.1): the encoder's table at quality 50.
ANNEX_K_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ]
)
# The orthonormal 8-point DCT-II, from its definition, for the checks.
_K, _X = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
DCT = np.where(_K == 0, np.sqrt(1 / 8), np.sqrt(2 / 8)) * np.cos((2 * _X + 1) * _K * np.pi / 16)


def _crop(dataset: str, channels: int, size: int = 96) -> np.ndarray:
    path = sorted((DATASETS / dataset / "HR").iterdir())[0]
    return load_image(path, channels)[:size, :size]


def _coefficients(image: np.ndarray) -> np.ndarray:
    """The DCT coefficients of a 96 × 96 grey image's 8×8 blocks, on 0–255 minus 128 (JPEG's level shift)."""
    blocks = (image[..., 0] * 255.0).reshape(12, 8, 12, 8).transpose(0, 2, 1, 3) - 128
    return DCT @ blocks @ DCT.T


def _decoded(data: bytes, channels: int) -> np.ndarray:
    decoded = np.asarray(Image.open(io.BytesIO(data)), np.float64) / 255
    return decoded[..., None] if channels == 1 else decoded


def test_the_table_is_the_files_luma_table_in_natural_order():
    grey = _crop("Classic5", 1)
    assert np.array_equal(JpegConstraint.from_bytes(jpeg_encode(grey, 50)).table, ANNEX_K_LUMINANCE)
    colour = JpegConstraint.from_bytes(jpeg_encode(_crop("LIVE1", 3), 50))
    assert np.array_equal(colour.table, ANNEX_K_LUMINANCE)  # table 0 (luma), not the chroma one


@pytest.mark.parametrize("quality", [10, 50, 90])
def test_projection_never_moves_a_grey_image_further_from_the_original(quality):
    clean = _crop("Classic5", 1)
    data = jpeg_encode(clean, quality)
    decoded = _decoded(data, 1)
    constraint = JpegConstraint.from_bytes(data)
    truth = clean / 255.0
    rng = np.random.default_rng(quality)
    guesses = {
        "flat": np.full_like(decoded, 0.5),
        "noisy": np.clip(decoded + rng.normal(0, 0.05, decoded.shape), 0, 1),
        "shifted": np.clip(decoded + 0.03, 0, 1),
    }
    for name, guess in guesses.items():
        projected = constraint.project(guess, decoded)
        assert np.linalg.norm(projected - truth) < np.linalg.norm(guess - truth), name
        # every coefficient of every block now lies in its cell (up to float32 rounding)
        coefficients = _coefficients(projected)
        stored = np.round(_coefficients(decoded) / constraint.table)
        assert np.all(np.abs(coefficients - stored * constraint.table) <= constraint.table / 2 + 1e-3), name
    # the original itself lies in the cells: the projection leaves it (nearly: decoding rounds to 8 bits)
    assert psnr(clean, np.round(constraint.project(truth, decoded) * 255)) > 50


def test_colour_projection_changes_luma_only():
    clean = _crop("LIVE1", 3)
    data = jpeg_encode(clean, 30)
    decoded = _decoded(data, 3)
    guess = np.clip(decoded + np.random.default_rng(1).normal(0, 0.03, decoded.shape), 0.05, 0.95)
    projected = JpegConstraint.from_bytes(data).project(guess, decoded)
    change = projected.astype(np.float64) - guess
    assert np.abs(change).max() > 1e-3  # luma did change
    np.testing.assert_allclose(change[..., 0], change[..., 1], atol=1e-6)  # by the same amount in R, G, B:
    np.testing.assert_allclose(change[..., 0], change[..., 2], atol=1e-6)  # Cb and Cr kept
    y = lambda a: a @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    assert np.linalg.norm(y(projected) - y(clean / 255.0)) < np.linalg.norm(y(guess) - y(clean / 255.0))


def test_an_exif_rotated_jpeg_is_projected_on_its_own_block_grid(tmp_path):
    clean = _crop("LIVE1", 3, size=64)[:, :40]  # 64 × 40: rotating it moves the 8×8 grid
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(clean).save(path, quality=20, exif=exif.tobytes())
    oriented, _ = read_image(path)  # as `keras-din restore` reads it: turned upright
    assert oriented.shape == (40, 64, 3)
    constraint = JpegConstraint.from_file(path)
    assert constraint.orientation == 6
    guess = np.full(oriented.shape, 0.5)
    projected = constraint.project(guess, oriented / 255.0)
    stored = np.asarray(Image.open(path), np.float64) / 255  # the file's own orientation, no EXIF applied
    by_hand = JpegConstraint(constraint.table).project(np.full(stored.shape, 0.5), stored)
    np.testing.assert_allclose(projected, np.rot90(by_hand, k=-1), atol=1e-6)  # orientation 6: 90° clockwise


def test_files_that_are_not_plain_jpegs_have_no_constraint(tmp_path):
    image = Image.fromarray(_crop("LIVE1", 3, size=32))
    image.save(tmp_path / "a.png")
    image.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=50)
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("a.png", "cmyk.jpg", "text.jpg", "missing.jpg"):
        assert JpegConstraint.from_file(tmp_path / name) is None, name


def test_a_jpeg_with_a_zeroed_quantisation_table_is_restored_without_the_constraint(tmp_path, capsys):
    """A hostile or damaged DQT segment (zero steps: no cells) must not turn the output into NaNs."""
    clean = _crop("Classic5", 1, size=64)[..., 0]
    data = bytearray(jpeg_encode(clean, 50))
    start = data.index(b"\xff\xdb") + 5  # DQT marker, 2-byte length, 1-byte precision/table id
    data[start : start + 64] = bytes(64)
    path = tmp_path / "zeroed.jpg"
    path.write_bytes(bytes(data))
    assert Image.open(path).quantization[0][0] == 0  # Pillow decodes it, with its zero steps
    assert JpegConstraint.from_file(path) is None
    assert main(["restore", str(path), "-o", str(tmp_path / "out"), "--preset", "din_small_jpeg_grey"]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "zeroed.jpg")).shape == (64, 64)
    for table, orientation in ((np.zeros((8, 8)), 1), (np.ones((4, 4)), 1), (ANNEX_K_LUMINANCE, 9)):
        with pytest.raises(ConfigError, match="quantisation table is 8×8|orientation is 1 to 8"):
            JpegConstraint(table, orientation)


def test_the_choice_is_auto_on_off_and_only_for_same_size_models():
    assert uses_jpeg_constraint("din_small_jpeg_grey") and not uses_jpeg_constraint("din_small_x2")
    assert uses_jpeg_constraint("hf://keras-din/din_small_jpeg") and not uses_jpeg_constraint("hf://me/din_small_jpeg")
    assert uses_jpeg_constraint("some/folder", "on") and not uses_jpeg_constraint("din_small_jpeg", "off")
    with pytest.raises(ConfigError, match="jpeg_constraint 'yes'"):
        uses_jpeg_constraint("din_small_jpeg", "yes")
    with pytest.raises(ConfigError, match="upscales ×2"):
        ImageRestorer.from_preset("din_small_x2", jpeg_constraint="on")
    decoded = np.zeros((16, 16, 3))
    with pytest.raises(ConfigError, match="JPEG's own size"):
        JpegConstraint(ANNEX_K_LUMINANCE).project(np.zeros((32, 32, 3)), decoded)


def test_auto_reads_the_task_of_a_preset_folder(tmp_path):
    import shutil

    import keras_din

    bundled = tmp_path / "my_jpeg"
    shutil.copytree(Path(keras_din.__file__).parent / "presets" / "din_small_jpeg", bundled)
    assert uses_jpeg_constraint(str(bundled)) and uses_jpeg_constraint(bundled)
    model = keras_din.DIN(scale=1, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
    plain = model.save_to_preset(tmp_path / "plain")
    marked = model.save_to_preset(tmp_path / "marked", metadata={"task": "jpeg"})
    assert not uses_jpeg_constraint(str(plain)) and uses_jpeg_constraint(str(marked))
    assert ImageRestorer.from_preset(str(marked)).jpeg_constraint
    (plain / "metadata.json").write_text("{not json")  # its loading will say so; the choice stays off
    assert not uses_jpeg_constraint(str(plain)) and not uses_jpeg_constraint(str(tmp_path / "missing"))


def test_restore_with_the_constraint_is_closer_to_the_original_than_the_network_alone(tmp_path):
    """The shipped grey model alone smooths a q 90 JPEG of a textured Classic5 crop (PSNR below the JPEG's); the
    constraint takes back much of that loss (not all of it: it bounds the change, it cannot undo it)."""
    clean = _crop("Classic5", 1, size=128)[..., 0]
    source = tmp_path / "in" / "q90.jpg"
    source.parent.mkdir()
    Image.fromarray(clean).save(source, quality=90)
    jpeg_psnr = psnr(clean, np.asarray(Image.open(source)))
    scores = {}
    for choice in ("auto", "off"):
        out = tmp_path / choice
        code = main(
            [
                "restore",
                str(source),
                "-o",
                str(out),
                "--preset",
                "din_small_jpeg_grey",
                "--format",
                "png",
                "--jpeg-constraint",
                choice,
            ]
        )
        assert code == 0
        scores[choice] = psnr(clean, np.asarray(Image.open(out / "q90.png")))
    assert scores["off"] < jpeg_psnr, scores
    # At least half the network's loss taken back; measured with the epoch-114 weights: -0.14 dB alone, -0.04 with it.
    assert scores["auto"] > jpeg_psnr - 0.5 * (jpeg_psnr - scores["off"]), scores


def test_evaluate_reports_the_constraint_and_refuses_it_for_denoising(tmp_path, capsys):
    data = tmp_path / "data" / "Tiny" / "HR"
    data.mkdir(parents=True)
    Image.fromarray(_crop("LIVE1", 3, size=64)).save(data / "a.png")
    report = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            "--preset",
            "din_small_jpeg",
            "--task",
            "jpeg",
            "--qualities",
            "90",
            "--data",
            str(tmp_path / "data"),
            "--datasets",
            "Tiny",
            "--json",
            str(report),
        ]
    )
    assert code == 0
    row = json.loads(report.read_text())["results"][0]
    assert row["jpeg_constraint"] is True and row["psnr"] > row["network_psnr"]
    header = capsys.readouterr().out.splitlines()[0]
    assert "network alone PSNR / SSIM | with JPEG constraint PSNR / SSIM" in header
    code = main(
        [
            "evaluate",
            "--preset",
            "din_small_denoise",
            "--task",
            "denoise",
            "--jpeg-constraint",
            "on",
            "--data",
            str(tmp_path / "data"),
            "--datasets",
            "Tiny",
        ]
    )
    assert code == 2
    assert "applies to the jpeg task" in capsys.readouterr().err
