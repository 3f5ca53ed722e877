"""Export: the ONNX files run in ONNX Runtime and the SavedModels in TensorFlow, at sizes other than
the traced one, and match the Keras model.

Under KERAS_BACKEND=jax or torch, `export_model` here goes through its `KERAS_BACKEND=tensorflow`
subprocess; under tensorflow it runs in this process (and the CLI in a child process).
"""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_din
from keras_din.export import export_model

from conftest import CASES, OFFICIAL, REPO

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(module) for module in ("tensorflow", "tf2onnx")),
    reason="exporting needs tensorflow and tf2onnx (pip install keras-din[export])",
)

# (batch, height, width): odd, non-square, and different from one another, so dynamic sizes are checked.
SIZES = ((1, 7, 5), (2, 10, 13))
TOLERANCE = 1e-4


def _small_din(seed: int, **config) -> keras_din.DIN:
    """A small DIN with seeded random normal weights, so that every weight takes part in the output."""
    model = keras_din.DIN(num_features=8, growth_rate=2, num_branches=2, num_blocks=2, **config)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    return model


def _keras_cases(model, images=()) -> list:
    """(image, Keras output) pairs for `images` and random NHWC images in [0, 1) at `SIZES`."""
    rng = np.random.default_rng(0)
    images = [*images, *(rng.random((*size, model.in_channels), dtype=np.float32) for size in SIZES)]
    return [(x, keras.ops.convert_to_numpy(model(x))) for x in images]


def _max_error(run, cases) -> float:
    """Max |run(image) − Keras output| over `cases`, checking the output shapes on the way."""
    error = 0.0
    for x, expected in cases:
        y = np.asarray(run(x))
        assert y.shape == expected.shape, (x.shape, y.shape, expected.shape)
        error = max(error, float(np.abs(y - expected).max()))
    return error


def _onnx_runner(path):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda x: session.run(["restored"], {"image": x})[0]


def _cli(*args, backend=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"KERAS_BACKEND": backend} if backend else {})}
    command = [sys.executable, "-m", "keras_din", "export", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def enhanced():
    """Enhanced ×3 (pixel shuffle, and the bilinear skip's slices) and its Keras outputs."""
    model = _small_din(seed=1, version="enhanced", scale=3)
    return model, _keras_cases(model)


def test_enhanced_onnx_matches_keras_at_any_size(enhanced, tmp_path):
    model, cases = enhanced
    path = export_model(model, tmp_path / "enhanced.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (image,), (restored,) = session.get_inputs(), session.get_outputs()
    assert (image.name, image.shape, image.type) == ("image", ["batch", "height", "width", 3], "tensor(float)")
    assert (restored.name, restored.shape) == ("restored", ["batch", "height*3", "width*3", 3])
    error = _max_error(_onnx_runner(path), cases)
    print(f"enhanced x3 ONNX max |error| {error:.2e}")
    assert error <= TOLERANCE


def test_cli_exports_a_channels_first_bfloat16_preset_as_channels_last_float32(tmp_path):
    """Conference ×4 (two pixel shuffles) saved channels_first, mixed_bfloat16: exported channels_last float32.

    The CLI runs under KERAS_BACKEND=tensorflow here: the other tests already take the subprocess route
    under jax and torch, and a second process start would double this test's time there.
    """
    reference = _small_din(seed=2, version="conference", scale=4, data_format="channels_last")
    source = keras_din.DIN.from_config(
        {**reference.get_config(), "data_format": "channels_first", "dtype": "mixed_bfloat16"}
    )
    source.set_weights(reference.get_weights())
    preset = source.save_to_preset(tmp_path / "preset")
    out = tmp_path / "conference.onnx"
    out.write_bytes(b"an older export")
    result = _cli("--preset", preset, "-o", out, "--overwrite", backend="tensorflow")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"-> {out} (onnx: input 'image' NHWC float32 in [0, 1], output 'restored'" in result.stdout
    error = _max_error(_onnx_runner(out), _keras_cases(reference))
    print(f"conference x4 (from channels_first bfloat16) ONNX max |error| {error:.2e}")
    assert error <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conference.onnx", "preset"]  # no staging left behind


def test_saved_model_serving_signature_takes_any_size(enhanced, tmp_path):
    tf = pytest.importorskip("tensorflow")
    model, cases = enhanced
    out = tmp_path / "din_saved_model"
    out.mkdir()
    (out / "stale.txt").write_text("from an older export")
    export_model(model, out, format="saved_model", overwrite=True)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["din_saved_model"]  # no staging or old copy left
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    error = _max_error(lambda x: serve(image=tf.constant(x))["restored"], cases)
    print(f"enhanced x3 SavedModel max |error| {error:.2e}")
    assert error <= TOLERANCE


def test_existing_outputs_are_refused_and_left_alone(enhanced, tmp_path):
    model, _ = enhanced
    existing = tmp_path / "din.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="din.onnx.* exists; pass overwrite=True"):
        export_model(model, existing)
    assert existing.read_bytes() == b"keep me"
    (tmp_path / "din_saved_model").mkdir()
    with pytest.raises(FileExistsError, match="din_saved_model.* exists"):
        export_model(model, tmp_path / "din_saved_model", format="saved_model")
    with pytest.raises(ValueError, match="one of \\('onnx', 'saved_model'\\), got 'tflite'"):
        export_model(model, tmp_path / "din.tflite", format="tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["din.onnx", "din_saved_model"]


@pytest.mark.slow  # the authors' 4 × 5 structure: a minute or two of tf2onnx on a small machine
def test_cli_exports_an_authors_checkpoint_to_onnx(tmp_path):
    case = CASES["conference_x4"]
    out = tmp_path / "x4.onnx"
    result = _cli("--preset", OFFICIAL / case["checkpoint"], "-o", out)
    assert result.returncode == 0, result.stderr[-3000:]
    refused = _cli("--preset", OFFICIAL / case["checkpoint"], "-o", out)
    assert refused.returncode == 2 and "x4.onnx' exists" in refused.stderr and "--overwrite" in refused.stderr
    model = keras_din.convert_official_checkpoint(OFFICIAL / case["checkpoint"])
    fixture_input = np.load(OFFICIAL / case["input"]).transpose(0, 2, 3, 1)
    error = _max_error(_onnx_runner(out), _keras_cases(model, [fixture_input]))
    print(f"authors' conference x4 ONNX max |error| {error:.2e}")
    assert error <= TOLERANCE
