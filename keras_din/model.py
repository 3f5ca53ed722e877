"""`DIN`: the Deep Interleaved Network as one functional Keras model, both published versions."""

from __future__ import annotations

import keras

from keras_din.architecture import ARCHITECTURE_ARGUMENTS, check_architecture
from keras_din.layers import WRDB, BilinearUpsample, InterleavedBlock, Upsampler
from keras_din.layers._data_format import channel_axis, standardize_data_format
from keras_din.preset.format import save_to_preset
from keras_din.preset.loader import load_preset

# What `DIN.get_config()` holds: the architecture, the layout, and Keras' own entries.
_CONFIG_KEYS = {*ARCHITECTURE_ARGUMENTS, "data_format", "name", "trainable", "dtype"}


def _compute_data_format(data_format: str) -> str:
    """The layout DIN's layers compute in, given the layout of its inputs and outputs.

    Keras' torch backend runs every convolution in NCHW and transposes channels_last
    tensors around each one (a third of the op time, measured in benchmarks/README.md),
    so on torch the layers compute channels_first. TensorFlow's CPU convolution exists in
    NHWC only (NCHW needs its oneDNN kernels, which most CPUs run without; see
    `layers._inline._tf_needs_nhwc`), so on TensorFlow they compute channels_last. Either
    way the model transposes once at its input and once at its output. XLA (JAX) takes
    both layouts: there the layers compute in the layout they are given.
    """
    backend = keras.backend.backend()
    if backend == "torch":
        return "channels_first"
    if backend == "tensorflow":
        return "channels_last"
    return data_format


def _permute(x, to_format: str, dtype):
    """`x` transposed into `to_format` (one layer, named for the layout it produces)."""
    dims = (3, 1, 2) if to_format == "channels_first" else (2, 3, 1)
    return keras.layers.Permute(dims, name=f"to_{to_format}", dtype=dtype)(x)


@keras.saving.register_keras_serializable(package="keras_din")
class DIN(keras.Model):
    """Deep Interleaved Network with Asymmetric Co-Attention (Li et al.).

    Two published versions, chosen by `version`:

    * `"conference"` — the IJCAI 2020 super-resolution network (arXiv 2004.11814):
      output = upsampler(f_in + conv_out(lrelu(concat(last block of each branch)))).
    * `"enhanced"` — the image-restoration network (arXiv 2010.15689): two fusion
      convolutions (the branches' last blocks; the last branch's other blocks and
      f_in), AsyCA ratio 4, scales up to 8, and a bilinear global skip of the input.

    The body is `num_branches` branches of `num_blocks` WRDBs; from the second branch
    on, every block first fuses (previous branch's block k, this branch's block
    k − 1) with AsyCA. The defaults are the papers' size (4 × 5, 64 features,
    growth 32: 20,032,315 parameters for conference ×4). Inputs are images in
    [0, 1] (the authors' `rgb_range` 1), outputs are not clamped.

    Args:
        version: `"conference"` or `"enhanced"`.
        scale: 2, 3 or 4 (conference), 2, 3, 4 or 8 (enhanced); 1 builds a
            same-size restoration network (not in the authors' code).
        num_features: feature channels C.
        growth_rate: growth rate G of the dense blocks.
        num_branches: interleaved branches (paper: 4).
        num_blocks: WRDBs per branch (paper: 5).
        in_channels: input channels (3 colour, 1 greyscale).
        out_channels: output channels.
        attention_ratio: AsyCA reduction; `None` takes the version's (8 or 4).
        data_format: layout of the input and output, `"channels_last"` or
            `"channels_first"`; `None` reads Keras' config. (On torch the layers
            compute channels_first and on TensorFlow channels_last whatever this
            is; see `_compute_data_format`.)
        dtype: a dtype policy name such as `"float32"` or `"mixed_bfloat16"`.

    Example:
    >>> import numpy as np, keras_din
    >>> model = keras_din.DIN(version="enhanced", scale=2, num_features=8, growth_rate=4,
    ...                       num_branches=2, num_blocks=2)
    >>> tuple(model(np.zeros((1, 6, 7, 3), "float32")).shape)
    (1, 12, 14, 3)
    """

    def __init__(
        self,
        version: str = "conference",
        scale: int = 4,
        num_features: int = 64,
        growth_rate: int = 32,
        num_branches: int = 4,
        num_blocks: int = 5,
        in_channels: int = 3,
        out_channels: int = 3,
        attention_ratio: int | None = None,
        data_format: str | None = None,
        dtype=None,
        **kwargs,
    ):
        version, attention_ratio = check_architecture(
            version,
            scale,
            num_features,
            growth_rate,
            num_branches,
            num_blocks,
            in_channels,
            out_channels,
            attention_ratio,
        )
        data_format = standardize_data_format(data_format)
        compute_format = _compute_data_format(data_format)
        axis = channel_axis(compute_format)
        common = dict(data_format=compute_format, dtype=dtype)
        width = dict(num_features=num_features, growth_rate=growth_rate)

        # === Functional graph ===
        shape = (None, None, in_channels) if data_format == "channels_last" else (in_channels, None, None)
        image = keras.Input(shape=shape, name="image")
        x_in = image
        if compute_format != data_format:
            x_in = _permute(image, compute_format, dtype)
        shallow = keras.layers.Conv2D(num_features, 3, padding="same", name="feat_conv", **common)(x_in)

        branches = _branches(shallow, num_branches, num_blocks, attention_ratio, width, common)
        body = _fused(version, shallow, branches, axis, num_features, common)
        output = Upsampler(num_features, scale, out_channels, name="up_recon", **common)(body)
        if version == "enhanced":
            skip = BilinearUpsample(scale, name="bilinear_skip", **common)(x_in)
            output = keras.layers.Add(name="global_skip", dtype=dtype)([output, skip])
        if compute_format != data_format:
            output = _permute(output, data_format, dtype)

        super().__init__(inputs=image, outputs=output, **kwargs)
        if dtype is not None:  # functional models ignore `dtype`; record it as KerasHub backbones do
            self.dtype_policy = keras.dtype_policies.get(dtype)

        # === Config ===
        self.version = version
        self.scale = scale
        self.num_features = num_features
        self.growth_rate = growth_rate
        self.num_branches = num_branches
        self.num_blocks = num_blocks
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.attention_ratio = attention_ratio
        self.data_format = data_format

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "version": self.version,
            "scale": self.scale,
            "num_features": self.num_features,
            "growth_rate": self.growth_rate,
            "num_branches": self.num_branches,
            "num_blocks": self.num_blocks,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "attention_ratio": self.attention_ratio,
            "data_format": self.data_format,
        }

    @classmethod
    def from_preset(cls, preset: str, load_weights: bool = True, **kwargs) -> "DIN":
        """Builds a DIN from a preset: a name, an `hf://` handle, a folder or a checkpoint file.

        Args:
            preset: a registered name (`keras_din.list_presets()`), `hf://owner/repo`,
                a preset folder (`config.json`, `metadata.json`, `model.weights.h5`),
                an authors' `.pth` / `.safetensors` checkpoint (converted on the fly),
                or a `.keras` file such as a `keras-din train` checkpoint (its model's
                weights, built in float32).
            load_weights: `False` builds the architecture with fresh weights.
            **kwargs: config overrides such as `data_format` or `dtype`.

        Example:
        >>> import keras_din
        >>> model = keras_din.DIN.from_preset("conference_x4.pth")  # doctest: +SKIP
        """
        return load_preset(cls, preset, load_weights=load_weights, **kwargs)

    def save_to_preset(self, folder: str, metadata: dict | None = None):
        """Saves this model as a preset folder that `DIN.from_preset(folder)` loads."""
        return save_to_preset(self, folder, metadata=metadata)

    @classmethod
    def from_config(cls, config: dict) -> "DIN":
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"Unknown DIN config key(s) {', '.join(map(repr, unknown))}: "
                f"a DIN config has {', '.join(sorted(_CONFIG_KEYS))}."
            )
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def _branches(shallow, num_branches: int, num_blocks: int, attention_ratio: int, width: dict, common: dict):
    """The body's tensors, `[branch][block]`: WRDBs in the first branch, interleaved blocks (AsyCA + WRDB)
    fusing (previous branch's block k, this branch's block k - 1) in the others."""
    branches = []
    for s in range(1, num_branches + 1):
        blocks = []
        for k in range(1, num_blocks + 1):
            if s == 1:
                x = WRDB(name=f"WRDB1_{k}", **width, **common)(blocks[-1] if blocks else shallow)
            else:
                previous = branches[-1]
                current = blocks[-1] if blocks else previous[0]
                node = InterleavedBlock(attention_ratio=attention_ratio, name=f"interleaved{s}_{k}", **width, **common)
                x = node([previous[k - 1], current])
            blocks.append(x)
        branches.append(blocks)
    return branches


def _fused(version: str, shallow, branches, axis: int, num_features: int, common: dict):
    """The fusion of the branches into the upsampler's input, as each version does it."""
    dtype = common["dtype"]

    def fuse(tensors, name):
        merged = keras.layers.Concatenate(axis=axis, name=f"{name}_concat", dtype=dtype)(tensors)
        merged = keras.layers.LeakyReLU(0.2, name=f"{name}_lrelu", dtype=dtype)(merged)
        return keras.layers.Conv2D(num_features, 1, name=name, **common)(merged)

    last_blocks = [blocks[-1] for blocks in branches]
    if version == "conference":
        return keras.layers.Add(name="global_residual", dtype=dtype)([shallow, fuse(last_blocks, "conv_out")])
    fused = fuse(last_blocks, "conv_out1")
    tail = fuse(branches[-1][:-1] + [shallow], "conv_out2")
    return keras.layers.Add(name="fusion_sum", dtype=dtype)([fused, tail])
