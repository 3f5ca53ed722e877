"""Saving and loading: config round trips, `.keras` files, preset folders, across backends."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_din
from keras_din.convert import official_state_dict
from keras_din.preset import PresetError, sha256_of

from conftest import CASES, OFFICIAL, REPO
from harness import run_preset_test

BACKENDS = ("tensorflow", "jax", "torch")


@pytest.fixture(scope="module")
def converted():
    case = CASES["enhanced_x4"]
    model = keras_din.convert_official_checkpoint(OFFICIAL / case["checkpoint"])
    x = np.load(OFFICIAL / case["input"]).transpose(0, 2, 3, 1)
    return model, x, keras.ops.convert_to_numpy(model(x))


def test_config_is_data_and_rebuilds_the_model(converted):
    model, _, _ = converted
    config = model.get_config()
    json.dumps(config)  # plain JSON, nothing opaque
    clone = keras_din.DIN.from_config(config)
    assert clone.get_config() == config
    assert clone.count_params() == model.count_params()


def test_keras_file_round_trip(converted, tmp_path):
    model, x, y = converted
    model.save(tmp_path / "din.keras")
    loaded = keras.saving.load_model(tmp_path / "din.keras", safe_mode=True)
    assert isinstance(loaded, keras_din.DIN)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), y)


def test_preset_folder_round_trip_also_loads_channels_first(converted, tmp_path):
    model, x, y = converted
    folder = model.save_to_preset(tmp_path / "preset")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metadata.json", "model.weights.h5"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["weights"]["model.weights.h5"]["sha256"] == sha256_of(folder / "model.weights.h5")
    assert metadata["parameter_count"] == model.count_params()
    loaded = run_preset_test(folder, x, tmp_path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), y)


def test_checkpoint_file_is_a_preset_too(converted):
    model, x, y = converted
    loaded = keras_din.DIN.from_preset(OFFICIAL / "enhanced_x4.pth")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), y)


def test_corrupted_preset_weights_are_refused(converted, tmp_path):
    model, _, _ = converted
    folder = model.save_to_preset(tmp_path / "preset")
    weights = folder / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PresetError, match="model.weights.h5.* is corrupted: its SHA-256"):
        keras_din.DIN.from_preset(folder)


def test_preset_without_weights_offers_the_ways_out(converted, tmp_path):
    model, _, _ = converted
    folder = model.save_to_preset(tmp_path / "preset")
    (folder / "model.weights.h5").unlink()
    with pytest.raises(PresetError, match="load_weights=False.*keras-din convert"):
        keras_din.DIN.from_preset(folder)
    fresh = keras_din.DIN.from_preset(folder, load_weights=False)
    assert fresh.get_config() == model.get_config()


def test_unknown_preset_is_named(tmp_path):
    with pytest.raises(PresetError, match="Unknown preset .*nothing-here"):
        keras_din.DIN.from_preset(str(tmp_path / "nothing-here"))


_LOAD_ELSEWHERE = """
import sys, numpy as np, keras, keras_din
from keras_din.convert import official_state_dict
folder = sys.argv[1]
x, y = np.load(folder + "/x.npy"), np.load(folder + "/y.npy")
weights = np.load(folder + "/weights.npz")
for model in (keras_din.DIN.from_preset(folder + "/preset"), keras.saving.load_model(folder + "/din.keras")):
    for name, tensor in official_state_dict(model).items():
        np.testing.assert_array_equal(tensor, weights[name], err_msg=name)
    error = np.abs(keras.ops.convert_to_numpy(model(x)) - y).max()
    assert error < 1e-4, error  # same weights; backends round differently (about 2e-5 here)
    print(keras.backend.backend(), type(model).__name__, error)
"""


def test_files_saved_under_this_backend_load_under_the_others(converted, tmp_path):
    model, x, y = converted
    model.save_to_preset(tmp_path / "preset")
    model.save(tmp_path / "din.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "weights.npz", **official_state_dict(model))
    for backend in BACKENDS:
        if backend == keras.backend.backend():
            continue
        env = {**os.environ, "KERAS_BACKEND": backend}
        result = subprocess.run(
            [sys.executable, "-c", _LOAD_ELSEWHERE, str(tmp_path)], env=env, capture_output=True, text=True, cwd=REPO
        )
        assert result.returncode == 0, f"{backend}: {result.stderr[-3000:]}"
        assert result.stdout.count(f"{backend} DIN") == 2, result.stdout


def test_loading_a_preset_builds_no_throwaway_layers(converted, tmp_path):
    # Keras' load_weights lists the attributes of a bare Layer() per layer it visits unless its cache of
    # them works (keras_din.preset.loader._cache_attr_skipsets); each bare Layer() takes the next
    # default name "layer_N", so Keras' counter of that name shows how many were built.
    model, x, y = converted
    folder = model.save_to_preset(tmp_path / "preset")
    keras_din.DIN.from_preset(folder)  # the first load may fill the cache
    before = keras.backend.get_uid("layer")
    loaded = keras_din.DIN.from_preset(folder)
    assert keras.backend.get_uid("layer") == before + 1, "load_weights built a bare Layer() per layer again"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), y)


def test_bfloat16_preset_weights_load_as_keras_load_weights_loads_them(tmp_path):
    # The loader reads the weights file in one pass (keras_din.preset.loader._WeightsInMemory) and Keras marks
    # bfloat16 arrays with an attribute: each variable must get the value and dtype Keras' own load_weights gives.
    model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1, dtype="bfloat16")
    folder = model.save_to_preset(tmp_path / "preset")
    fast = keras_din.DIN.from_preset(folder)
    plain = keras_din.DIN.from_config(model.get_config())
    plain.load_weights(folder / "model.weights.h5")
    pairs = list(zip(fast.weights, plain.weights, model.weights, strict=True))
    assert len({id(v) for v in fast.weights}) == len(pairs) > 20
    for ours, keras_own, saved in pairs:
        assert ours.path == keras_own.path and ours.dtype == keras_own.dtype == "bfloat16", (ours.path, ours.dtype)
        value = keras.ops.convert_to_numpy(keras.ops.cast(ours.value, "float32"))
        np.testing.assert_array_equal(value, keras.ops.convert_to_numpy(keras.ops.cast(keras_own.value, "float32")))
        np.testing.assert_array_equal(value, keras.ops.convert_to_numpy(keras.ops.cast(saved.value, "float32")))
