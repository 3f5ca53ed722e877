"""Each layer on its own: shapes, layouts, serialization, dtype policies, and independent references."""

import keras
import numpy as np
import pytest
import torch

from keras_din import layers
from keras_din.layers import RDB, WRDB, AsyCA, BilinearUpsample, InterleavedBlock, Upsampler, pixel_shuffle

RNG = np.random.default_rng(0)


def _to_first(x):
    return np.transpose(x, (0, 3, 1, 2))


def _np(x):
    return keras.ops.convert_to_numpy(x)


LAYER_CASES = {
    "rdb": (lambda df: RDB(6, 3, data_format=df), [(2, 5, 7, 6)]),
    "wrdb": (lambda df: WRDB(6, 2, data_format=df), [(1, 4, 6, 6)]),
    "asyca": (lambda df: AsyCA(8, ratio=4, data_format=df), [(2, 5, 3, 8), (2, 5, 3, 8)]),
    "interleaved": (
        lambda df: InterleavedBlock(8, 2, attention_ratio=8, data_format=df),
        [(1, 3, 4, 8), (1, 3, 4, 8)],
    ),
    "upsampler_x3": (lambda df: Upsampler(4, 3, out_channels=2, data_format=df), [(1, 3, 5, 4)]),
    "upsampler_x8": (lambda df: Upsampler(4, 8, out_channels=3, data_format=df), [(1, 2, 3, 4)]),
    "upsampler_x1": (lambda df: Upsampler(4, 1, out_channels=3, data_format=df), [(1, 2, 3, 4)]),
    "bilinear_x3": (lambda df: BilinearUpsample(3, data_format=df), [(2, 4, 5, 3)]),
}


def _inputs(shapes):
    arrays = [RNG.standard_normal(shape).astype("float32") for shape in shapes]
    return arrays if len(arrays) > 1 else arrays[0]


def _run_with_weights_of(layer, source, x):
    """Builds `layer` on `x`, gives it `source`'s weights, and returns its output."""
    layer(x)
    layer.set_weights(source.get_weights())
    return _np(layer(x))


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_channels_first_matches_channels_last(name):
    make, shapes = LAYER_CASES[name]
    x = _inputs(shapes)
    last = make("channels_last")
    y_last = _np(last(x))
    x_first = [_to_first(a) for a in x] if isinstance(x, list) else _to_first(x)
    y_first = _run_with_weights_of(make("channels_first"), last, x_first)
    np.testing.assert_allclose(_to_first(y_last), y_first, atol=1e-5, rtol=1e-5)
    assert y_last.shape == tuple(last.compute_output_shape(shapes if len(shapes) > 1 else shapes[0]))


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_config_round_trip_rebuilds_the_same_layer(name):
    make, shapes = LAYER_CASES[name]
    x = _inputs(shapes)
    layer = make("channels_last")
    y = _np(layer(x))
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    np.testing.assert_array_equal(_run_with_weights_of(clone, layer, x), y)


@pytest.mark.parametrize("height,width", [(1, 1), (3, 8), (7, 5)])
def test_dynamic_spatial_size_in_a_functional_model(height, width):
    inputs = keras.Input((None, None, 6))
    model = keras.Model(inputs, Upsampler(6, 2, out_channels=3)(WRDB(6, 2)(inputs)))
    assert model(np.zeros((1, height, width, 6), "float32")).shape == (1, 2 * height, 2 * width, 3)


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pixel_shuffle_is_pytorchs(factor, data_format):
    x = RNG.standard_normal((2, 3 * factor * factor, 4, 5)).astype("float32")  # NCHW
    expected = torch.nn.functional.pixel_shuffle(torch.from_numpy(x), factor).numpy()
    if data_format == "channels_last":
        y = _to_first(_np(pixel_shuffle(np.transpose(x, (0, 2, 3, 1)), factor, data_format)))
    else:
        y = _np(pixel_shuffle(x, factor, data_format))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("size", [(1, 1), (2, 7), (9, 4)])
def test_bilinear_upsample_is_pytorchs_align_corners_false(factor, size):
    x = RNG.random((2, 3, *size)).astype("float32")  # NCHW
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x), scale_factor=factor, mode="bilinear", align_corners=False
    ).numpy()
    y = _np(BilinearUpsample(factor, data_format="channels_first")(x))
    np.testing.assert_allclose(y, expected, atol=1e-6)


def _reference_asyca(x1, x2, w):
    """The paper's AsyCA in plain numpy (NHWC), softmax written out over the pair."""
    mixed = np.concatenate([x1, x2], -1) @ w["init_k"] + w["init_b"]
    pooled = mixed.mean(axis=(1, 2))
    hidden = np.maximum(pooled @ w["dc_k"] + w["dc_b"], 0)
    logits = hidden @ w["ic_k"] + w["ic_b"]
    c = x1.shape[-1]
    pair = np.stack([logits[:, :c], logits[:, c:]], 0)
    weights = np.exp(pair - pair.max(0)) / np.exp(pair - pair.max(0)).sum(0)
    return weights[0][:, None, None, :] * x1 + weights[1][:, None, None, :] * x2


def test_asyca_matches_a_numpy_reference_with_floor_bottleneck():
    c = 10  # 10 // 4 = 2: the bottleneck uses floor division
    layer = AsyCA(c, ratio=4)
    x1, x2 = RNG.standard_normal((2, 2, 3, 5, c)).astype("float32")
    layer([x1, x2])
    assert tuple(layer.conv_dc.kernel.shape) == (1, 1, c, 2)
    for conv in (layer.conv_init, layer.conv_dc, layer.conv_ic):
        conv.kernel.assign(RNG.standard_normal(conv.kernel.shape).astype("float32"))
        conv.bias.assign(RNG.standard_normal(conv.bias.shape).astype("float32"))
    w = {
        f"{n}_{p}": _np(getattr(getattr(layer, f"conv_{n}"), "kernel" if p == "k" else "bias")).reshape(
            (-1, getattr(layer, f"conv_{n}").filters) if p == "k" else (-1,)
        )
        for n in ("init", "dc", "ic")
        for p in ("k", "b")
    }
    np.testing.assert_allclose(_np(layer([x1, x2])), _reference_asyca(x1, x2, w), atol=1e-5)


def test_asyca_of_a_tensor_with_itself_is_the_identity():
    x = RNG.standard_normal((1, 4, 4, 8)).astype("float32")
    np.testing.assert_array_equal(_np(AsyCA(8, ratio=8)([x, x])), x)


def test_invalid_widths_are_named():
    with pytest.raises(ValueError, match="num_features=4, ratio=8"):
        AsyCA(4, ratio=8)
    with pytest.raises(ValueError, match="scale must be one of"):
        Upsampler(8, 5)
    with pytest.raises(ValueError, match="data_format"):
        RDB(8, 4, data_format="NHWC")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_policies(policy):
    x = RNG.random((1, 6, 5, 8)).astype("float32")
    reference = WRDB(8, 4)
    y32 = _np(reference(x))
    mixed = WRDB(8, 4, dtype=policy)
    mixed(x)
    mixed.set_weights(reference.get_weights())
    y = mixed(x)
    assert keras.backend.standardize_dtype(y.dtype) == policy.split("_")[1]
    assert all(w.dtype == "float32" for w in mixed.weights)
    np.testing.assert_allclose(_np(keras.ops.cast(y, "float32")), y32, atol=0.1, rtol=0.05)


def test_public_layers_are_exported():
    assert {"RDB", "WRDB", "AsyCA", "InterleavedBlock", "Upsampler"} <= set(layers.__all__)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_din_computes_in_the_layout_its_backend_prefers(data_format):
    """torch computes NCHW (Keras' torch convolutions are NCHW), TensorFlow NHWC (its CPU Conv2D has
    no NCHW without oneDNN), JAX in the given layout; the model's I/O keeps its layout."""
    from keras_din import DIN

    model = DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1, data_format=data_format)
    inner = {"torch": "channels_first", "tensorflow": "channels_last"}.get(keras.backend.backend(), data_format)
    assert {layer.data_format for layer in model.layers if hasattr(layer, "data_format")} == {inner}
    assert model.data_format == data_format
    shape = (1, 5, 6, 3) if data_format == "channels_last" else (1, 3, 5, 6)
    expected = (1, 10, 12, 3) if data_format == "channels_last" else (1, 3, 10, 12)
    assert model(np.zeros(shape, "float32")).shape == expected
