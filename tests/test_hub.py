"""Hugging Face Hub presets: the real huggingface_hub download and upload code against a Hub on 127.0.0.1.

`hub_server.FakeHub` speaks the Hub's HTTP API (resolve with ETag / X-Repo-Commit /
X-Linked-* headers, model info, tree, create repo, preupload, commit); huggingface_hub
is pointed at it the way `HF_ENDPOINT` does, with its cache in a temporary folder.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from huggingface_hub import ModelCard, constants

import keras_din
from keras_din.preset import PresetError
from keras_din.preset import registry as preset_registry
from keras_din.preset.card import model_card
from keras_din.preset.hub import download_preset, parse_handle
from keras_din.train import load_config, lr_stretches

from conftest import REPO
from hub_server import FakeHub
from test_presets import load_tool, tiny_din

REPO_ID = "keras-din-test/din_tiny"
HANDLE = f"hf://{REPO_ID}"
WEIGHTS = "model.weights.h5"


def _outputs(model, x):
    return keras.ops.convert_to_numpy(model(x))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two tiny DINs with different weights, saved as preset folders, and an input."""
    root = tmp_path_factory.mktemp("tiny")
    x = np.random.default_rng(0).random((1, 5, 7, 3), dtype=np.float32)
    models = [tiny_din(seed) for seed in (1, 2)]
    folders = [model.save_to_preset(root / f"preset{i}") for i, model in enumerate(models)]
    return {"x": x, "folders": folders, "outputs": [_outputs(model, x) for model in models]}


def _repo_files(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A fresh Hub on 127.0.0.1, with huggingface_hub (here and in subprocesses) pointed at it."""
    with FakeHub() as server:
        cache = str(tmp_path / "hf-cache")
        # What HF_ENDPOINT / HF_HUB_CACHE do when set before huggingface_hub is imported (keras imports it first).
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", cache)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        environment = {"HF_ENDPOINT": server.url, "HF_HUB_CACHE": cache, "HF_HOME": str(tmp_path / "hf-home")}
        for name, value in environment.items():  # for subprocesses
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server


def test_download_loads_the_published_model_and_nothing_else(hub, tiny):
    extra = {"README.md": b"---\nlicense: apache-2.0\n---\n", "model.py": b"raise SystemExit(1)\n", "model.pth": b"PK"}
    hub.add_repo(REPO_ID, {**_repo_files(tiny["folders"][0]), **extra})
    model = keras_din.DIN.from_preset(HANDLE)
    np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][0])
    assert hub.count("GET", f"/{WEIGHTS}") == 1
    for name in extra:  # only config, metadata and weights are fetched: code and pickles never reach the disk
        assert hub.count("GET", f"/{name}") == 0


def test_second_load_is_a_cache_hit(hub, tiny):
    hub.add_repo(REPO_ID, _repo_files(tiny["folders"][0]))
    first = download_preset(HANDLE)
    hub.requests.clear()
    second = download_preset(HANDLE)
    assert second == first
    assert hub.requests == [("GET", f"/api/models/{REPO_ID}/revision/main")]  # the branch is checked, nothing fetched


def test_revision_pins_a_commit(hub, tiny):
    first = hub.add_repo(REPO_ID, _repo_files(tiny["folders"][0]))
    hub.tag(REPO_ID, "v1", first)
    hub.add_repo(REPO_ID, _repo_files(tiny["folders"][1]))
    for handle, expected in ((HANDLE, 1), (f"{HANDLE}@v1", 0), (f"{HANDLE}@{first}", 0), (f"{HANDLE}@main", 1)):
        model = keras_din.DIN.from_preset(handle)
        np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][expected], err_msg=handle)
    with pytest.raises(PresetError, match=f"{REPO_ID}.* has no revision 'v9'"):
        keras_din.DIN.from_preset(f"{HANDLE}@v9")


_OFFLINE = """
import sys, numpy as np, keras, keras_din
model = keras_din.DIN.from_preset(sys.argv[1])
np.save(sys.argv[3], keras.ops.convert_to_numpy(model(np.load(sys.argv[2]))))
try:
    keras_din.DIN.from_preset("hf://keras-din-test/never_downloaded")
except keras_din.PresetError as error:
    print("refused:", error)
"""


def test_offline_loads_from_the_cache_and_names_what_is_missing(hub, tiny, tmp_path):
    hub.add_repo(REPO_ID, _repo_files(tiny["folders"][0]))
    download_preset(HANDLE)
    hub.requests.clear()
    np.save(tmp_path / "x.npy", tiny["x"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _OFFLINE, HANDLE, tmp_path / "x.npy", tmp_path / "y.npy"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), tiny["outputs"][0])
    assert "refused: hf://keras-din-test/never_downloaded is not in the Hugging Face cache" in result.stdout
    assert "HF_HUB_OFFLINE" in result.stdout
    assert hub.requests == []  # offline: the server heard nothing


def test_missing_repo_is_named(hub):
    with pytest.raises(PresetError, match="the Hugging Face repo 'keras-din-test/nothing' does not exist"):
        keras_din.DIN.from_preset("hf://keras-din-test/nothing")


def test_missing_files_are_named(hub, tiny):
    files = _repo_files(tiny["folders"][0])
    hub.add_repo(REPO_ID, {name: data for name, data in files.items() if name != WEIGHTS})
    with pytest.raises(PresetError, match=f"{HANDLE}.*has no {WEIGHTS}.*load_weights=False"):
        keras_din.DIN.from_preset(HANDLE)
    architecture = keras_din.DIN.from_preset(HANDLE, load_weights=False)  # config and metadata are enough
    assert architecture.count_params() == keras_din.DIN.from_preset(tiny["folders"][0]).count_params()
    hub.add_repo("keras-din-test/not_a_preset", {"README.md": b"hello\n"})
    with pytest.raises(PresetError, match="hf://keras-din-test/not_a_preset .*has no config.json"):
        keras_din.DIN.from_preset("hf://keras-din-test/not_a_preset")


def _flip(data):
    corrupted = bytearray(data)
    corrupted[len(corrupted) // 2] ^= 0xFF
    return bytes(corrupted)


@pytest.mark.parametrize("damage", [_flip, lambda data: data[: len(data) // 2]], ids=["flipped", "truncated"])
def test_corrupted_download_is_refused_and_not_kept(hub, tiny, damage):
    hub.add_repo(REPO_ID, _repo_files(tiny["folders"][0]))
    hub.corrupt[(REPO_ID, WEIGHTS)] = damage
    with pytest.raises(PresetError, match=f"{HANDLE}.*{WEIGHTS} is corrupted.*removed from the Hugging Face cache"):
        keras_din.DIN.from_preset(HANDLE)
    cache = Path(constants.HF_HUB_CACHE)
    assert list(cache.rglob(WEIGHTS)) == []  # no snapshot entry ...
    served = damage(tiny["folders"][0].joinpath(WEIGHTS).read_bytes())
    assert all(path.read_bytes() != served for path in cache.rglob("*") if path.is_file())  # ... and no blob
    del hub.corrupt[(REPO_ID, WEIGHTS)]  # the server is fixed: the next call downloads again and succeeds
    model = keras_din.DIN.from_preset(HANDLE)
    np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][0])
    assert hub.count("GET", f"/{WEIGHTS}") == 2


def test_registered_preset_with_published_weights_downloads_them(hub, tiny, monkeypatch):
    info = dataclasses.replace(preset_registry.PRESETS["din_conference_x2"], weights_available=True, hf_handle=HANDLE)
    monkeypatch.setitem(preset_registry.PRESETS, info.name, info)
    monkeypatch.setattr(preset_registry, "PRESET_ROOTS", ())  # as installed from a wheel: no local folder
    hub.add_repo(REPO_ID, _repo_files(tiny["folders"][0]))
    model = keras_din.DIN.from_preset("din_conference_x2")
    np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][0])


def test_upload_then_download_round_trip(hub, tiny):
    pinned = keras_din.upload_preset(HANDLE, tiny["folders"][0], token="hf_test_token")
    assert pinned.startswith(f"{HANDLE}@") and len(pinned.split("@")[1]) == 40
    assert hub.count("POST", "/api/repos/create") == 1 and hub.count("POST", f"/api/models/{REPO_ID}/commit/main") == 1
    files = hub.files(REPO_ID)
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "metadata.json", WEIGHTS]
    assert files[WEIGHTS] == tiny["folders"][0].joinpath(WEIGHTS).read_bytes()
    card = files["README.md"].decode()  # the folder has no README.md: a card is written from its config
    assert card.startswith("---\nlicense: apache-2.0\nlibrary_name: keras\npipeline_tag: image-to-image\n")
    assert f'DIN.from_preset("{HANDLE}")' in card and "not measured yet" in card
    for handle in (pinned, HANDLE):
        model = keras_din.DIN.from_preset(handle)
        np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][0])
    again = keras_din.upload_preset(HANDLE, tiny["folders"][1], token="hf_test_token")  # the repo exists: a new commit
    assert again != pinned
    np.testing.assert_array_equal(_outputs(keras_din.DIN.from_preset(HANDLE), tiny["x"]), tiny["outputs"][1])


def test_upload_refuses_a_broken_folder_before_sending_anything(hub, tiny, tmp_path):
    folder = tiny_din(3).save_to_preset(tmp_path / "broken")
    (folder / WEIGHTS).write_bytes(_flip((folder / WEIGHTS).read_bytes()))
    with pytest.raises(PresetError, match=f"{WEIGHTS}.* is corrupted"):
        keras_din.upload_preset(HANDLE, folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(PresetError, match="load_weights=False"):
        keras_din.upload_preset(HANDLE, folder)
    with pytest.raises(PresetError, match="uploads go to the default branch"):
        keras_din.upload_preset(f"{HANDLE}@v1", tiny["folders"][0])
    assert hub.requests == []


def test_upload_offline_or_unreachable_is_a_preset_error(tiny, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # huggingface_hub raises OfflineModeIsEnabled
    with pytest.raises(PresetError, match="Uploading .* failed"):
        keras_din.upload_preset(HANDLE, tiny["folders"][0], token="hf_test_token")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(PresetError, match="Uploading .* failed"):
        keras_din.upload_preset(HANDLE, tiny["folders"][0], token="hf_test_token")


@pytest.mark.parametrize("handle", ["hf://", "hf://owner", "hf://owner/", "hf://a/b/c", "hf://owner/repo@"])
def test_malformed_handles_are_refused(handle):
    with pytest.raises(PresetError, match="not a Hugging Face preset handle: write hf://owner/repo"):
        parse_handle(handle)


def test_publish_presets_is_a_dry_run_that_skips_presets_without_weights(hub, capsys):
    assert load_tool("publish_presets").main([]) == 0
    out = capsys.readouterr().out
    with_weights = [name for name, info in preset_registry.PRESETS.items() if info.bundled]
    for name in preset_registry.PRESETS:
        if name in with_weights:
            assert f"would upload {preset_registry.PRESETS[name].folder()} -> hf://keras-din/{name}" in out
        else:
            assert f"skip {name}: no weights yet" in out
    assert f"dry run: {len(with_weights)} preset(s) to publish; add --upload to send them." in out
    assert hub.requests == []


def test_publish_presets_refuses_a_folder_that_is_not_the_registered_preset(hub, tiny, tmp_path, capsys):
    publish = load_tool("publish_presets").main
    shutil.copytree(tiny["folders"][0], tmp_path / "din_conference_x2")
    assert publish(["--root", str(tmp_path), "--only", "din_conference_x2", "--upload"]) == 1
    err = capsys.readouterr().err
    assert "din_conference_x2" in err and "'num_features': 8" in err and "nothing was uploaded" in err
    assert hub.requests == []
    assert publish(["--only", "din_conferense_x2"]) == 2
    assert "Did you mean 'din_conference_x2'," in capsys.readouterr().err


def test_publish_presets_uploads_the_folders_with_weights(hub, tiny, tmp_path, monkeypatch, capsys):
    config = json.loads(tiny["folders"][0].joinpath("config.json").read_text())["config"]
    parameters = json.loads(tiny["folders"][0].joinpath("metadata.json").read_text())["parameter_count"]
    tiny_config = {key: config[key] for key in preset_registry.PRESETS["din_conference_x2"].config}
    info = dataclasses.replace(
        preset_registry.PRESETS["din_conference_x2"], config=tiny_config, parameters=parameters, hf_handle=HANDLE
    )
    monkeypatch.setitem(preset_registry.PRESETS, info.name, info)  # a registered preset small enough to upload here
    shutil.copytree(tiny["folders"][0], tmp_path / info.name)
    publish = load_tool("publish_presets").main
    assert publish(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"would upload {tmp_path / info.name} -> {HANDLE}: config.json (" in out
    assert "README.md (written from config.json and metadata.json)" in out and "dry run: 1 preset(s)" in out
    assert hub.requests == []
    assert publish(["--root", str(tmp_path), "--only", info.name, "--upload"]) == 0
    assert f"uploaded {info.name}: {HANDLE}@" in capsys.readouterr().out
    model = keras_din.DIN.from_preset(HANDLE)
    np.testing.assert_array_equal(_outputs(model, tiny["x"]), tiny["outputs"][0])


def test_model_card_metadata_reads_back_through_huggingface_hub(tiny):
    config = json.loads(tiny["folders"][0].joinpath("config.json").read_text())
    data = ModelCard(model_card("din_tiny", HANDLE, config, {})).data
    assert (data.license, data.library_name, data.pipeline_tag) == ("apache-2.0", "keras", "image-to-image")
    assert "super-resolution" in data.tags and data.metrics == ["psnr", "ssim"]
    assert data.datasets == ["eugenesiow/Set5", "eugenesiow/Set14", "eugenesiow/BSD100", "eugenesiow/Urban100"]


def test_restoration_card_names_its_task_and_its_data_without_local_paths(tiny):
    config = {"config": {"version": "enhanced", "scale": 1, "in_channels": 1, "out_channels": 1}}
    row = {
        "dataset": "Classic5",
        "task": "jpeg",
        "level": 10,
        "images": 5,
        "input_psnr": 27.82,
        "psnr": 29.1,
        "ssim": 0.8,
        "input_ssim": 0.76,
        "input_psnr_b": 25.21,
        "psnr_b": 28.9,
    }
    training = {
        "command": "keras-din train x.json",
        "epochs_done": 2,
        "steps": 500,
        "patches_seen": 8000,
        "data": ["../shared/datasets/T91/HR", "/home/me/BSD200/HR"],
        "degradation": "JPEG q 10-90",
    }
    card = model_card("din_grey", HANDLE, config, {"results": [row], "training": training})
    data = ModelCard(card).data
    assert "jpeg-artifact-removal" in data.tags and "super-resolution" not in data.tags
    assert "| Classic5 | jpeg | 10 | 5 | 27.82 / 0.7600 | 29.10 / 0.8000 | 25.21 | 28.90 |" in card
    assert "on T91 + BSD200 (JPEG q 10-90)" in card and "shared" not in card and "/home" not in card


def test_model_card_says_which_epochs_ran_in_which_precision(tiny):
    config = json.loads(tiny["folders"][0].joinpath("config.json").read_text())
    training = {
        "command": "keras-din train run.json",
        "data": ["T91/HR"],
        "epochs_done": 40,
        "steps": 10_000,
        "patches_seen": 160_000,
        "backend": "tensorflow",
        "history": [
            {"from_epoch": 1, "backend": "tensorflow", "mixed_precision": None},
            {"from_epoch": 31, "backend": "tensorflow", "mixed_precision": "mixed_bfloat16"},
        ],
    }
    card = model_card("din_tiny", HANDLE, config, {"training": training})
    assert "for 40 epochs (10,000 steps, 160,000 patches)" in card
    assert "epochs 1–30 in float32 and 31–40 in mixed_bfloat16." in card
    training["history"] = training["history"][1:2]
    training["history"][0]["from_epoch"] = 1
    assert "backend, in mixed_bfloat16." in model_card("din_tiny", HANDLE, config, {"training": training})
    training["history"] = [
        {"from_epoch": 1, "backend": "torch", "mixed_precision": None, "machine": "AMD EPYC, 2 CPUs, AVX2"},
        {"from_epoch": 23, "backend": "tensorflow", "mixed_precision": "mixed_bfloat16", "machine": "Zen 4, 2 CPUs"},
    ]
    card = model_card("din_tiny", HANDLE, config, {"training": training})
    assert (
        "patches) on T91, epochs 1–22 on torch in float32 (AMD EPYC, 2 CPUs, AVX2) and "
        "23–40 on tensorflow in mixed_bfloat16 (Zen 4, 2 CPUs)." in card
    )


def test_model_card_names_degradation_levels_per_stretch_only_where_they_changed(tiny):
    config = {"config": {"version": "enhanced", "scale": 1, "in_channels": 1, "out_channels": 1}}
    stretch = {"backend": "tensorflow", "mixed_precision": None}
    training = {
        "command": "keras-din train x.json",
        "data": ["T91/HR"],
        "epochs_done": 40,
        "steps": 10_000,
        "patches_seen": 160_000,
        "history": [{"from_epoch": 1, **stretch, "jpeg_quality": [10, 95]}, {"from_epoch": 31, **stretch, "ema": 0.9}],
    }
    training["history"][1]["jpeg_quality"] = [10, 95]
    card = model_card("din_grey", HANDLE, config, {"training": training})
    assert "quality" not in card.split("Trained with")[1]
    training["history"][1]["jpeg_quality"] = [10, 40]
    card = model_card("din_grey", HANDLE, config, {"training": training})
    assert (
        "epochs 1–30 in float32 at JPEG quality 10–95 and "
        "31–40 in float32 at JPEG quality 10–40 with an EMA of the weights at momentum 0.9." in card
    )


def test_model_card_gives_the_learning_rate_schedule_with_a_warm_restart(tiny):
    config = json.loads(tiny["folders"][0].joinpath("config.json").read_text())
    schedule = {"lr_milestones": [20, 30, 45], "lr_values": [5e-4, 1e-4, 5e-4, 2.5e-4]}
    solver = load_config({"data": {"train": "T91/HR"}, "solver": schedule})["solver"]
    training = {
        "command": "keras-din train run.json",
        "data": ["T91/HR"],
        "epochs_done": 40,  # the last milestone is not reached yet
        "steps": 10_000,
        "patches_seen": 160_000,
        "learning_rates": lr_stretches(solver, 40),
    }
    card = model_card("din_tiny", HANDLE, config, {"training": training})
    assert "Adam, learning rate 0.0005 for epochs 1–20, 0.0001 for 21–30, 0.0005 for 31–40." in card


def test_model_card_of_a_run_packaged_mid_cosine_says_where_the_cosine_ends(tiny):
    config = json.loads(tiny["folders"][0].joinpath("config.json").read_text())
    cosine = {"epochs": 120, "learning_rate": 5e-4, "lr_cosine": True}
    solver = load_config({"data": {"train": "T91/HR"}, "solver": cosine})["solver"]
    training = {"command": "keras-din train run.json", "data": ["T91/HR"], "epochs_done": 68, "steps": 17_000,
                "patches_seen": 272_000, "learning_rates": lr_stretches(solver, 68)}  # fmt: skip
    card = model_card("din_tiny", HANDLE, config, {"training": training})
    assert "annealed to 0" not in card
    assert "0.0005 on a half cosine that reaches 0 at epoch 120, for epochs 1–68 (training goes on)." in card
    finished = {**training, "epochs_done": 120, "learning_rates": lr_stretches(solver, 120)}
    card = model_card("din_tiny", HANDLE, config, {"training": finished})
    assert "Adam, learning rate 0.0005 annealed to 0 by a half cosine for epochs 1–120." in card
