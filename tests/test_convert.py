"""The checkpoint converter on real files: formats, detection, and every way a file can be wrong."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

import keras_din
from keras_din.convert import CheckpointError, detect_config, read_checkpoint

from conftest import CASES, OFFICIAL, REPO


def _state(name):
    return read_checkpoint(OFFICIAL / CASES[name]["checkpoint"])


def _save(tmp_path, state, name="edited.pth"):
    path = tmp_path / name
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path)
    return path


def test_detects_every_hyper_parameter_from_names_and_shapes(official_case):
    config = detect_config(_state(official_case["name"]))
    constructor = official_case["constructor"]
    assert config == {
        "version": official_case["version"],
        "scale": constructor["upscale_factor"],
        "num_features": constructor["num_features"],
        "growth_rate": constructor["growthrate"],
        "num_branches": 4,
        "num_blocks": 5,
        "in_channels": constructor["in_channels"],
        "out_channels": constructor["out_channels"],
        "attention_ratio": 8 if official_case["version"] == "conference" else 4,
    }


def test_training_checkpoint_has_module_prefix_stripped():
    raw = torch.load(OFFICIAL / "conference_x2.pth", weights_only=True)
    assert all(key.startswith("module.") for key in raw["state_dict"])
    state = _state("conference_x2")
    assert set(state) == {key[len("module.") :] for key in raw["state_dict"]}


def test_bare_state_dict_with_data_parallel_prefix(tmp_path):
    state = _state("conference_grey_x2")
    path = tmp_path / "prefixed.pth"
    torch.save({f"module.{k}": torch.from_numpy(v) for k, v in state.items()}, path)
    case = CASES["conference_grey_x2"]
    model = keras_din.convert_official_checkpoint(path)
    x = np.load(OFFICIAL / case["input"]).transpose(0, 2, 3, 1)
    y = keras.ops.convert_to_numpy(model(x)).transpose(0, 3, 1, 2)
    assert np.abs(y - np.load(OFFICIAL / case["output_f64"])).max() <= 1e-4


def test_detects_smaller_grids_and_scale_one(tmp_path):
    for config in (
        dict(version="conference", scale=3, num_branches=2, num_blocks=3),
        dict(version="enhanced", scale=1, num_branches=3, num_blocks=2, in_channels=1, out_channels=1),
    ):
        model = keras_din.DIN(num_features=8, growth_rate=2, **config)
        state = keras_din.convert.official_state_dict(model)
        detected = detect_config(state)
        assert {k: detected[k] for k in config} == config


def test_safetensors_loads_without_torch():
    script = (
        "import sys; sys.modules['torch'] = None\n"
        "import keras_din\n"
        f"m = keras_din.convert_official_checkpoint({str(OFFICIAL / 'enhanced_x8.safetensors')!r})\n"
        "assert (m.version, m.scale) == ('enhanced', 8), (m.version, m.scale)\n"
        "print('ok', m.count_params())"
    )
    # Keras' torch backend imports torch itself; read the file under another backend then.
    backend = "jax" if keras.backend.backend() == "torch" else keras.backend.backend()
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"ok {CASES['enhanced_x8']['param_count']}" in result.stdout


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_that_carries_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    state = {k: torch.from_numpy(v) for k, v in _state("conference_x2").items()}
    torch.save({"state_dict": state, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="Refused to load .*evil.pth.*Nothing from it was run"):
        keras_din.convert_official_checkpoint(path)
    assert not marker.exists()


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "truncated.pth"
    data = (OFFICIAL / "conference_x3.pth").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth.*not a readable PyTorch checkpoint"):
        keras_din.convert_official_checkpoint(path)


def test_truncated_safetensors_is_named(tmp_path):
    path = tmp_path / "truncated.safetensors"
    data = (OFFICIAL / "enhanced_x8.safetensors").read_bytes()
    path.write_bytes(data[:-1000])
    with pytest.raises(CheckpointError, match="truncated.safetensors.*not a readable safetensors"):
        keras_din.convert_official_checkpoint(path)


def test_missing_tensor_is_named(tmp_path):
    state = _state("enhanced_x3")
    del state["WRDB2_3.RDB1.conv4.bias"]
    with pytest.raises(CheckpointError, match=r"missing tensors: 'WRDB2_3\.RDB1\.conv4\.bias'"):
        keras_din.convert_official_checkpoint(_save(tmp_path, state))


def test_unexpected_tensor_is_named(tmp_path):
    state = _state("conference_x4")
    state["WRDB1_1.RDB4.conv1.weight"] = np.zeros((4, 8, 3, 3), np.float32)
    with pytest.raises(CheckpointError, match=r"unexpected tensors: 'WRDB1_1\.RDB4\.conv1\.weight'"):
        keras_din.convert_official_checkpoint(_save(tmp_path, state))


def test_mis_shaped_tensor_is_named(tmp_path):
    state = _state("conference_x2")
    state["AsyCA3_4.conv_ic.weight"] = np.zeros((16, 2, 1, 1), np.float32)
    with pytest.raises(
        CheckpointError, match=r"mis-shaped tensors: 'AsyCA3_4\.conv_ic\.weight: checkpoint \(16, 2, 1, 1\)"
    ):
        keras_din.convert_official_checkpoint(_save(tmp_path, state))


def test_not_a_din_checkpoint(tmp_path):
    path = _save(tmp_path, {"fc.weight": np.zeros((3, 4), np.float32)}, "classifier.pth")
    with pytest.raises(CheckpointError, match="classifier.pth.*Not a DIN checkpoint"):
        keras_din.convert_official_checkpoint(path)


def test_non_tensor_entry_is_named(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"feat_conv.weight": [1.0, 2.0]}, path)
    with pytest.raises(CheckpointError, match="'feat_conv.weight' is a list, not a tensor"):
        keras_din.convert_official_checkpoint(path)


@pytest.mark.parametrize(
    "entry, message",
    [
        (torch.tensor(1.0), "'feat_conv.weight' is a scalar, not a weight tensor"),
        (torch.eye(3).to_sparse(), "'feat_conv.weight' is not a dense float tensor"),
        (torch.tensor([1.0, float("nan")]), "'feat_conv.weight' holds NaN or Inf values"),
        (torch.tensor([float("inf")]), "'feat_conv.weight' holds NaN or Inf values"),
    ],
)
def test_scalar_sparse_and_non_finite_tensors_are_named(tmp_path, entry, message):
    state = {k: torch.from_numpy(v) for k, v in _state("conference_x2").items()}
    state["feat_conv.weight"] = entry
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=message):
        keras_din.convert_official_checkpoint(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        keras_din.convert_official_checkpoint(tmp_path / "nowhere.pth")


def test_copied_checkpoint_with_other_suffix_loads(tmp_path):
    path = tmp_path / "best_ckp.pt"
    shutil.copy(OFFICIAL / "enhanced_grey_x3.pth", path)
    assert keras_din.convert_official_checkpoint(path).in_channels == 1
