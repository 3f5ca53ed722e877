"""The inference path: the compiled forward equals Keras' own predict; bucketed shapes on JAX."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_din
from keras_din.inference import Predictor, bucketed_length
from keras_din.restore import restore_array

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def model():
    model = keras_din.DIN(version="enhanced", scale=2, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
    for weight in model.weights:  # non-trivial weights: an edge effect must show
        weight.assign(RNG.normal(0, 0.3, weight.shape).astype("float32"))
    return model


@pytest.mark.parametrize("shape", [(5, 6), (17, 33)])
def test_the_compiled_forward_equals_keras_predict(model, shape):
    batch = RNG.random((2, *shape, 3), dtype=np.float32)
    np.testing.assert_allclose(Predictor(model)(batch), model.predict(batch, verbose=0), atol=1e-5)


@given(st.integers(1, 100_000))
def test_bucketed_lengths_are_a_ladder_of_eight_per_octave(length):
    padded = bucketed_length(length)
    assert length <= padded <= max(length, 1.125 * length)
    if length > 16:  # m·2^k with 8 <= m < 16: the top four bits of the number, then zeros
        assert padded % (1 << (padded.bit_length() - 4)) == 0


def test_bucketing_keeps_ladder_sizes_exact_and_crops_the_others(model):
    predict = Predictor(model)
    on_ladder = RNG.random((1, 24, 40, 3), dtype=np.float32)  # 24 = 12·2, 40 = 10·4
    np.testing.assert_array_equal(predict(on_ladder, bucket=True), predict(on_ladder))
    off_ladder = RNG.random((1, 50, 70, 3), dtype=np.float32)  # padded to 52 × 72 on JAX
    plain, bucketed = predict(off_ladder), predict(off_ladder, bucket=True)
    assert bucketed.shape == plain.shape == (1, 100, 140, 3)
    # Away from the bottom and right edges the padding is out of the network's reach.
    np.testing.assert_allclose(bucketed[:, :60, :100], plain[:, :60, :100], atol=1e-5)
    if keras.backend.backend() == "jax":
        assert np.abs(bucketed - plain).max() > 1e-4  # the edges did see mirrored content
    else:  # the other backends do not compile per shape and ignore the bucket
        np.testing.assert_array_equal(bucketed, plain)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA compiles per shape on JAX only")
def test_a_folder_of_nearby_sizes_compiles_once_on_jax(model):
    import jax.monitoring

    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        for height, width in [(49, 70), (51, 66), (50, 72)]:  # all padded to 52 × 72
            restore_array(model, RNG.integers(0, 256, (height, width, 3), dtype=np.uint8), tile=None)
        once = len(compiles)
        predict = Predictor(model)  # a fresh jit cache: exact shapes compile one each
        for height, width in [(49, 70), (51, 66), (50, 72)]:
            predict(RNG.random((1, height, width, 3), dtype=np.float32))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert once == 1 and len(compiles) - once == 3


class _CountingDIN(keras_din.DIN):
    """A DIN that counts how often Keras runs its Python `call` (eagerly, or to trace it)."""

    calls = 0

    def call(self, inputs, training=False):
        type(self).calls += 1
        return super().call(inputs, training=training)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="only TensorFlow traces a tf.function")
def test_an_eager_first_call_traces_from_the_second_call_on(model):
    counting = _CountingDIN.from_config(model.get_config())
    counting.set_weights(model.get_weights())
    batch = RNG.random((1, 9, 7, 3), dtype=np.float32)
    expected = model.predict(batch, verbose=0)
    predict = Predictor(counting, eager_first_call=True)
    seen = []
    for _ in range(3):
        np.testing.assert_allclose(predict(batch), expected, atol=1e-5)
        seen.append(_CountingDIN.calls)
    assert seen == [1, 2, 2]  # eager, then traced once, then the trace reused
    _CountingDIN.calls = 0
    traced = Predictor(counting)
    for _ in range(2):
        traced(batch)
    assert _CountingDIN.calls == 1  # traced on the first call, reused on the second
