"""Each layer on its own: shapes, layouts, serialization, dtype policies, and independent references."""

import keras
import numpy as np
import pytest
import torch

from keras_din import layers
from keras_din.layers import RDB, WRDB, AsyCA, BilinearUpsample, InterleavedBlock, Upsampler, pixel_shuffle

from harness import run_layer_test, to_first, to_numpy

RNG = np.random.default_rng(0)


# name: (factory taking data_format/dtype, NHWC input shapes, NHWC output shape)
LAYER_CASES = {
    "rdb": (lambda **kw: RDB(6, 3, **kw), [(2, 5, 7, 6)], (2, 5, 7, 6)),
    "wrdb": (lambda **kw: WRDB(6, 2, **kw), [(1, 4, 6, 6)], (1, 4, 6, 6)),
    # An 8-unit bottleneck: with AsyCA(8, ratio=4)'s 2 units, both ReLUs start dead on a batch of two about
    # once in 9 random inits (300 tried), which leaves 5 of its 6 weights without a gradient; with 8, 0 of 300.
    "asyca": (lambda **kw: AsyCA(16, ratio=2, **kw), [(2, 5, 3, 16), (2, 5, 3, 16)], (2, 5, 3, 16)),
    "interleaved": (
        lambda **kw: InterleavedBlock(8, 2, attention_ratio=8, **kw),
        [(1, 3, 4, 8), (1, 3, 4, 8)],
        (1, 3, 4, 8),
    ),
    "upsampler_x3": (lambda **kw: Upsampler(4, 3, out_channels=2, **kw), [(1, 3, 5, 4)], (1, 9, 15, 2)),
    "upsampler_x8": (lambda **kw: Upsampler(4, 8, out_channels=3, **kw), [(1, 2, 3, 4)], (1, 16, 24, 3)),
    "upsampler_x1": (lambda **kw: Upsampler(4, 1, out_channels=3, **kw), [(1, 2, 3, 4)], (1, 2, 3, 3)),
    "bilinear_x3": (lambda **kw: BilinearUpsample(3, **kw), [(2, 4, 5, 3)], (2, 12, 15, 3)),
}


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_each_layer_passes_the_harness_channels_first_included(name):
    run_layer_test(*LAYER_CASES[name])


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
        y = to_first(to_numpy(pixel_shuffle(np.transpose(x, (0, 2, 3, 1)), factor, data_format)))
    else:
        y = to_numpy(pixel_shuffle(x, factor, data_format))
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
@pytest.mark.parametrize("size", [(1, 1), (2, 7), (9, 4)])
def test_bilinear_upsample_is_pytorchs_align_corners_false(factor, size):
    x = RNG.random((2, 3, *size)).astype("float32")  # NCHW
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x), scale_factor=factor, mode="bilinear", align_corners=False
    ).numpy()
    y = to_numpy(BilinearUpsample(factor, data_format="channels_first")(x))
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
        f"{n}_{p}": to_numpy(getattr(getattr(layer, f"conv_{n}"), "kernel" if p == "k" else "bias")).reshape(
            (-1, getattr(layer, f"conv_{n}").filters) if p == "k" else (-1,)
        )
        for n in ("init", "dc", "ic")
        for p in ("k", "b")
    }
    np.testing.assert_allclose(to_numpy(layer([x1, x2])), _reference_asyca(x1, x2, w), atol=1e-5)


def test_asyca_of_a_tensor_with_itself_is_the_identity():
    x = RNG.standard_normal((1, 4, 4, 8)).astype("float32")
    np.testing.assert_array_equal(to_numpy(AsyCA(8, ratio=8)([x, x])), x)


def test_invalid_widths_are_named():
    with pytest.raises(ValueError, match="num_features=4, ratio=8"):
        AsyCA(4, ratio=8)
    with pytest.raises(ValueError, match="scale must be one of"):
        Upsampler(8, 5)
    with pytest.raises(ValueError, match="data_format"):
        RDB(8, 4, data_format="NHWC")


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
