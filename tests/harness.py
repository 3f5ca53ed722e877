"""The shared test harness: what every keras-din layer and every preset must prove, in one place.

In the manner of KerasHub's `TestCase.run_layer_test` / `run_preset_test`: a test module states
its cases (a layer factory and input shapes; a preset and an input) and calls one function,
which checks the same properties for each case, so a new layer or preset gets the whole list.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import keras
import numpy as np

import keras_din
from keras_din.preset.registry import get_preset

_RNG = np.random.default_rng(0)


def to_numpy(x):
    """A backend tensor (or array) as a numpy array."""
    return keras.ops.convert_to_numpy(x)


def to_first(x):
    """NHWC arrays (one or a list) as NCHW."""
    return [to_first(a) for a in x] if isinstance(x, list) else np.transpose(x, (0, 3, 1, 2))


def _inputs(shapes: list[tuple]) -> np.ndarray | list[np.ndarray]:
    arrays = [_RNG.standard_normal(shape).astype("float32") for shape in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


def _output_with_weights_of(layer, source, x) -> np.ndarray:
    """Builds `layer` on `x`, gives it `source`'s weights, and returns its output."""
    layer(x)
    layer.set_weights(source.get_weights())
    return to_numpy(layer(x))


def run_layer_test(make: Callable[..., keras.layers.Layer], input_shapes: list[tuple], expected_shape: tuple) -> None:
    """Checks a layer made by `make(data_format=..., dtype=...)` on inputs of `input_shapes` (NHWC):

    1. its output has `expected_shape`, which `compute_output_shape` also gives, and in a functional
       model with unknown height and width the symbolic output has the right channels;
    2. `channels_first` computes the same function as `channels_last` (weights copied);
    3. `get_config` → `from_config` (through Keras serialization) rebuilds the same layer;
    4. it trains: a few SGD steps on a loss of its output lower it and move its weights;
    5. under `mixed_bfloat16` it computes in bfloat16 with float32 weights, close to float32.
    """
    x = _inputs(input_shapes)
    layer = make(data_format="channels_last")
    y = to_numpy(layer(x))
    assert y.shape == expected_shape
    assert tuple(layer.compute_output_shape(input_shapes if len(input_shapes) > 1 else input_shapes[0])) == y.shape
    symbolic = [keras.Input((None, None, shape[-1]), batch_size=shape[0]) for shape in input_shapes]
    output = make(data_format="channels_last")(symbolic if len(symbolic) > 1 else symbolic[0])
    assert tuple(output.shape) == (expected_shape[0], None, None, expected_shape[-1])

    y_first = _output_with_weights_of(make(data_format="channels_first"), layer, to_first(x))
    np.testing.assert_allclose(to_first(y), y_first, atol=1e-5, rtol=1e-5)

    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    json.dumps(layer.get_config())  # the config is plain data
    np.testing.assert_array_equal(_output_with_weights_of(clone, layer, x), y)

    if layer.trainable_weights:  # a layer without weights (a fixed resampling) has nothing to train
        _assert_trains(make, input_shapes, x)

    mixed = make(data_format="channels_last", dtype="mixed_bfloat16")
    y_mixed = _output_with_weights_of(mixed, layer, x)
    assert keras.backend.standardize_dtype(mixed(x).dtype) == "bfloat16"
    assert all(w.dtype == "float32" for w in mixed.weights)
    np.testing.assert_allclose(y_mixed.astype("float32"), y, atol=0.1 * max(1.0, float(np.abs(y).max())), rtol=0.05)


def _assert_trains(make, input_shapes, x) -> None:
    inputs = [keras.Input(shape[1:], batch_size=shape[0]) for shape in input_shapes]
    inputs = inputs if len(inputs) > 1 else inputs[0]
    layer = make(data_format="channels_last")
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    target = _RNG.standard_normal(model.output.shape).astype("float32")
    before = [to_numpy(w) for w in layer.trainable_weights]
    losses = [float(model.train_on_batch(x, target)) for _ in range(4)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
    changed = [not np.array_equal(to_numpy(w), old) for w, old in zip(layer.trainable_weights, before)]
    # Weights behind a ReLU that a random init left dead may get no gradient; most must move.
    assert sum(changed) >= 0.5 * len(changed), [w.path for w, c in zip(layer.trainable_weights, changed) if not c]


def run_preset_test(preset: str, x: np.ndarray, tmp_path) -> keras_din.DIN:
    """Checks a preset given by name or folder on the NHWC batch `x` in [0, 1]:

    1. it loads (its weights' SHA-256 checked), with the registered parameter count when registered;
    2. its config is plain data that rebuilds the same network;
    3. the output has the input's height and width times its scale, and is finite;
    4. `save_to_preset` → `from_preset` gives the same output; `channels_first` gives it too;
    5. loading without weights builds the same architecture.
    Returns the loaded model.
    """
    model = keras_din.DIN.from_preset(preset)
    if isinstance(preset, str) and not preset.startswith(("hf://", "/", ".")):
        assert model.count_params() == get_preset(preset).parameters
    config = model.get_config()
    json.dumps(config)
    assert keras_din.DIN.from_config(config).get_config() == config

    y = to_numpy(model(x))
    scale = model.scale
    assert y.shape == (x.shape[0], x.shape[1] * scale, x.shape[2] * scale, model.out_channels)
    assert np.isfinite(y).all()

    folder = model.save_to_preset(tmp_path / "saved")
    np.testing.assert_array_equal(to_numpy(keras_din.DIN.from_preset(folder)(x)), y)
    first = keras_din.DIN.from_preset(folder, data_format="channels_first")
    np.testing.assert_allclose(np.transpose(to_numpy(first(to_first(x))), (0, 2, 3, 1)), y, atol=1e-4)

    empty = keras_din.DIN.from_preset(folder, load_weights=False)
    assert empty.get_config() == config and empty.count_params() == model.count_params()
    return model
