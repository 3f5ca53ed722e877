"""Loads the authors' PyTorch DIN (github.com/lifengshiwo/DIN) from a checkout, at run time.

Nothing of theirs is copied into this repository: each version's `networks`
package is imported by path under a private name, so both versions can be
loaded side by side. Their Enhanced `din_arch.py` imports OpenCV without using
it; when `cv2` is not installed an empty stand-in module takes its place.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

from _flops import TRAINING_FACTOR, forward_conv_flops
from _spec import Spec, Workload, image_batch, parse_config

# Our version name -> the folder of the authors' repository that holds it.
VERSION_FOLDERS = {"conference": "Conference_version", "enhanced": "Enhanced_version"}


def check_checkout(repo: str | Path) -> str | None:
    """Why `repo` is not a usable checkout of the authors' repository (a message for --official-repo), or None."""
    files = [f"{folder}/networks/din_arch.py" for folder in VERSION_FOLDERS.values()]
    missing = [file for file in files if not (Path(repo) / file).is_file()]
    if not missing:
        return None
    return (
        f"--official-repo {str(repo)!r} has no {' or '.join(missing)}: give a checkout of "
        "https://github.com/lifengshiwo/DIN (the folder holding Conference_version/ and Enhanced_version/)."
    )


def load_din_class(repo: str | Path, version: str) -> type:
    """Returns the authors' `DIN` class (`networks/din_arch.py`) of `version` from checkout `repo`.

    Its constructor is `DIN(in_channels, out_channels, num_features, growthrate, upscale_factor)`.
    """
    if version not in VERSION_FOLDERS:
        raise ValueError(f"Unknown DIN version {version!r}; the authors' repository has {sorted(VERSION_FOLDERS)}.")
    package_dir = Path(repo) / VERSION_FOLDERS[version] / "networks"
    arch_file = package_dir / "din_arch.py"
    if not arch_file.is_file():
        raise FileNotFoundError(
            f"{str(arch_file)!r} does not exist: --official-repo must be a checkout of "
            "https://github.com/lifengshiwo/DIN (the folder holding Conference_version/ and Enhanced_version/)."
        )
    if "cv2" not in sys.modules and importlib.util.find_spec("cv2") is None:
        sys.modules.setdefault("cv2", types.ModuleType("cv2"))
    package_name = f"_official_din_{version}"
    if package_name not in sys.modules:
        # Their din_arch.py does `from .blocks import *`, so it must be imported as part of its package.
        spec = importlib.util.spec_from_file_location(
            package_name, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        package = importlib.util.module_from_spec(spec)
        sys.modules[package_name] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{package_name}.din_arch").DIN


def build_official_din(
    repo: str | Path,
    version: str,
    scale: int,
    num_features: int,
    growth_rate: int,
    in_channels: int,
    out_channels: int,
):
    """Builds the authors' network with the arguments their `networks.define_net` passes."""
    din = load_din_class(repo, version)
    return din(
        in_channels=in_channels,
        out_channels=out_channels,
        num_features=num_features,
        growthrate=growth_rate,
        upscale_factor=scale,
    )


def _official_network(spec: Spec):
    config = parse_config(spec.config)
    net = build_official_din(
        spec.official_repo,
        config["version"],
        config["scale"],
        config["num_features"],
        config["growth_rate"],
        config["in_channels"],
        config["out_channels"],
    )
    return net, config


def official_workload(spec: Spec) -> Workload:
    """The authors' network as they run it: torch eager, NCHW, float32.

    Inference is `net(x)` under `torch.no_grad()` in eval mode; training is their
    solver's step without its extras: `zero_grad`, L1 loss, `backward`, Adam
    (lr 1e-4) `step`.
    """
    import torch

    torch.manual_seed(spec.seed)
    net, config = _official_network(spec)
    rng = np.random.default_rng(spec.seed)
    scale = config["scale"]
    lr = torch.from_numpy(
        image_batch(rng, spec.batch, config["in_channels"], spec.height, spec.width, "channels_first")
    )
    shapes = {name: tuple(tensor.shape) for name, tensor in net.state_dict().items()}
    forward = forward_conv_flops(shapes, spec.height, spec.width) * spec.batch
    output_pixels = spec.batch * spec.height * spec.width * scale * scale
    if spec.task == "inference":
        net.eval()

        def infer():
            with torch.no_grad():
                return net(lr)

        return Workload(step=infer, gflop=forward / 1e9, output_pixels=output_pixels)
    hr = torch.from_numpy(
        image_batch(rng, spec.batch, config["out_channels"], spec.height * scale, spec.width * scale, "channels_first")
    )
    net.train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    criterion = torch.nn.L1Loss()

    def train_step():
        optimizer.zero_grad()
        loss = criterion(net(lr), hr)
        loss.backward()
        optimizer.step()
        return loss.item()

    return Workload(step=train_step, gflop=TRAINING_FACTOR * forward / 1e9, output_pixels=output_pixels)


def parity_check(spec: Spec) -> dict:
    """Loads one set of weights into our Keras DIN and the authors' network and compares outputs.

    The Keras model (current backend, channels_first, float32) keeps its fresh
    initialisation; `keras_din.convert.official_state_dict` gives its weights under
    the authors' names, which their network loads with `strict=True`. Both run the
    same input.

    Returns:
        `max_abs_diff` between the outputs and `max_abs_output` for scale.
    """
    import keras
    import torch

    import keras_din
    from keras_din.convert import official_state_dict

    net, config = _official_network(spec)
    model = keras_din.DIN(**config, data_format="channels_first", dtype="float32")
    state = {name: torch.from_numpy(array) for name, array in official_state_dict(model).items()}
    net.load_state_dict(state, strict=True)
    net.eval()
    lr = image_batch(
        np.random.default_rng(spec.seed), spec.batch, config["in_channels"], spec.height, spec.width, "channels_first"
    )
    ours = np.asarray(model.predict_on_batch(lr))
    with torch.no_grad():
        theirs = net(torch.from_numpy(lr)).numpy()
    return {
        "max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "max_abs_output": float(np.max(np.abs(theirs))),
        "keras_backend": keras.backend.backend(),
    }
