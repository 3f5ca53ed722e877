"""The inference path: a model's forward pass compiled once and reused, with no autograd.

`model(x)` in eager mode is what Keras gives by default, and it is the slow way to run a network
for inference: torch records the whole forward for autograd (GBs of saved activations on a
512² image), TensorFlow runs op by op. `Predictor(model)` wraps the forward once per model:

* TensorFlow: one `tf.function` with a fully dynamic input signature, so images of any size
  share one trace (no retracing per image). Not XLA: on CPU XLA compiles per shape. A job of one
  forward pass (`keras-din restore` of one image in one tile) runs it eagerly instead.
* JAX: `jax.jit` of the model's stateless call (XLA compiles once per input shape, cached).
* torch: eager under `torch.inference_mode()` (no autograd graph, no saved activations).

Because XLA compiles per shape (1–3 s for a small preset on a 2-core CPU, more than its forward
on a photo), a call with `bucket=True` on JAX pads the batch's height and width (mirrored) up to
`bucketed_length` and crops the output: a folder of photos of many sizes then compiles a few
shapes, not one per photo. The padded rows and columns change the pixels next to the bottom and
right edges slightly (the network sees mirrored content there instead of its zero padding), so
`restore` asks for it and `evaluate` does not. TensorFlow and torch do not compile per shape and
ignore it.

Example:
>>> import numpy as np, keras_din
>>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=1, num_blocks=1)
>>> predict = Predictor(model)
>>> predict(np.zeros((1, 5, 6, 3), "float32")).shape
(1, 10, 12, 3)
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import keras
import numpy as np

# The folder `use_jax_compilation_cache` keeps compiled forwards in, or "off".
JAX_CACHE_ENV = "KERAS_DIN_JAX_CACHE"


class Predictor:
    """`model`'s inference forward on NHWC float32 numpy batches; NHWC float32 numpy out.

    A channels_first model gets its batch transposed on the way in and out; `bucket=True`
    (on JAX) pads height and width to `bucketed_length` and crops the output back.

    `eager_first_call=True` (TensorFlow; the other backends ignore it) runs the first call eagerly
    and traces from the second on: for a job of one forward pass, tracing the network and
    Grappler's optimisation of the graph cost more than they save (a paper-size conference ×4 on a
    160×120 photo, 2-core AVX-512 EPYC: 6.0–6.3 s eagerly against 7.6–8.2 s traced).
    """

    def __init__(self, model, eager_first_call: bool = False):
        self.model = model
        self._forward = _compile(model)
        self._compiles_per_shape = keras.backend.backend() == "jax"
        self._eager_calls_left = int(eager_first_call and keras.backend.backend() == "tensorflow")

    def __call__(self, batch: np.ndarray, bucket: bool = False) -> np.ndarray:
        height, width = batch.shape[1:3]
        if bucket and self._compiles_per_shape:
            pads = ((0, 0), (0, bucketed_length(height) - height), (0, bucketed_length(width) - width), (0, 0))
            batch = np.pad(batch, pads, mode="symmetric")
        first = self.model.data_format == "channels_first"
        batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2) if first else batch, np.float32)
        if self._eager_calls_left:
            self._eager_calls_left -= 1
            output = np.asarray(keras.ops.convert_to_numpy(self.model(batch, training=False)), np.float32)
        else:
            output = np.asarray(self._forward(batch), np.float32)
        output = output.transpose(0, 2, 3, 1) if first else output
        scale = self.model.scale
        return output[:, : height * scale, : width * scale]


def bucketed_length(length: int) -> int:
    """The smallest m·2^k ≥ `length` with 8 ≤ m < 16 (at most 12.5 % more; lengths ≤ 16 unchanged).

    Eight lengths per octave: sizes that differ by a few pixels share one compiled shape.

    Example:
    >>> [bucketed_length(n) for n in (12, 120, 160, 321, 481, 512)]
    [12, 120, 160, 352, 512, 512]
    """
    if length <= 16:
        return length
    step = 1 << (length.bit_length() - 4)
    return -(-length // step) * step


def _compile(model):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        channels = model.in_channels
        shape = [None, None, None, channels] if model.data_format == "channels_last" else [None, channels, None, None]
        function = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32)],
            jit_compile=False,
            autograph=False,
        )
        return lambda batch: function(tf.constant(batch)).numpy()
    if backend == "jax":
        import jax

        def call(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        function = jax.jit(call)

        def run(batch):
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            return function(trainable, non_trainable, batch)

        return run
    if backend == "torch":
        import torch

        def run(batch):
            with torch.inference_mode():
                return keras.ops.convert_to_numpy(model(batch, training=False))

        return run
    return lambda batch: keras.ops.convert_to_numpy(model(batch, training=False))


_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predictor_for(model, eager_first_call: bool = False) -> Predictor:
    """The `Predictor` of `model`, made once (with `eager_first_call`) and reused for as long as the model lives."""
    if model not in _PREDICTORS:
        _PREDICTORS[model] = Predictor(model, eager_first_call)
    return _PREDICTORS[model]


def use_jax_compilation_cache() -> Path | None:
    """On JAX, keeps each compiled forward on disk, so that the next process with the same network and
    input shape loads it instead of compiling it again; returns the folder, or `None` (another backend,
    switched off, or a folder that cannot be made).

    The `keras-din` commands call this (the process is theirs; a library should not set JAX's global
    configuration behind its user's back, so `Predictor` alone does not). The folder is
    `$KERAS_DIN_JAX_CACHE`, or `$XDG_CACHE_HOME/keras-din/jax` (`~/.cache/keras-din/jax`);
    `KERAS_DIN_JAX_CACHE=off` switches it off, and a cache folder set in JAX's own configuration is kept.
    Weights are arguments of the compiled forward, not constants, so one entry serves every preset of
    the same architecture; entries of compiles under 0.2 s are not kept (JAX's eager ops), and the
    folder is capped at 512 MiB (least recently used entries go first). On the 2-core AVX-512 EPYC a
    conference ×4 forward on a 160×120 photo compiled in about 3.5 s, and `din_small_x2` in about
    0.85 s per input shape (`keras-din restore` buckets photo sizes, so a folder of photos compiles a
    few shapes).

    Example:
    >>> os.environ[JAX_CACHE_ENV] = "off"  # as in the tests: nothing written under the home folder
    >>> print(use_jax_compilation_cache())
    None
    """
    if keras.backend.backend() != "jax":
        return None
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    choice = os.environ.get(JAX_CACHE_ENV, "")
    if choice.lower() == "off":
        return None
    if choice:
        folder = Path(choice)
    else:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "keras-din" / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile as before
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_compilation_cache_max_size", 512 * 2**20)
    return folder
