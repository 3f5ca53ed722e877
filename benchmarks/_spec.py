"""What one measurement is: the `Spec` the orchestrator plans and a subprocess executes.

A `Spec` crosses the process boundary as JSON (`to_json` / `from_json`); the
subprocess turns it into a `Workload` (a zero-argument step to time, and what one
step computes) fed with `image_batch` inputs, and times it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from keras_din.architecture import VERSIONS

BACKENDS = ("tensorflow", "jax", "torch")
DATA_FORMATS = ("channels_last", "channels_first")
# eager: op by op; graph: tf.function without XLA (TensorFlow only);
# compiled: XLA (tf.function(jit_compile=True)), jax.jit, or torch.compile.
MODES = ("eager", "graph", "compiled")
PRECISIONS = ("float32", "mixed_bfloat16")
TASKS = ("inference", "training")
# kind -> what is measured: our Keras DIN, the authors' PyTorch DIN, a float32 matmul
# (numpy or torch) for the machine's reference GFLOP/s, or an output comparison of the two DINs.
KINDS = ("keras", "official", "matmul", "parity")
MATMUL_LIBRARIES = ("numpy", "torch")

# The papers' width: the authors' option files use these for every scale and both versions.
PAPER_WIDTH = {"num_features": 64, "growth_rate": 32, "in_channels": 3, "out_channels": 3}
# The published scales of each version (keras_din.architecture imports no Keras: the orchestrator
# never loads a backend).
PAPER_SCALES = {version: info["scales"] for version, info in VERSIONS.items()}
_CONFIG_NAME = re.compile(r"^(conference|enhanced)_x(\d+)$")
# `--quick`'s network: not a paper configuration (2 branches of 1 block, 8 features), so it builds and runs
# in a second on any backend and checks the harness, not the speed; the authors' code has no such network.
SMOKE_CONFIG = "smoke_x2"
_SMOKE_ARGUMENTS = {
    "version": "conference",
    "scale": 2,
    "num_features": 8,
    "growth_rate": 4,
    "num_branches": 2,
    "num_blocks": 1,
    "in_channels": 3,
    "out_channels": 3,
}


def is_paper_config(name: str) -> bool:
    """Whether `name` is a published network, which the authors' code can build too."""
    return name != SMOKE_CONFIG


def parse_config(name: str) -> dict:
    """`"conference_x4"` -> the `keras_din.DIN` arguments of that paper-size network (or of `SMOKE_CONFIG`)."""
    if name == SMOKE_CONFIG:
        return dict(_SMOKE_ARGUMENTS)
    match = _CONFIG_NAME.match(name)
    if not match:
        raise ValueError(
            f"Configuration {name!r} is not of the form '<conference|enhanced>_x<scale>', e.g. 'conference_x4' "
            f"(or {SMOKE_CONFIG!r}, a tiny network for smoke runs)."
        )
    version, scale = match.group(1), int(match.group(2))
    if scale not in PAPER_SCALES[version]:
        raise ValueError(
            f"Configuration {name!r}: the {version} network is published for scales {PAPER_SCALES[version]}."
        )
    return {"version": version, "scale": scale, **PAPER_WIDTH}


def parse_size(text: str) -> tuple[int, int]:
    """`"64x48"` -> (64, 48): an image's height and width."""
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"Size {text!r} must be HEIGHTxWIDTH, e.g. 64x64.") from None
    if height < 1 or width < 1:
        raise ValueError(f"Size {text!r} must be positive.")
    return height, width


@dataclass(frozen=True)
class Spec:
    """One measurement, run in a fresh subprocess.

    `batch`, `height`, `width` are the low-resolution input of one step;
    `compile_timeout` limits the first call of a compiled mode in seconds (0: none);
    `library` names the matmul implementation (kind "matmul" only) and `size` its
    square matrix size.
    """

    kind: str
    config: str = "conference_x4"
    task: str = "inference"
    backend: str = "torch"
    data_format: str = "channels_first"
    mode: str = "eager"
    precision: str = "float32"
    batch: int = 1
    height: int = 64
    width: int = 64
    warmup: int = 2
    repeats: int = 5
    compile_timeout: float = 0.0
    threads: int = 1
    official_repo: str | None = None
    library: str = "numpy"
    size: int = 2048
    seed: int = 0

    def __post_init__(self):
        for field, allowed in (
            ("kind", KINDS),
            ("task", TASKS),
            ("backend", BACKENDS),
            ("data_format", DATA_FORMATS),
            ("mode", MODES),
            ("precision", PRECISIONS),
            ("library", MATMUL_LIBRARIES),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(f"Spec {field} must be one of {allowed}, got {getattr(self, field)!r}.")
        if self.mode == "graph" and self.backend != "tensorflow":
            raise ValueError(
                f"Mode 'graph' (tf.function without XLA) exists only for tensorflow, not {self.backend!r}."
            )
        if self.kind in ("official", "parity") and not self.official_repo:
            raise ValueError(f"A {self.kind!r} measurement needs official_repo (a checkout of the authors' code).")
        if self.kind in ("official", "parity") and not is_paper_config(self.config):
            raise ValueError(f"The authors' code has no {self.config!r} network to measure.")
        if self.warmup < 1 or self.repeats < 1:
            raise ValueError(f"Spec needs warmup >= 1 and repeats >= 1, got {self.warmup} and {self.repeats}.")
        parse_config(self.config)

    def label(self) -> str:
        """A short human-readable name, e.g. `conference_x4 torch channels_last compiled float32 inference`."""
        if self.kind == "matmul":
            return f"matmul {self.library} {self.size}x{self.size}"
        if self.kind == "parity":
            return f"parity {self.config}"
        if self.kind == "official":
            return f"authors {self.config} {self.task}"
        return f"{self.config} {self.backend} {self.data_format} {self.mode} {self.precision} {self.task}"

    def uses_torch(self) -> bool:
        """Whether the measurement runs PyTorch (whose thread pool then needs setting)."""
        if self.kind == "keras":
            return self.backend == "torch"
        return self.kind in ("official", "parity") or self.library == "torch"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        return cls(**json.loads(text))


@dataclass(frozen=True)
class Workload:
    """A ready-to-time step and what one call of it computes.

    `step` runs one inference or training step to completion (results synchronised
    to the host); `gflop` is its analytic arithmetic (see `_flops`); `output_pixels`
    the number of output pixels it produces (0 for a matmul).
    """

    step: Callable[[], object]
    gflop: float
    output_pixels: int


def image_batch(rng: np.random.Generator, batch: int, channels: int, height: int, width: int, data_format: str):
    """Uniform [0, 1) float32 images (the authors' `rgb_range` 1) in `data_format` layout."""
    shape = (batch, height, width, channels) if data_format == "channels_last" else (batch, channels, height, width)
    return rng.random(shape, dtype=np.float32)
