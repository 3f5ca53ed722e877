"""What-if rewrites of DIN's layers, to measure what a change to keras_din would save.

Each variant patches one layer method of keras_din for the duration of a
`with` block, in this process only (no file is changed): a model called (and
so traced or compiled) inside the block runs the variant. Variants keep every
variable, so a variant model takes the baseline model's weights with
`set_weights` and must reproduce its outputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


def _identity_asyca_skipped() -> Callable:
    """InterleavedBlock that skips AsyCA when both inputs are one tensor (blocks s_1: AsyCA is then the identity)."""

    def call(self, inputs):
        previous, current = inputs
        return self.wrdb(previous if previous is current else self.asyca(inputs))

    return call


def _patch_targets() -> dict[str, tuple[type, Callable]]:
    from keras_din.layers.interleaved_block import InterleavedBlock

    return {"identity AsyCA skipped": (InterleavedBlock, _identity_asyca_skipped())}


# Applied to keras_din since they were measured here (see benchmarks/README.md): the WRDB skips as a
# per-channel multiply-add and the RDB convolutions as `keras.ops.conv` (keras_din/layers/_inline.py).
VARIANTS = ("baseline", "identity AsyCA skipped")


@contextlib.contextmanager
def variant(name: str) -> Iterator[None]:
    """Within the block, keras_din layers run variant `name` (one of `VARIANTS`)."""
    if name not in VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; choose from {VARIANTS}.")
    if name == "baseline":
        yield
        return
    layer_class, call = _patch_targets()[name]
    original = layer_class.call
    layer_class.call = call
    try:
        yield
    finally:
        layer_class.call = original
