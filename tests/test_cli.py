"""The `keras-din` command line, run as a user would: a real process on real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATASETS, OFFICIAL, REPO


def _cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "keras_din", *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "din_fixture_x2"
    result = _cli("convert", OFFICIAL / "conference_x2.pth", folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DIN conference x2, 8 features, growth 3, 233,438 parameters" in result.stdout
    return folder


def test_convert_writes_a_loadable_preset(preset):
    assert sorted(p.name for p in preset.iterdir()) == ["config.json", "metadata.json", "model.weights.h5"]


def test_convert_refuses_a_non_empty_folder_without_overwrite(preset):
    before = {p.name: p.stat().st_mtime_ns for p in preset.iterdir()}
    result = _cli("convert", OFFICIAL / "conference_x2.pth", preset)
    assert result.returncode == 2 and "pass --overwrite" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in preset.iterdir()} == before
    result = _cli("convert", OFFICIAL / "conference_x2.pth", preset, "--overwrite")
    assert result.returncode == 0, result.stderr[-2000:]


def test_convert_reports_a_bad_checkpoint(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("not a checkpoint")
    result = _cli("convert", bad, tmp_path / "out")
    assert result.returncode == 2
    assert "notes.pth" in result.stderr and "not a readable PyTorch checkpoint" in result.stderr
    assert not (tmp_path / "out").exists()
    debug = _cli("--debug", "convert", bad, tmp_path / "out")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A small DIN preset: restoring through it is quick, so the CLI paths are what is timed."""
    import keras_din

    model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=2)
    return model.save_to_preset(tmp_path_factory.mktemp("cli") / "tiny")


def test_restore_processes_good_images_and_names_broken_ones(tiny_preset, tmp_path):
    preset = tiny_preset
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(tmp_path / "colour.png")
    Image.fromarray(rng.integers(0, 256, (7, 6), dtype=np.uint8)).save(tmp_path / "grey.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "restored"
    result = _cli(
        "restore",
        tmp_path / "colour.png",
        tmp_path / "broken.png",
        tmp_path / "grey.png",
        "-o",
        out,
        "--preset",
        preset,
    )
    assert result.returncode == 1
    assert "broken.png" in result.stderr
    with Image.open(out / "colour.png") as image:
        assert (image.size, image.mode) == ((22, 18), "RGB")
    with Image.open(out / "grey.png") as image:
        assert (image.size, image.mode) == ((12, 14), "L")
    assert sorted(p.name for p in out.iterdir()) == ["colour.png", "grey.png"]  # nothing half-written

    again = _cli("restore", tmp_path / "colour.png", "-o", out, "--preset", preset)
    assert again.returncode == 1 and "exists" in again.stderr and "--overwrite" in again.stderr
    forced = _cli("restore", tmp_path / "colour.png", "-o", out, "--preset", preset, "--overwrite")
    assert forced.returncode == 0, forced.stderr[-2000:]


def test_the_command_ends_quickly_with_all_its_output_and_its_exit_code(tmp_path, capsys):
    """`keras-din` ends with `os._exit` after a command returns: its block-buffered output (a pipe, no
    PYTHONUNBUFFERED) must still arrive whole, and its exit code unchanged, from both entry points."""
    from keras_din.cli import main

    assert main(["presets"]) == 0
    expected = capsys.readouterr().out
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    script = Path(sys.executable).with_name("keras-din")
    for command in ([sys.executable, "-m", "keras_din"], [str(script)]):
        listed = subprocess.run([*command, "presets"], capture_output=True, text=True, cwd=REPO, env=env)
        assert listed.returncode == 0 and listed.stdout == expected, listed.stderr[-2000:]
        (tmp_path / "bad.json").write_text("{")
        failed = subprocess.run([*command, "train", tmp_path / "bad.json"], capture_output=True, text=True, env=env)
        assert failed.returncode == 2 and "bad.json" in failed.stderr


_COUNTING_CACHE_HITS = """
import sys
import jax.monitoring
from keras_din.cli import main
events = []
jax.monitoring.register_event_listener(lambda event, **_: events.append(event))
code = main(sys.argv[1:])
print(events.count("/jax/compilation_cache/cache_hits"))
sys.exit(code)
"""


def test_restore_on_jax_loads_an_earlier_runs_compiled_forward(tmp_path):
    """On JAX `keras-din restore` keeps its compiled forward in KERAS_DIN_JAX_CACHE: the next process
    loads it from there (a cache hit, none in the first run) and restores the same pixels."""
    import keras

    if keras.backend.backend() != "jax":
        pytest.skip("JAX's compilation cache: the JAX pass tests it")
    image = tmp_path / "photo.png"
    with Image.open(DATASETS / "Set5" / "HR" / "baby.png") as source:
        source.convert("RGB").crop((0, 0, 64, 48)).save(image)
    env = {**os.environ, "KERAS_DIN_JAX_CACHE": str(tmp_path / "cache")}
    hits = []
    for out in ("first", "second"):
        command = [sys.executable, "-c", _COUNTING_CACHE_HITS, "restore", image, "-o", tmp_path / out]
        result = subprocess.run([*command, "--preset", "din_small_x2"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        hits.append(int(result.stdout.split()[-1]))
        if out == "first":
            assert any((tmp_path / "cache").iterdir())
    assert hits[0] == 0 and hits[1] >= 1
    assert (tmp_path / "first" / "photo.png").read_bytes() == (tmp_path / "second" / "photo.png").read_bytes()


def test_evaluate_bicubic_writes_the_json_report(tmp_path):
    result = _cli(
        "evaluate",
        "--preset",
        "bicubic",
        "--data",
        DATASETS,
        "--datasets",
        "Set5",
        "--scale",
        "4",
        "--json",
        tmp_path / "report.json",
        "--figure",
        tmp_path / "cmp.png",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| Set5 | x4 | 5 | 28.420" in result.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["results"][0]["dataset"] == "Set5" and report["results"][0]["scale"] == 4
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def test_evaluate_a_model_preset_at_its_own_scale_unless_told_otherwise(preset, tmp_path):
    on_set5 = ("evaluate", "--preset", preset, "--data", DATASETS, "--datasets", "Set5")
    result = _cli(*on_set5, "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| Set5 | x2 | 5 |" in result.stdout
    assert [row["scale"] for row in json.loads((tmp_path / "r.json").read_text())["results"]] == [2]
    wrong = _cli(*on_set5, "--scale", "2,4")
    assert wrong.returncode == 2 and "is a ×2 model; it cannot be evaluated at scale [4]" in wrong.stderr


def test_train_command_runs_a_config_and_reports_bad_ones(tmp_path):
    config = {
        "model": {"scale": 2, "num_features": 4, "growth_rate": 2, "num_branches": 1, "num_blocks": 1},
        "data": {"train": [str(DATASETS / "Set5" / "HR")], "patch_size": 8, "batch_size": 2, "steps_per_epoch": 2},
        "solver": {"epochs": 1},
        "output_dir": str(tmp_path / "run"),
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = _cli("train", tmp_path / "config.json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint-0001.keras").is_file()
    # a training checkpoint is evaluated as a preset (`restore` and `export` load it the same way), at its scale
    checkpoint = ("--preset", tmp_path / "run" / "checkpoint-0001.keras")
    scored = _cli("evaluate", *checkpoint, "--data", DATASETS, "--datasets", "Set5")
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "| Set5 | x2 | 5 |" in scored.stdout
    (tmp_path / "bad.json").write_text(json.dumps({"solvr": {}}))
    bad = _cli("train", tmp_path / "bad.json")
    assert bad.returncode == 2 and "Unknown training config key 'solvr'" in bad.stderr


def test_restore_keeps_metadata_applies_orientation_and_16_bit(tiny_preset, tmp_path):
    rng = np.random.default_rng(4)
    colour = Image.fromarray(rng.integers(0, 256, (6, 10, 3), dtype=np.uint8))  # 10 wide, 6 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    icc = b"fake-icc-profile-bytes"
    colour.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), icc_profile=icc, quality=95)
    deep = Image.fromarray(rng.integers(0, 65536, (5, 7), dtype=np.uint16))
    deep.save(tmp_path / "deep.png")
    result = _cli("restore", tmp_path / "*.jpg", tmp_path / "deep.png", "-o", tmp_path / "out", "--preset", tiny_preset)
    assert result.returncode == 0, result.stderr[-2000:]
    with Image.open(tmp_path / "out" / "rotated.jpg") as image:
        assert image.size == (12, 20)  # displayed upright (6×10 rotated), then ×2
        assert image.getexif().get(0x0112, 1) == 1  # orientation applied, tag reset
        assert image.info.get("icc_profile") == icc
    with Image.open(tmp_path / "out" / "deep.png") as image:
        assert image.mode.startswith("I;16") or image.mode == "I"
        assert image.size == (14, 10) and np.asarray(image).max() > 255


def test_restore_writes_tiffs_at_their_depth_and_says_what_png_reduces(tiny_preset, tmp_path):
    import tifffile

    rng = np.random.default_rng(8)
    rgb16 = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", rgb16, photometric="rgb", compression="zlib", iccprofile=b"an-icc-profile")
    Image.fromarray(rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(
        tmp_path / "plain.tiff", compression="tiff_lzw", dpi=(200, 200)
    )
    Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).convert("CMYK").save(tmp_path / "cmyk.tif")
    Image.fromarray(rng.random((5, 3)).astype(np.float32)).save(tmp_path / "float.tif")
    out = tmp_path / "out"
    result = _cli("restore", *sorted(tmp_path.glob("*.tif*")), "-o", out, "--preset", tiny_preset)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["cmyk.tif", "deep.tif", "float.tif", "plain.tiff"]
    deep = tifffile.TiffFile(out / "deep.tif")
    with deep:
        page = deep.pages[0]
        assert page.dtype == np.uint16 and page.shape == (12, 10, 3) and page.asarray().max() > 255
        assert page.tags.valueof(34675) == b"an-icc-profile"
    assert tifffile.imread(out / "float.tif").dtype == np.float32
    with Image.open(out / "plain.tiff") as image:
        # ×2: the resolution doubles with the pixel count, so the page prints at its size
        assert (image.mode, image.size, tuple(image.info["dpi"])) == ("RGB", (10, 12), (400, 400))
    with Image.open(out / "cmyk.tif") as image:
        assert (image.mode, image.size) == ("RGB", (8, 8))

    as_png = _cli("restore", tmp_path / "deep.tif", "-o", tmp_path / "png", "--preset", tiny_preset, "--format", "PNG")
    assert as_png.returncode == 0, as_png.stderr[-2000:]
    assert "warning: " in as_png.stderr and "deep.tif: deep.png: 16-bit colour written with 8 bits" in as_png.stderr
    with Image.open(tmp_path / "png" / "deep.png") as image:
        assert (image.mode, image.size, image.info.get("icc_profile")) == ("RGB", (10, 12), b"an-icc-profile")


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--format", "./../../x.png"],
            "--format must be one of png, jpg, jpeg, bmp, tif, tiff, webp (a format name, not a path), "
            "got './../../x.png'.",
        ),
        (["--tile", "8", "--overlap", "8"], "--overlap (8) must be smaller than --tile (8)"),
        (["--tile", "0"], "--tile must be a positive number of LR pixels, 'auto' or 'none', got '0'."),
        (["--tile", "16"], "--overlap (32) must be smaller than --tile (16)"),
    ],
)
def test_restore_refuses_bad_options_once_before_any_work(tmp_path, options, message):
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    out = tmp_path / "deep" / "er" / "out"
    # No such preset: the options are refused before the model would be looked for.
    images = (tmp_path / "a.png", tmp_path / "b.png")
    result = _cli("restore", *images, "-o", out, "--preset", tmp_path / "no-preset", *options)
    assert result.returncode == 2
    ours = [line for line in result.stderr.splitlines() if line.startswith(("keras-din", "error:"))]
    assert len(ours) == 1 and ours[0].startswith("keras-din restore: error: ") and message in ours[0], result.stderr
    assert not (tmp_path / "deep").exists()  # no output folder, nothing written beside or above it
