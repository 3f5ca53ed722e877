"""Packaging a training run: the checkpoint's network is what ships, and only under its registered name."""

import numpy as np
import pytest

import keras_din
from keras_din.preset.registry import get_preset
from tools.package_trained_preset import trained_model

from test_presets import tiny_din


def test_a_checkpoint_of_the_registered_architecture_ships_its_weights_under_the_presets_name(tmp_path):
    info = get_preset("din_small_x2")
    # as a run saves it: mixed precision, named after its own model, not the preset
    run_model = keras_din.DIN(**info.config, dtype="mixed_bfloat16")
    checkpoint = tmp_path / "checkpoint-0003.keras"
    run_model.save(checkpoint)

    model = trained_model(checkpoint, info)

    assert model.name == info.name and model.dtype_policy.name == "float32"
    assert {key: model.get_config()[key] for key in info.config} == info.config
    assert len(model.weights) == len(run_model.weights)
    for shipped, trained in zip(model.weights, run_model.weights):
        assert shipped.path == trained.path
        np.testing.assert_array_equal(np.asarray(shipped), np.asarray(trained))


def test_a_checkpoint_of_another_architecture_is_refused_naming_what_differs(tmp_path):
    checkpoint = tmp_path / "checkpoint-0001.keras"
    tiny_din(0).save(checkpoint)
    differ = r"num_features 8 \(registry: 16\), growth_rate 2 \(registry: 8\), num_blocks 1 \(registry: 2\)\."
    with pytest.raises(SystemExit, match=differ) as refusal:
        trained_model(checkpoint, get_preset("din_small_x2"))
    # what the two share (scale 2, two branches) is not named
    message = str(refusal.value)
    assert message.startswith(f"{checkpoint} is not din_small_x2's") and "num_branches" not in message
