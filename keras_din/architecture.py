"""What a DIN may be: the two published versions, their scales, and the bounds of every size argument.

`check_architecture` validates constructor arguments by type and bounds in microseconds, before
anything is built (a `ConfigError`, which is a `ValueError`), so a hostile or mistyped config
(`"in_channels": 1000000000`, `"num_branches": 1000000`) is refused by name instead of exhausting
memory or time.
"""

from __future__ import annotations

from keras_din.errors import ConfigError

# Per version: the published scales and the AsyCA bottleneck ratio of the authors' code.
VERSIONS = {
    "conference": {"scales": (2, 3, 4), "attention_ratio": 8},
    "enhanced": {"scales": (2, 3, 4, 8), "attention_ratio": 4},
}
# Scales this implementation builds for either version (1: same-size restoration), and the
# pixel-shuffle factors of each scale's upsampler (one convolution per factor, then the output one).
SHUFFLE_FACTORS = {1: (), 2: (2,), 3: (3,), 4: (2, 2), 8: (2, 2, 2)}
SUPPORTED_SCALES = tuple(SHUFFLE_FACTORS)
# The largest value of each size argument: 16× the papers' width (64 features, growth 32),
# 4× their depth (4 branches of 5 blocks), and channels far beyond any image format's.
MAX_SIZES = {
    "num_features": 1024,
    "growth_rate": 512,
    "num_branches": 16,
    "num_blocks": 20,
    "in_channels": 16,
    "out_channels": 16,
}
# The constructor arguments that decide the network's weights (DIN's other ones: name, dtype, layout).
ARCHITECTURE_ARGUMENTS = (
    "version",
    "scale",
    "num_features",
    "growth_rate",
    "num_branches",
    "num_blocks",
    "in_channels",
    "out_channels",
    "attention_ratio",
)
# The largest network built at all: ten times the papers' (about 20 million parameters).
MAX_PARAMETERS = 200_000_000


def check_architecture(
    version: str,
    scale: int,
    num_features: int,
    growth_rate: int,
    num_branches: int,
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    attention_ratio: int | None,
) -> tuple[str, int]:
    """Validates DIN's size arguments; returns `(version, attention_ratio)` normalised, else a `ConfigError`
    that names the argument, its value and the allowed range.

    Example:
    >>> check_architecture("Conference", 2, 64, 32, 4, 5, 3, 3, None)
    ('conference', 8)
    >>> check_architecture("conference", 2, 64, 32, 4, 5, 1000000000, 3, None)
    Traceback (most recent call last):
    ...
    keras_din.errors.ConfigError: DIN in_channels must be an integer from 1 to 16, got 1000000000.
    """
    version = str(version).lower()
    if version not in VERSIONS:
        raise ConfigError(f"DIN version must be one of {sorted(VERSIONS)}, got {version!r}.")
    if (
        type(scale) is not int
        or scale not in SUPPORTED_SCALES
        or (scale != 1 and scale not in VERSIONS[version]["scales"])
    ):
        allowed = (1, *VERSIONS[version]["scales"])
        raise ConfigError(f"DIN {version} supports scale {allowed}, got {scale!r}.")
    sizes = dict(
        num_features=num_features,
        growth_rate=growth_rate,
        num_branches=num_branches,
        num_blocks=num_blocks,
        in_channels=in_channels,
        out_channels=out_channels,
    )
    for name, value in sizes.items():
        if type(value) is not int or not 1 <= value <= MAX_SIZES[name]:
            raise ConfigError(f"DIN {name} must be an integer from 1 to {MAX_SIZES[name]}, got {value!r}.")
    if version == "enhanced" and in_channels not in (1, out_channels):
        raise ConfigError(
            f"DIN enhanced adds the upsampled input to the output, so in_channels must equal "
            f"out_channels (or be 1), got in_channels={in_channels}, out_channels={out_channels}."
        )
    if attention_ratio is None:
        attention_ratio = VERSIONS[version]["attention_ratio"]
    # AsyCA (num_features // attention_ratio channels wide) exists from the second branch on.
    if type(attention_ratio) is not int or attention_ratio < 1 or (num_branches > 1 and attention_ratio > num_features):
        raise ConfigError(
            f"DIN attention_ratio must be an integer from 1 to num_features ({num_features}), got {attention_ratio!r}."
        )
    count = parameter_count(
        version, scale, num_features, growth_rate, num_branches, num_blocks, in_channels, out_channels, attention_ratio
    )
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"This DIN would have {count:,} parameters, more than the {MAX_PARAMETERS:,} keras-din builds "
            f"(the papers' network has about 20 million): lower num_features, growth_rate, num_branches or num_blocks."
        )
    return version, attention_ratio


def checked_parameter_count(**arguments) -> int:
    """The parameter count of the DIN that `arguments` (all of DIN's size arguments; `attention_ratio` may be
    left to its version's default) describe, after `check_architecture` has checked them.

    Example:
    >>> checked_parameter_count(version="conference", scale=4, num_features=64, growth_rate=32, num_branches=4,
    ...                         num_blocks=5, in_channels=3, out_channels=3)
    20032315
    """
    version, ratio = check_architecture(**{"attention_ratio": None, **arguments})
    return parameter_count(**{**arguments, "version": version, "attention_ratio": ratio})


def _conv(kernel: int, inputs: int, outputs: int) -> int:
    return kernel * kernel * inputs * outputs + outputs


def parameter_count(
    version: str,
    scale: int,
    num_features: int,
    growth_rate: int,
    num_branches: int,
    num_blocks: int,
    in_channels: int,
    out_channels: int,
    attention_ratio: int,
) -> int:
    """The number of weights of a DIN, counted from its arguments without building it.

    Example:
    >>> parameter_count("conference", 4, 64, 32, 4, 5, 3, 3, 8)  # the paper's x4
    20032315
    """
    nf, g = num_features, growth_rate
    rdb = sum(_conv(3, nf + c * g, g) for c in range(5)) + _conv(3, nf + 5 * g, nf)
    wrdb = _conv(3, nf, nf) + 3 * rdb + 6 * 2 * nf  # head, three RDBs, six depth-wise 1x1 skips
    asyca = _conv(1, 2 * nf, nf) + _conv(1, nf, nf // attention_ratio) + _conv(1, nf // attention_ratio, 2 * nf)
    body = num_branches * num_blocks * wrdb + (num_branches - 1) * num_blocks * asyca
    fusion = _conv(1, num_branches * nf, nf) + (_conv(1, num_blocks * nf, nf) if version == "enhanced" else 0)
    upsampler = sum(_conv(3, nf, nf * r * r) for r in SHUFFLE_FACTORS[scale]) + _conv(3, nf, out_channels)
    return _conv(3, in_channels, nf) + body + fusion + upsampler
