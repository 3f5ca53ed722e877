"""The preset registry: names, configs, parameter counts, the generated folders, loading by name, the CLI."""

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_din
from keras_din.data import degrade_same_size
from keras_din.evaluate import RESTORATION_TASKS
from keras_din.metrics import psnr
from keras_din.preset import PresetError, preset_config
from keras_din.preset import registry as preset_registry
from keras_din.preset.card import model_card
from keras_din.preset.registry import PRESETS, get_preset
from keras_din.restore import restore_array

from conftest import DATASETS, PAPER_CONFIGS, REPO
from harness import run_preset_test

NAMES = [f"din_conference_x{s}" for s in (2, 3, 4)] + [f"din_enhanced_x{s}" for s in (2, 3, 4, 8)]


def load_tool(name):
    """The module `tools.<name>` (pytest puts the checkout's top folder on sys.path)."""
    return importlib.import_module(f"tools.{name}")


PAPER = {name: info for name, info in PRESETS.items() if not info.bundled}
BUNDLED = {name: info for name, info in PRESETS.items() if info.bundled}


def test_registry_holds_every_published_configuration_at_paper_size():
    assert list(PAPER) == NAMES
    for name, info in PAPER.items():
        version, scale = info.config["version"], info.config["scale"]
        assert name == f"din_{version}_x{scale}"
        assert info.parameters == PAPER_CONFIGS[f"{version}_x{scale}"]["param_count"]  # the authors' count
        assert info.hf_handle == f"hf://keras-din/{name}"
        assert (info.config["num_features"], info.config["growth_rate"]) == (64, 32)
        assert (info.config["num_branches"], info.config["num_blocks"]) == (4, 5)


def test_bundled_presets_ship_trained_weights_in_the_package():
    assert keras_din.DEFAULT_PRESET in BUNDLED
    for name, info in BUNDLED.items():
        folder = info.folder()
        assert folder == Path(keras_din.__file__).parent / "presets" / name
        assert info.weights_available  # loading, checksum and parameter count: run_preset_test below
        metadata = json.loads((folder / "metadata.json").read_text())
        if info.config["scale"] == 1:  # same size: better than its degraded input at the literature's levels
            (task,) = {row["task"] for row in metadata["results"]}
            spec = RESTORATION_TASKS[task]
            assert {row["dataset"] for row in metadata["results"]} == set(spec["datasets"][info.config["in_channels"]])
            assert {row["level"] for row in metadata["results"]} >= set(spec["levels"])
            # Every packaged level (JPEG: q 10-90) is in the README (test below), a loss included.
            assert all(row["psnr"] > row["input_psnr"] for row in metadata["results"] if row["level"] in spec["levels"])
        else:
            assert {row["dataset"] for row in metadata["results"]} == {"Set5", "Set14", "B100", "Urban100"}
            assert all(row["psnr"] > row["bicubic_psnr"] for row in metadata["results"])


@pytest.mark.parametrize("name", sorted(n for n, info in BUNDLED.items() if info.config["scale"] == 1))
def test_each_restoration_preset_offline_improves_a_degraded_kodak_crop(name, monkeypatch):
    """Loaded with the Hub offline, each same-size preset makes a real degraded crop closer to the clean one."""
    from PIL import Image

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = keras_din.DIN.from_preset(name)
    mode = "RGB" if model.in_channels == 3 else "L"
    with Image.open(DATASETS / "Kodak24" / "HR" / "kodim23.png") as image:
        clean = np.atleast_3d(np.asarray(image.convert(mode)))[200:296, 300:396]
    task = "jpeg" if "jpeg" in name else "denoise"
    level = {"jpeg_quality": 20} if task == "jpeg" else {"noise_sigma": 25}
    degraded = degrade_same_size(clean, np.random.default_rng(0), **level)
    restored = restore_array(model, degraded)
    reference = clean.astype(np.float64)
    assert psnr(reference, np.clip(restored, 0, 1) * 255) > psnr(reference, np.clip(degraded, 0, 1) * 255) + 0.3


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_each_bundled_preset_passes_the_harness(name, tmp_path):
    channels = BUNDLED[name].config.get("in_channels", 3)
    run_preset_test(name, np.random.default_rng(0).random((1, 12, 10, channels)).astype("float32"), tmp_path)


def test_list_presets_rows():
    rows = [row for row in keras_din.list_presets() if row["name"] in PAPER]
    assert [row["name"] for row in rows] == NAMES
    counts = [row["parameters"] for row in rows]
    assert counts == [19_884_603, 20_069_243, 20_032_315, 19_928_307, 20_112_947, 20_076_019, 20_223_731]
    for row in rows:
        assert row["version"] in ("conference", "enhanced") and f"x{row['scale']}" in row["name"]
        assert row["weights_available"] is PRESETS[row["name"]].weights_available  # no local weights in a checkout
        assert row["psnr"] == {}  # nothing measured yet


def tiny_din(seed):
    """A DIN small enough to build, save and upload in a blink, with weights drawn from `seed`."""
    keras.utils.set_random_seed(seed)
    return keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)


def _tiny_preset(folder, results=()):
    model = tiny_din(7)
    model.save_to_preset(folder, metadata={"results": list(results)})
    return model


def test_package_folder_comes_first_and_its_weights_and_scores_are_used(tmp_path, monkeypatch):
    package, checkout = tmp_path / "package", tmp_path / "checkout"
    results = [
        {"dataset": "Set5", "scale": 2, "psnr": 37.5, "ssim": 0.958},
        {"dataset": "Set5", "scale": 4, "psnr": 31.0},
    ]
    model = _tiny_preset(package / "din_conference_x2", results)
    _tiny_preset(checkout / "din_conference_x2")
    monkeypatch.setattr(preset_registry, "PRESET_ROOTS", (package, checkout))
    assert get_preset("din_conference_x2").folder() == package / "din_conference_x2"
    row = keras_din.list_presets()[0]
    assert row["weights_available"] is True and row["psnr"] == {"Set5": 37.5}  # the x2 score only
    loaded = keras_din.DIN.from_preset("din_conference_x2")
    x = np.random.default_rng(0).random((1, 4, 5, 3), dtype=np.float32)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))


def test_cli_lists_the_presets():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "keras_din", "presets"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "version", "scale", "parameters", "weights", "PSNR", "(dB)"]
    assert lines[3].split() == "din_conference_x4 conference x4 20,032,315 not yet not measured yet".split()
    assert len(lines) == 1 + len(PRESETS)
    small = next(line for line in lines if line.startswith(keras_din.DEFAULT_PRESET)).split()
    assert small[4] == "yes" and "Set5" in " ".join(small[5:])


def test_unknown_name_lists_close_matches():
    with pytest.raises(PresetError, match=r"Unknown preset 'din_conferense_x4'.*Did you mean 'din_conference_x4'"):
        keras_din.DIN.from_preset("din_conferense_x4")
    with pytest.raises(PresetError, match="Registered presets: din_conference_x2, ") as error:
        keras_din.DIN.from_preset("resnet50")
    assert "Did you mean" not in str(error.value)


def test_registered_preset_without_weights_offers_the_ways_out():
    with pytest.raises(
        PresetError, match=r"'din_enhanced_x8' has no trained weights yet.*load_weights=False.*keras-din convert"
    ):
        keras_din.DIN.from_preset("din_enhanced_x8")


def test_registered_preset_builds_its_architecture():
    model = keras_din.DIN.from_preset("din_conference_x2", load_weights=False)
    assert model.count_params() == 19_884_603
    assert preset_config(model) == json.loads((REPO / "presets" / "din_conference_x2" / "config.json").read_text())


def test_registered_preset_builds_without_its_folder(monkeypatch):
    monkeypatch.setattr(preset_registry, "PRESET_ROOTS", ())  # as installed from a wheel
    paper = PRESETS["din_enhanced_x2"]
    info = dataclasses.replace(paper, config={**paper.config, "num_features": 8})
    monkeypatch.setitem(PRESETS, info.name, info)  # small, to stay fast: the path is what is tested
    model = keras_din.DIN.from_preset("din_enhanced_x2", load_weights=False, data_format="channels_first")
    assert (model.name, model.version, model.num_features) == ("din_enhanced_x2", "enhanced", 8)
    assert model.data_format == "channels_first"
    with pytest.raises(PresetError, match="'din_enhanced_x2' has no trained weights yet"):
        keras_din.DIN.from_preset("din_enhanced_x2")


def test_preset_folders_are_what_the_registry_gives():
    """The generated files, checked without building the paper-size models (the slow test below builds them)."""
    assert (REPO / "presets" / "README.md").read_text() == load_tool("make_preset_folders")._index()
    for name, info in PRESETS.items():
        folder = info.folder()  # bundled presets: inside the package
        config = json.loads((folder / "config.json").read_text())
        metadata = json.loads((folder / "metadata.json").read_text())
        assert config["class_name"] == "DIN" and config["config"]["name"] == name
        assert info.config.items() <= config["config"].items()
        assert metadata["parameter_count"] == info.parameters
        assert metadata["weights_available"] is info.weights_available
        assert (metadata["hf_handle"], metadata["description"]) == (info.hf_handle, info.description)
        assert (folder / "README.md").read_text() == model_card(name, info.hf_handle, config, metadata)


def test_top_readme_documents_every_preset():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Presets\n") : readme.index("## Command line\n")]
    for info in PRESETS.values():
        row = next(line for line in section.splitlines() if f"`{info.name}`" in line)
        assert f"{info.parameters:,}" in row, row
    for way in ("hf://", "load_weights=False", ".pth", "keras-din presets"):
        assert way in section


def test_top_readme_gives_the_bundled_presets_measured_scores():
    """The README's table of the bundled presets is their metadata's evaluation, rounded as printed."""
    readme = (REPO / "README.md").read_text()
    header = next(line for line in readme.splitlines() if line.startswith("| dataset | `din_small_x2`"))
    columns = [cell.strip(" `") for cell in header.strip("|").split("|")]
    table = readme[readme.index(header) :].split("\n\n")[0].splitlines()[2:]
    rows = {line.strip("|").split("|")[0].strip().split(" ")[0]: line.strip("|").split("|") for line in table}
    for name, info in BUNDLED.items():
        if info.config["scale"] == 1:
            continue  # same-size restoration: its own table, checked below
        for result in json.loads((info.folder() / "metadata.json").read_text())["results"]:
            cell = rows[result["dataset"]][columns.index(name)]
            expected = f"{result['psnr']:.2f} / {result['ssim']:.4f} ({result['bicubic_psnr']:.2f} / "
            assert cell.strip().startswith(expected), (name, result["dataset"], cell)


def test_top_readme_gives_the_restoration_presets_measured_scores():
    """Each bundled same-size preset's rows (dataset, level, input, [network alone,] PSNR / SSIM) appear in the
    README as measured."""
    readme = (REPO / "README.md").read_text()
    restoration = [info for info in BUNDLED.values() if info.config["scale"] == 1]
    assert restoration
    for info in restoration:
        for r in json.loads((info.folder() / "metadata.json").read_text())["results"]:
            network = f" {r['network_psnr']:.2f} / {r['network_ssim']:.4f} |" if "network_psnr" in r else ""
            output = f" **{r['psnr']:.2f}** / {r['ssim']:.4f} |"
            row = f"| {r['dataset']} | {r['level']} | {r['input_psnr']:.2f} |{network}{output}"
            assert row in readme, (info.name, row)


@pytest.mark.slow
def test_preset_folders_are_up_to_date():
    """Builds every paper-size model: config.json and parameter counts as `tools/make_preset_folders.py` writes them."""
    assert load_tool("make_preset_folders").main(["--check"]) == 0


def test_weights_that_do_not_fit_are_refused_and_leave_no_variable_half_made(tmp_path):
    """A config without its sizes (so no parameter count to check first) and weights of another network: a
    `PresetError` naming the file, and Keras' deferred initialisation is left clean for the next model."""
    tiny = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
    tiny.save_to_preset(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    del config["config"]["num_blocks"]  # DIN's default, 5 blocks, is another network
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(PresetError, match="does not fit the network of its config.json"):
        keras_din.DIN.from_preset(str(tmp_path))
    loaded = keras_din.DIN.from_preset(keras_din.DEFAULT_PRESET)
    before = loaded.get_weights()
    with keras.StatelessScope():  # initialises what is left on Keras' list when it closes
        pass
    for a, b in zip(before, loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_loaded_preset_has_exactly_its_files_weights_and_trains_and_restores():
    """`from_preset` (variables made from the file, no initializer run) equals a plain build + `load_weights`."""
    info = get_preset(keras_din.DEFAULT_PRESET)
    fast = keras_din.DIN.from_preset(info.name)
    plain = keras_din.DIN.from_config(info.architecture_config())
    plain.load_weights(info.folder() / "model.weights.h5")
    for a, b in zip(fast.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    image = np.random.default_rng(0).random((12, 10, 3)).astype("float32")
    np.testing.assert_allclose(restore_array(fast, image), restore_array(plain, image), atol=1e-6)
    fast.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
    before = fast.get_weights()[0].copy()
    fast.fit(image[None], np.zeros((1, 24, 20, 3), "float32"), epochs=1, verbose=0)
    assert not np.array_equal(before, fast.get_weights()[0])
