"""Our Keras DIN as a timed step, through Keras' own `predict_on_batch` / `train_on_batch`.

The mode maps onto `Model.compile` flags, so the timed code path is the one users
get:

| mode | tensorflow | jax | torch |
|---|---|---|---|
| `eager` (`run_eagerly=True`) | op by op | op by op, no `jax.jit` | op by op |
| `graph` (`jit_compile=False`) | `tf.function` | — | — |
| `compiled` (`jit_compile=True`) | `tf.function(jit_compile=True)` | `jax.jit` (stateless step) | `torch.compile` |

Training is one `train_on_batch`: forward, L1 loss (the authors' `loss_type: l1`),
backward and an Adam update (lr 1e-4, the authors' setting).
"""

from __future__ import annotations

import numpy as np

from _flops import TRAINING_FACTOR, forward_conv_flops
from _spec import Spec, Workload, image_batch, parse_config

COMPILE_FLAGS = {
    "eager": {"run_eagerly": True, "jit_compile": False},
    "graph": {"run_eagerly": False, "jit_compile": False},
    "compiled": {"run_eagerly": False, "jit_compile": True},
}


def build_model(spec: Spec):
    """The `keras_din.DIN` of `spec.config`, compiled for `spec.mode` (Adam 1e-4, L1 loss).

    Its weights are Keras' fresh initialisation, deliberately unseeded: timing does
    not depend on them, and `keras.utils.set_random_seed` would import TensorFlow
    (when installed) into JAX and torch processes, adding ~500 MiB to their peak RSS.
    """
    import keras

    import keras_din

    if keras.backend.backend() != spec.backend:
        raise RuntimeError(
            f"This process runs Keras on {keras.backend.backend()!r}, but the spec asks for {spec.backend!r}: "
            "set KERAS_BACKEND before starting it."
        )
    model = keras_din.DIN(**parse_config(spec.config), data_format=spec.data_format, dtype=spec.precision)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-4), loss="mean_absolute_error", **COMPILE_FLAGS[spec.mode]
    )
    return model


def keras_workload(spec: Spec) -> Workload:
    """Builds the DIN of `spec.config` on the current Keras backend and returns its step."""
    from keras_din.convert import official_state_dict

    model = build_model(spec)
    config = parse_config(spec.config)
    rng = np.random.default_rng(spec.seed)
    scale = config["scale"]
    lr = image_batch(rng, spec.batch, config["in_channels"], spec.height, spec.width, spec.data_format)
    shapes = {name: array.shape for name, array in official_state_dict(model).items()}
    forward = forward_conv_flops(shapes, spec.height, spec.width) * spec.batch
    output_pixels = spec.batch * spec.height * spec.width * scale * scale
    if spec.task == "inference":
        return Workload(step=lambda: model.predict_on_batch(lr), gflop=forward / 1e9, output_pixels=output_pixels)
    hr = image_batch(rng, spec.batch, config["out_channels"], spec.height * scale, spec.width * scale, spec.data_format)
    return Workload(
        step=lambda: model.train_on_batch(lr, hr),
        gflop=TRAINING_FACTOR * forward / 1e9,
        output_pixels=output_pixels,
    )
