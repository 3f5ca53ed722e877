"""`DIN` against the outputs of the authors' own code (../shared/fixtures/official_din)."""

import keras
import numpy as np
import pytest

import keras_din
from keras_din.convert import official_state_dict, read_checkpoint

from conftest import OFFICIAL, PAPER_CONFIGS

TOLERANCE = 1e-4  # float32 against the authors' float64 output; observed about 2e-5 at most.


def _run(model, nchw):
    if model.data_format == "channels_last":
        return np.transpose(keras.ops.convert_to_numpy(model(np.transpose(nchw, (0, 2, 3, 1)))), (0, 3, 1, 2))
    return keras.ops.convert_to_numpy(model(nchw))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_converted_checkpoint_reproduces_the_authors_output(official_case, data_format):
    case = official_case
    model = keras_din.convert_official_checkpoint(OFFICIAL / case["checkpoint"], data_format=data_format)
    constructor = case["constructor"]
    assert (model.version, model.scale, model.num_features, model.growth_rate) == (
        case["version"],
        constructor["upscale_factor"],
        constructor["num_features"],
        constructor["growthrate"],
    )
    assert (model.in_channels, model.out_channels) == (constructor["in_channels"], constructor["out_channels"])
    assert model.count_params() == case["param_count"]
    output = _run(model, np.load(OFFICIAL / case["input"]))
    expected = np.load(OFFICIAL / case["output_f64"])
    assert output.shape == expected.shape == tuple(case["output_shape"])
    error = np.abs(output - expected).max()
    print(f"{keras.backend.backend()} {data_format} {case['name']}: max |error| = {error:.3g}")
    assert error <= TOLERANCE


def test_official_state_dict_returns_the_checkpoint_tensors_exactly(official_case):
    path = OFFICIAL / official_case["checkpoint"]
    state = read_checkpoint(path)
    exported = official_state_dict(keras_din.convert_official_checkpoint(path))
    assert exported.keys() == state.keys()
    for name, tensor in state.items():
        np.testing.assert_array_equal(exported[name], tensor, err_msg=name)


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_configuration_matches_the_authors_network(name):
    paper = PAPER_CONFIGS[name]
    constructor = paper["constructor"]
    model = keras_din.DIN(
        version=paper["version"],
        scale=constructor["upscale_factor"],
        num_features=constructor["num_features"],
        growth_rate=constructor["growthrate"],
        in_channels=constructor["in_channels"],
        out_channels=constructor["out_channels"],
    )
    assert model.count_params() == paper["param_count"]
    shapes = {key: tuple(value.shape) for key, value in official_state_dict(model).items()}
    assert shapes == {key: tuple(shape) for key, shape in paper["state_dict"]}
