"""The authors' checkpoint format: reading their PyTorch / safetensors files, and mapping tensors to a DIN.

Everything the network needs is detected from tensor names and shapes: version,
scale, channels, width, growth rate, attention ratio, branch and block counts. The
mapping works on any model with DIN's layer names; the model class is passed in
(`model_from_checkpoint(DIN, path)`), so this module imports no model.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import keras
import numpy as np

from keras_din.architecture import SHUFFLE_FACTORS, VERSIONS, check_architecture
from keras_din.errors import KerasDinError

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt", ".bin", ".safetensors")
_DATA_PARALLEL_PREFIX = "module."
_WRDB_KEY = re.compile(r"^WRDB(\d+)_(\d+)\.")
_UPNET_KEY = re.compile(r"^up_recon\.UPNet\.(\d+)\.weight$")


class CheckpointError(KerasDinError, ValueError):
    """A file that is not a usable DIN checkpoint; the message names the file or tensor at fault."""


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads an authors' checkpoint into `{official tensor name: float32 array}`.

    Accepts the training dictionary the authors' solver saves (`state_dict` inside,
    keys prefixed `module.` by DataParallel), a bare state dict (with or without the
    prefix) saved by `torch.save`, and `.safetensors` files. `.pth` files are read
    with `torch.load(weights_only=True)`: a pickle that would run code is refused.

    Example:
    >>> state = read_checkpoint("conference_x4.pth")  # doctest: +SKIP
    >>> state["feat_conv.weight"].shape  # doctest: +SKIP
    (8, 3, 3, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist or is not a file.")
    if path.suffix == ".safetensors":
        state = _read_safetensors(path)
    else:
        state = _read_torch(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{str(path)!r} holds no state dict (found {type(state).__name__}).")
    arrays = {}
    for key, value in state.items():
        name = key[len(_DATA_PARALLEL_PREFIX) :] if key.startswith(_DATA_PARALLEL_PREFIX) else key
        arrays[name] = _to_numpy(value, name, path)
    return arrays


def _read_safetensors(path: Path) -> dict:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({error}).") from error


def _read_torch(path: Path) -> dict:
    try:
        import torch  # Only checkpoint reading needs PyTorch.
    except ImportError as error:
        raise ImportError(
            f"Reading {str(path)!r} needs PyTorch: `pip install keras-din[torch]`, "
            "or convert the checkpoint to .safetensors first."
        ) from error
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch reports both a refused global and plain garbage as UnpicklingError.
        refused = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "Unsupported global" in line]
        if refused:
            raise CheckpointError(
                f"Refused to load {str(path)!r}: its pickle asks for code or objects that are not plain "
                f"weights ({refused[0]}). Nothing from it was run."
            ) from error
        raise CheckpointError(f"{str(path)!r} is not a readable PyTorch checkpoint (not a weights pickle).") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        raise CheckpointError(
            f"{str(path)!r} is not a readable PyTorch checkpoint (truncated or corrupt?): {error}"
        ) from error


def _to_numpy(value, name: str, path: Path) -> np.ndarray:
    """One checkpoint entry as a float32 array: a dense tensor of at least one dimension, every value finite."""
    where = f"{str(path)!r}: entry {name!r}"
    try:
        if isinstance(value, np.ndarray):
            array = np.asarray(value, dtype=np.float32)
        elif hasattr(value, "detach") and hasattr(value, "numpy"):
            array = np.asarray(value.detach().cpu().float().numpy(), dtype=np.float32)
        else:
            raise CheckpointError(f"{where} is a {type(value).__name__}, not a tensor.")
    except (RuntimeError, TypeError, ValueError) as error:  # e.g. a sparse or quantised torch tensor
        raise CheckpointError(f"{where} is not a dense float tensor ({error}).") from None
    if array.ndim == 0:
        raise CheckpointError(f"{where} is a scalar, not a weight tensor.")
    if not np.isfinite(array).all():
        raise CheckpointError(
            f"{where} holds NaN or Inf values: the checkpoint is corrupt or its training diverged; "
            "convert an earlier checkpoint."
        )
    return array


def detect_config(state: dict[str, np.ndarray]) -> dict:
    """Infers `DIN` constructor arguments from an official state dict's names and shapes.

    Example:
    >>> config = detect_config(read_checkpoint("conference_x4.pth"))  # doctest: +SKIP
    >>> config["version"], config["scale"]  # doctest: +SKIP
    ('conference', 4)
    """

    def need(name: str) -> np.ndarray:
        if name not in state:
            raise CheckpointError(f"Not a DIN checkpoint: tensor {name!r} is missing.")
        return state[name]

    if "conv_out1.weight" in state or "conv_out2.weight" in state:
        version = "enhanced"
    elif "conv_out.weight" in state:
        version = "conference"
    else:
        raise CheckpointError(
            "Not a DIN checkpoint: it has neither 'conv_out.weight' (conference version) "
            "nor 'conv_out1.weight' (enhanced version)."
        )
    feat = need("feat_conv.weight")
    if feat.ndim != 4:
        raise CheckpointError(f"Tensor 'feat_conv.weight' has shape {feat.shape}, expected 4 dimensions.")
    num_features, in_channels = int(feat.shape[0]), int(feat.shape[1])
    if num_features < 1 or in_channels < 1:
        raise CheckpointError(f"Tensor 'feat_conv.weight' has shape {feat.shape}: no channels.")
    growth_rate = int(need("WRDB1_1.RDB1.conv1.weight").shape[0])
    positions = {tuple(int(g) for g in m.groups()) for m in map(_WRDB_KEY.match, state) if m}
    num_branches = max(s for s, _ in positions)
    num_blocks = max(k for _, k in positions)

    out_channels, scale = _detect_upsampler(state, num_features)
    attention_ratio = VERSIONS[version]["attention_ratio"]
    if num_branches > 1:
        attention_ratio = _detect_attention_ratio(need("AsyCA2_1.conv_dc.weight"), num_features, attention_ratio)
    return dict(
        version=version,
        scale=scale,
        num_features=num_features,
        growth_rate=growth_rate,
        num_branches=num_branches,
        num_blocks=num_blocks,
        in_channels=in_channels,
        out_channels=out_channels,
        attention_ratio=attention_ratio,
    )


def _detect_upsampler(state: dict[str, np.ndarray], num_features: int) -> tuple[int, int]:
    """`(out_channels, scale)` from the upsampler's convolutions (`up_recon.UPNet.*`)."""
    upnet = sorted(int(m.group(1)) for m in map(_UPNET_KEY.match, state) if m)
    if not upnet:
        raise CheckpointError("Not a DIN checkpoint: no 'up_recon.UPNet.*.weight' tensors.")
    out_channels = int(state[f"up_recon.UPNet.{upnet[-1]}.weight"].shape[0])
    if len(upnet) != 2:  # one convolution per pixel-shuffle step, then the output convolution
        scales = [s for s, factors in SHUFFLE_FACTORS.items() if len(factors) + 1 == len(upnet)]
        if not scales:
            raise CheckpointError(f"Unexpected upsampler with {len(upnet)} convolutions (up_recon.UPNet).")
        return out_channels, scales[0]
    # x2 and x3 both have one shuffle step: its convolution's width tells them apart (C * r * r)
    width = state["up_recon.UPNet.0.weight"].shape[0]
    scale = int(round((width / num_features) ** 0.5))
    if scale * scale * num_features != width:
        raise CheckpointError(
            f"Tensor 'up_recon.UPNet.0.weight' has {width} output channels, "
            f"which is not num_features ({num_features}) times a square scale."
        )
    return out_channels, scale


def _detect_attention_ratio(conv_dc: np.ndarray, num_features: int, default: int) -> int:
    """The AsyCA ratio r with num_features // r = the bottleneck width of `AsyCA2_1.conv_dc`."""
    bottleneck = int(conv_dc.shape[0])
    if num_features // default == bottleneck:
        return default
    if not 1 <= bottleneck <= num_features or num_features // (num_features // bottleneck) != bottleneck:
        raise CheckpointError(
            f"Tensor 'AsyCA2_1.conv_dc.weight' has {bottleneck} output channels: no attention "
            f"ratio r gives num_features // r = {bottleneck} with num_features = {num_features}."
        )
    return num_features // bottleneck


def official_layer_map(model) -> dict[str, object]:
    """`{official module name: Keras layer}` for every weighted module of `model`.

    Module names are the authors' (`feat_conv`, `WRDB2_3.RDB1.conv4`, `AsyCA2_3.conv_dc`,
    `up_recon.UPNet.2`, ...); each layer is a Keras `Conv2D` or `DepthwiseConv2D`.
    """
    layers = {"feat_conv": model.get_layer("feat_conv")}
    for s in range(1, model.num_branches + 1):
        for k in range(1, model.num_blocks + 1):
            if s == 1:
                wrdb = model.get_layer(f"WRDB1_{k}")
            else:
                node = model.get_layer(f"interleaved{s}_{k}")
                wrdb = node.wrdb
                for conv in ("conv_init", "conv_dc", "conv_ic"):
                    layers[f"AsyCA{s}_{k}.{conv}"] = getattr(node.asyca, conv)
            prefix = f"WRDB{s}_{k}"
            layers[f"{prefix}.conv0"] = wrdb.conv0
            for name, skip in wrdb.skips.items():
                layers[f"{prefix}.{name}"] = skip
            for r, rdb in enumerate(wrdb.rdbs, start=1):
                for c, conv in enumerate(rdb.convs, start=1):
                    layers[f"{prefix}.RDB{r}.conv{c}"] = conv
    fusion = ("conv_out",) if model.version == "conference" else ("conv_out1", "conv_out2")
    for name in fusion:
        layers[name] = model.get_layer(name)
    for m, conv in enumerate(model.get_layer("up_recon").convs):
        layers[f"up_recon.UPNet.{2 * m}"] = conv
    return layers


def _kernel_to_keras(array: np.ndarray, depthwise: bool) -> np.ndarray:
    # PyTorch (out, in, kh, kw) → Keras Conv2D (kh, kw, in, out); depth-wise (C, 1, 1, 1) → (1, 1, C, 1).
    return np.transpose(array, (2, 3, 0, 1) if depthwise else (2, 3, 1, 0))


def _kernel_to_torch(array: np.ndarray, depthwise: bool) -> np.ndarray:
    return np.transpose(array, (2, 3, 0, 1) if depthwise else (3, 2, 0, 1))


def _is_depthwise(layer) -> bool:
    return isinstance(layer, keras.layers.DepthwiseConv2D)


def _torch_shape(layer) -> tuple[int, ...]:
    return tuple(_kernel_to_torch(np.empty(layer.kernel.shape, dtype=np.uint8), _is_depthwise(layer)).shape)


def load_official_state_dict(model, state: dict[str, np.ndarray]) -> None:
    """Assigns an official state dict to `model`, strictly: every tensor used, each shape checked.

    Raises `CheckpointError` naming the missing, unexpected or mis-shaped tensors
    before any weight is changed.
    """
    layers = official_layer_map(model)
    expected = {}
    for module, layer in layers.items():
        expected[f"{module}.weight"] = _torch_shape(layer)
        expected[f"{module}.bias"] = tuple(layer.bias.shape)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{name}: checkpoint {tuple(state[name].shape)}, model {shape}"
        for name, shape in expected.items()
        if name in state and tuple(state[name].shape) != shape
    )
    problems = []
    if missing:
        problems.append(f"missing tensors: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {_listing(unexpected)}")
    if wrong:
        problems.append(f"mis-shaped tensors: {_listing(wrong)}")
    if problems:
        raise CheckpointError("The checkpoint does not fit this DIN: " + "; ".join(problems) + ".")
    for module, layer in layers.items():
        layer.kernel.assign(_kernel_to_keras(state[f"{module}.weight"], _is_depthwise(layer)))
        layer.bias.assign(state[f"{module}.bias"])


def _listing(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def official_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse of `load_official_state_dict`: the model's weights under the authors' names and layouts.

    Example:
    >>> import keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)
    >>> official_state_dict(model)["feat_conv.weight"].shape
    (8, 3, 3, 3)
    """
    state = {}
    for module, layer in official_layer_map(model).items():
        kernel = np.asarray(keras.ops.convert_to_numpy(layer.kernel), np.float32)
        state[f"{module}.weight"] = _kernel_to_torch(kernel, _is_depthwise(layer))
        state[f"{module}.bias"] = np.asarray(keras.ops.convert_to_numpy(layer.bias), np.float32)
    return state


def model_from_checkpoint(cls, path: str | os.PathLike, data_format: str | None = None, dtype=None):
    """Builds the `cls` model (a `DIN`) that an authors' checkpoint describes and loads its weights.

    The detected configuration is checked against DIN's bounds before anything is built.

    Example:
    >>> import keras_din
    >>> model = model_from_checkpoint(keras_din.DIN, "conference_x4.pth")  # doctest: +SKIP
    """
    state = read_checkpoint(path)
    try:
        config = detect_config(state)
        check_architecture(**config)
    except (CheckpointError, ValueError) as error:
        raise CheckpointError(f"{os.fspath(path)!r}: {error}") from None
    model = cls(**config, data_format=data_format, dtype=dtype)
    try:
        load_official_state_dict(model, state)
    except CheckpointError as error:
        raise CheckpointError(f"{os.fspath(path)!r}: {error}") from None
    return model
