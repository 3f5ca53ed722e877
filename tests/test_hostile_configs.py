"""Hostile and careless sizes: a config or checkpoint that asks for an absurd network, or one its weights
do not fit, is refused by name in milliseconds, before any layer is built, on every backend."""

import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_din
from keras_din.architecture import MAX_PARAMETERS, MAX_SIZES, check_architecture, parameter_count
from keras_din.convert import CheckpointError, convert_official_checkpoint, official_state_dict
from keras_din.preset import PresetError, sha256_of

from test_presets import tiny_din

SIZES = ("num_features", "growth_rate", "num_branches", "num_blocks", "in_channels", "out_channels")


@pytest.mark.parametrize(
    "config",
    [
        dict(version="conference", scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1),
        dict(
            version="conference",
            scale=3,
            num_features=12,
            growth_rate=4,
            num_branches=1,
            num_blocks=2,
            in_channels=1,
            out_channels=1,
        ),
        dict(
            version="enhanced", scale=4, num_features=8, growth_rate=3, num_branches=3, num_blocks=2, attention_ratio=2
        ),
        dict(version="enhanced", scale=8, num_features=4, growth_rate=2, num_branches=2, num_blocks=3),
        dict(version="enhanced", scale=1, num_features=16, growth_rate=8, num_branches=2, num_blocks=2),
    ],
)
def test_the_parameter_count_from_the_arguments_is_what_keras_builds(config):
    with keras.StatelessScope(initialize_variables=False):  # shapes only: JAX compiles each initializer shape
        model = keras_din.DIN(**config)
    arguments = {"in_channels": 3, "out_channels": 3, "attention_ratio": model.attention_ratio, **config}
    assert parameter_count(**arguments) == model.count_params()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One real saved tiny preset, built once: each test edits its own copy."""
    return tiny_din(3).save_to_preset(tmp_path_factory.mktemp("hostile") / "preset")


def _preset(tmp_path, saved, **changes):
    """A copy of the tiny preset whose config.json says `changes` (the weights stay the tiny network's)."""
    folder = Path(shutil.copytree(saved, tmp_path / "preset"))
    config = json.loads((folder / "config.json").read_text())
    config["config"].update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _refused_quickly(call, error, match):
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        call()
    return time.perf_counter() - start


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("value", [0, 1_000_000_000, "8", 8.0, True])
def test_a_config_size_out_of_bounds_is_refused_by_name_before_building(tmp_path, saved, size, value):
    folder = _preset(tmp_path, saved, **{size: value})
    for load_weights in (True, False):
        seconds = _refused_quickly(
            lambda load_weights=load_weights: keras_din.DIN.from_preset(folder, load_weights=load_weights),
            PresetError,
            f"{size} must be an integer",
        )
        assert seconds < 0.5  # building even a small DIN takes longer than this on every backend


def test_a_network_past_the_parameter_cap_is_refused_though_each_size_is_in_bounds(tmp_path, saved):
    big = {size: MAX_SIZES[size] for size in ("num_features", "growth_rate", "num_branches", "num_blocks")}
    folder = _preset(tmp_path, saved, **big)
    seconds = _refused_quickly(
        lambda: keras_din.DIN.from_preset(folder, load_weights=False), PresetError, "parameters, more than"
    )
    assert seconds < 0.5
    with pytest.raises(ValueError, match=f"more than the {MAX_PARAMETERS:,}"):
        keras_din.DIN(version="conference", scale=2, **big)


def test_a_config_that_its_weights_do_not_fit_is_refused_before_building(tmp_path, saved):
    folder = _preset(tmp_path, saved, num_features=64, growth_rate=32, num_branches=4, num_blocks=5)  # the paper's size
    seconds = _refused_quickly(lambda: keras_din.DIN.from_preset(folder), PresetError, "do not belong together")
    assert seconds < 0.5


def test_a_weights_file_that_is_not_hdf5_is_a_preset_error(tmp_path, saved):
    folder = _preset(tmp_path, saved)
    weights = folder / "model.weights.h5"
    weights.write_bytes(b"not an HDF5 file" * 100)
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["weights"]["model.weights.h5"] = {"sha256": sha256_of(weights), "size": weights.stat().st_size}
    (folder / "metadata.json").write_text(json.dumps(metadata))  # a hostile preset hashes its own junk
    with pytest.raises(PresetError, match="not a readable Keras weights file"):
        keras_din.DIN.from_preset(folder)


def test_an_unknown_config_key_is_a_preset_error_naming_the_config(tmp_path, saved):
    folder = _preset(tmp_path, saved, num_feature=64)
    with pytest.raises(PresetError, match="config.json.*does not describe a buildable DIN"):
        keras_din.DIN.from_preset(folder, load_weights=False)


def test_a_checkpoint_claiming_a_huge_network_is_refused_before_building(tmp_path):
    from safetensors.numpy import save_file

    small = keras_din.DIN(version="enhanced", scale=1, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
    state = official_state_dict(small)
    state["feat_conv.weight"] = np.zeros((100_000, 3, 3, 3), np.float32)  # claims 100,000 features
    path = tmp_path / "huge.safetensors"
    save_file(state, str(path))
    seconds = _refused_quickly(
        lambda: convert_official_checkpoint(path), CheckpointError, "num_features must be an integer from 1 to 1024"
    )
    assert seconds < 2


def test_check_architecture_names_the_argument_and_range():
    with pytest.raises(ValueError, match="num_branches must be an integer from 1 to 16, got 1000000"):
        check_architecture("conference", 2, 64, 32, 1_000_000, 5, 3, 3, None)
    with pytest.raises(ValueError, match="attention_ratio must be an integer from 1 to num_features"):
        check_architecture("enhanced", 2, 8, 4, 2, 2, 3, 3, 64)


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory):
    """One real `.keras` file of the tiny network (`model.save`, what a training checkpoint is), and its model."""
    model = tiny_din(3)
    path = tmp_path_factory.mktemp("keras_file") / "tiny.keras"
    model.save(path)
    return path, model


def _rewritten(keras_file, tmp_path, **members):
    """A copy of the `.keras` zip with `members` (name: bytes, or None to leave it out) replaced."""
    import zipfile

    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(keras_file) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            if members.get(name, b"") is not None:
                target.writestr(name, members.get(name) or source.read(name))
        for name, data in members.items():
            if name not in source.namelist() and data is not None:
                target.writestr(name, data)
    return path


def test_a_keras_file_is_a_preset(keras_file):
    path, model = keras_file
    x = np.random.default_rng(0).random((1, 5, 6, 3)).astype("float32")
    loaded = keras_din.DIN.from_preset(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)))
    assert keras_din.DIN.from_preset(path, load_weights=False).count_params() == model.count_params()


def test_a_keras_file_describing_another_class_is_refused_and_nothing_is_imported(keras_file, tmp_path):
    import zipfile

    with zipfile.ZipFile(keras_file[0]) as archive:
        config = json.loads(archive.read("config.json"))
    config.update(module="os", class_name="system", config={"command": "touch pwned"})
    path = _rewritten(keras_file[0], tmp_path, **{"config.json": json.dumps(config).encode()})
    named = r"config.json in '.*edited.keras' does not describe a keras_din DIN model \(it describes a 'system'\)"
    with pytest.raises(PresetError, match=named):
        keras_din.DIN.from_preset(path)
    assert not Path("pwned").exists()


def test_a_keras_file_claiming_a_huge_network_is_refused_before_building(keras_file, tmp_path):
    import zipfile

    with zipfile.ZipFile(keras_file[0]) as archive:
        config = json.loads(archive.read("config.json"))
    config["config"]["num_features"] = 1_000_000_000
    path = _rewritten(keras_file[0], tmp_path, **{"config.json": json.dumps(config).encode()})
    seconds = _refused_quickly(lambda: keras_din.DIN.from_preset(path), PresetError, "num_features must be an integer")
    assert seconds < 0.5


@pytest.mark.parametrize(
    "members, match",
    [
        ({"model.weights.h5": None}, r"'.*edited.keras' has no model.weights.h5"),
        ({"model.weights.h5": b"not an HDF5 file" * 100}, "model.weights.h5 in '.*' is not a readable Keras weights"),
        ({"config.json": b"{not json"}, r"config.json in '.*edited.keras' is not valid JSON"),
    ],
)
def test_a_broken_keras_file_is_a_preset_error_naming_it(keras_file, tmp_path, members, match):
    with pytest.raises(PresetError, match=match):
        keras_din.DIN.from_preset(_rewritten(keras_file[0], tmp_path, **members))


def test_a_keras_file_that_is_not_a_zip_or_unpacks_too_big_is_refused_unread(keras_file, tmp_path):
    from keras_din.preset import MAX_TEXT_BYTES

    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"not a zip" * 100)
    with pytest.raises(PresetError, match=r"'.*junk.keras' is not a readable .keras file"):
        keras_din.DIN.from_preset(junk)
    bomb = _rewritten(keras_file[0], tmp_path, **{"config.json": b" " * (MAX_TEXT_BYTES + 1)})
    assert bomb.stat().st_size < 1 << 20  # 64 MiB of spaces packed into a few hundred kB
    seconds = _refused_quickly(lambda: keras_din.DIN.from_preset(bomb), PresetError, "unpacks to .* refused unread")
    assert seconds < 0.5


def _weights_member(keras_file, tmp_path, edit):
    """The `.keras` file's model.weights.h5 after `edit(h5py.File)`, as bytes."""
    import zipfile

    import h5py

    with zipfile.ZipFile(keras_file) as archive:
        (tmp_path / "w.h5").write_bytes(archive.read("model.weights.h5"))
    with h5py.File(tmp_path / "w.h5", "r+") as weights:
        edit(weights)
    return (tmp_path / "w.h5").read_bytes()


def test_a_keras_files_optimizer_state_is_never_read(keras_file, tmp_path):
    # 16 GiB of optimizer "state" that takes no room in the file (HDF5 allocates chunks when written)
    def huge_optimizer_slot(weights):
        weights.create_dataset("optimizer/vars/0", shape=(1 << 32,), dtype="float32", chunks=(1 << 20,))

    member = _weights_member(keras_file[0], tmp_path, huge_optimizer_slot)
    path = _rewritten(keras_file[0], tmp_path, **{"model.weights.h5": member})
    x = np.random.default_rng(0).random((1, 5, 6, 3)).astype("float32")
    loaded = keras_din.DIN.from_preset(path)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(keras_file[1](x)))


def test_a_weight_that_is_not_an_array_of_numbers_is_refused_unread(keras_file, tmp_path):
    def string_weight(weights):
        group = next(name for name in _groups(weights) if name.endswith("/vars") and len(weights[name]))
        key = sorted(weights[group])[0]
        shape = weights[group][key].shape
        del weights[group][key]
        weights[group].create_dataset(key, shape=shape, dtype="S1000000")  # a megabyte per "number"

    member = _weights_member(keras_file[0], tmp_path, string_weight)
    path = _rewritten(keras_file[0], tmp_path, **{"model.weights.h5": member})
    with pytest.raises(PresetError, match=r"holds '.*' \(\|S1000000\): not an array of numbers"):
        keras_din.DIN.from_preset(path)


def _groups(weights):
    names = []
    weights.visit(lambda name: names.append(name))
    return names


def test_a_keras_weights_member_larger_than_its_network_can_need_is_refused_unread(keras_file, tmp_path):
    path = _rewritten(keras_file[0], tmp_path, **{"model.weights.h5": bytes(20 << 20)})  # 20 MiB of zeros
    pattern = r"model.weights.h5 unpacks to 20,971,520 bytes, more than the .* its config's network can need"
    seconds = _refused_quickly(lambda: keras_din.DIN.from_preset(path), PresetError, pattern)
    assert seconds < 0.5


def test_a_damaged_or_missing_keras_file_is_a_preset_error_naming_it(keras_file, tmp_path):
    import zipfile

    path = _rewritten(keras_file[0], tmp_path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
    data = bytearray(path.read_bytes())
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    data[middle : middle + 64] = bytes(64)  # damage the packed weights
    path.write_bytes(bytes(data))
    with pytest.raises(PresetError, match=r"edited.keras': its model.weights.h5 cannot be unpacked"):
        keras_din.DIN.from_preset(path)
    with pytest.raises(PresetError, match=r"'.*missing.KERAS': no such .keras file"):
        keras_din.DIN.from_preset(tmp_path / "missing.KERAS")
