"""The registered presets: names, what each one is, and where its files live.

A registered preset is a name (`din_conference_x4`) for one published DIN
configuration. The registry is the one source the preset
folders are generated from (`python -m tools.make_preset_folders`): each entry gives
the description, the constructor arguments, the real parameter count, the
Hugging Face Hub handle its weights are published under, and whether trained
weights exist.

A preset's folder (`config.json`, `metadata.json`, the model card and, once
trained, `model.weights.h5`) is looked for inside the package first
(`keras_din/presets/<name>`, where small trained presets ship) and then in the
`presets/<name>` folder at the top of a source checkout.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path

from keras_din.preset.format import CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, PresetError, read_preset_json

HUB_NAMESPACE = "keras-din"
# The preset `keras-din restore` and `ImageRestorer.from_preset()` use when none is named.
DEFAULT_PRESET = "din_small_x2"
_PACKAGE = Path(__file__).resolve().parent.parent  # keras_din/
# Where preset folders are looked for, in order: inside the package, then the top level of a source
# checkout (recognised by its pyproject.toml, so an installed package never reads site-packages/presets).
PRESET_ROOTS = (_PACKAGE / "presets",) + (
    (_PACKAGE.parent / "presets",) if (_PACKAGE.parent / "pyproject.toml").is_file() else ()
)

_PAPER_SIZE = {
    "num_features": 64,
    "growth_rate": 32,
    "num_branches": 4,
    "num_blocks": 5,
    "in_channels": 3,
    "out_channels": 3,
}
_PAPERS = {
    "conference": "the IJCAI 2020 super-resolution network (arXiv 2004.11814)",
    "enhanced": "the image-restoration network of arXiv 2010.15689 (two fusion convolutions, bilinear global skip)",
}


@dataclasses.dataclass(frozen=True)
class PresetInfo:
    """One registered preset.

    Attributes:
        name: the registered name, e.g. `"din_conference_x4"`.
        description: one sentence on what the preset is.
        config: the `keras_din.DIN` constructor arguments.
        parameters: the parameter count of that configuration.
        hf_handle: where the preset is published, `hf://owner/repo`.
        weights_available: whether trained weights exist (in its folder or on the Hub).
        bundled: whether its folder, weights included, ships inside the package
            (`keras_din/presets/<name>`), so that it loads with no network.
        task: what it was made for, as `keras-din evaluate --task` names it: `"sr"`,
            `"denoise"` or `"jpeg"` (JPEG artifact removal: `keras-din restore` then keeps
            each result consistent with its JPEG file, `keras_din.JpegConstraint`).
    """

    name: str
    description: str
    config: dict
    parameters: int
    hf_handle: str
    weights_available: bool = False
    bundled: bool = False
    task: str = "sr"

    def architecture_config(self) -> dict:
        """The `DIN.from_config` dict of this preset: its constructor arguments, named after the preset.

        Example:
        >>> get_preset("din_enhanced_x8").architecture_config()["scale"]
        8
        """
        return {"name": self.name, **self.config}

    def folder(self) -> Path | None:
        """This preset's folder (the package's first, then a checkout's), or `None` when neither exists.

        Example:
        >>> get_preset("din_conference_x2").folder()  # doctest: +SKIP
        PosixPath('/src/keras-din/presets/din_conference_x2')
        """
        for root in PRESET_ROOTS:
            if (root / self.name / CONFIG_FILE).is_file():
                return root / self.name
        return None


def _paper_preset(version: str, scale: int, parameters: int) -> PresetInfo:
    name = f"din_{version}_x{scale}"
    return PresetInfo(
        name=name,
        description=f"DIN {version} x{scale} at the papers' size (4 branches of 5 WRDBs, 64 features, "
        f"growth 32): {_PAPERS[version]}.",
        config={"version": version, "scale": scale, **_PAPER_SIZE},
        parameters=parameters,
        hf_handle=f"hf://{HUB_NAMESPACE}/{name}",
    )


# The bundled presets' sizes, chosen for quality per CPU-hour on a 2-core machine: the small one
# (~0.5 s per 16 × 48² training step on TensorFlow) and the base one (~0.6 s, mixed bfloat16 on AMX),
# which learned most per CPU-minute in `benchmarks/model_sizes.py`; x3 and x4 start from the trained x2 body.
_SMALL_SIZE = {"num_features": 16, "growth_rate": 8, "num_branches": 2, "num_blocks": 2}
_BASE_SIZE = {"num_features": 24, "growth_rate": 12, "num_branches": 2, "num_blocks": 2}


def _sr_preset(size: str, config: dict, scale: int, parameters: int) -> PresetInfo:
    name = f"din_{size}_x{scale}"
    return PresetInfo(
        name=name,
        description=f"A {size} DIN (conference structure, {config['num_branches']} branches of "
        f"{config['num_blocks']} WRDBs, {config['num_features']} features, growth {config['growth_rate']}) "
        f"trained here on T91 + BSD200 for x{scale} bicubic (BI) super-resolution; ships inside the package.",
        config={"version": "conference", "scale": scale, "in_channels": 3, "out_channels": 3, **config},
        parameters=parameters,
        hf_handle=f"hf://{HUB_NAMESPACE}/{name}",
        weights_available=True,
        bundled=True,
    )


def _restoration_preset(name: str, task: str, what: str, channels: int, parameters: int) -> PresetInfo:
    config = _SMALL_SIZE
    colour = "greyscale" if channels == 1 else "colour (RGB)"
    return PresetInfo(
        name=name,
        description=f"A small same-size DIN (enhanced structure with its input skip, {config['num_branches']} "
        f"branches of {config['num_blocks']} WRDBs, {config['num_features']} features, growth "
        f"{config['growth_rate']}) trained here on T91 + BSD200 for blind {colour} {what}; ships inside the package.",
        config={"version": "enhanced", "scale": 1, "in_channels": channels, "out_channels": channels, **config},
        parameters=parameters,
        hf_handle=f"hf://{HUB_NAMESPACE}/{name}",
        weights_available=True,
        bundled=True,
        task=task,
    )


PRESETS: dict[str, PresetInfo] = {
    info.name: info
    for info in (
        _paper_preset("conference", 2, 19_884_603),
        _paper_preset("conference", 3, 20_069_243),
        _paper_preset("conference", 4, 20_032_315),
        _paper_preset("enhanced", 2, 19_928_307),
        _paper_preset("enhanced", 3, 20_112_947),
        _paper_preset("enhanced", 4, 20_076_019),
        _paper_preset("enhanced", 8, 20_223_731),
        _sr_preset("small", _SMALL_SIZE, 2, 257_735),
        _sr_preset("small", _SMALL_SIZE, 3, 269_335),
        _sr_preset("small", _SMALL_SIZE, 4, 267_015),
        _sr_preset("base", _BASE_SIZE, 2, 577_977),
        _sr_preset("base", _BASE_SIZE, 3, 604_017),
        _sr_preset("base", _BASE_SIZE, 4, 598_809),
        _restoration_preset("din_small_denoise", "denoise", "Gaussian denoising (σ 0–55)", 3, 249_179),
        _restoration_preset("din_small_jpeg", "jpeg", "JPEG artifact removal (Pillow quality 10–90)", 3, 249_179),
        _restoration_preset("din_small_jpeg_grey", "jpeg", "JPEG artifact removal (Pillow quality 10–90)", 1, 248_601),
    )
}


def get_preset(name: str) -> PresetInfo:
    """The registered preset `name`; a `PresetError` names close matches for an unknown one.

    Example:
    >>> get_preset("din_conference_x4").parameters
    20032315
    """
    if name in PRESETS:
        return PRESETS[name]
    matches = difflib.get_close_matches(name, PRESETS, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(map(repr, matches))}?" if matches else ""
    raise PresetError(
        f"Unknown preset {name!r}: not a registered preset name, an existing preset folder or checkpoint "
        f"file, or an hf://owner/repo handle.{hint} Registered presets: {', '.join(PRESETS)} "
        "(details: `keras-din presets`)."
    )


def weights_path(info: PresetInfo) -> Path | None:
    """The trained weights file in `info`'s folder, or `None` when the folder has none.

    Example:
    >>> weights_path(get_preset("din_conference_x4")) is None  # no trained weights yet
    True
    """
    folder = info.folder()
    if folder is not None and (folder / WEIGHTS_FILE).is_file():
        return folder / WEIGHTS_FILE
    return None


def _measured_psnr(info: PresetInfo) -> dict[str, float]:
    """`{dataset: PSNR}` at the preset's scale from its folder's metadata.json `"results"`."""
    folder = info.folder()
    if folder is None or not (folder / METADATA_FILE).is_file():
        return {}
    results = read_preset_json(folder, METADATA_FILE).get("results", [])
    scale = info.config["scale"]
    return {
        f"{row['dataset']} {row['task']} {row['level']}" if "task" in row else row["dataset"]: row["psnr"]
        for row in results
        if row.get("scale", scale) == scale and "psnr" in row
    }


def list_presets() -> list[dict]:
    """One row per registered preset: name, version, scale, parameters, weights, PSNR where measured.

    Each row is a dict with `name`, `version`, `scale`, `parameters`,
    `weights_available` (trained weights in its folder or on the Hub), `psnr`
    (`{dataset: dB}` from its metadata.json `"results"`; empty when nothing is
    measured), `hf_handle` and `description`.

    Example:
    >>> import keras_din
    >>> [row["name"] for row in keras_din.list_presets()][:2]
    ['din_conference_x2', 'din_conference_x3']
    """
    return [
        {
            "name": info.name,
            "version": info.config["version"],
            "scale": info.config["scale"],
            "parameters": info.parameters,
            "weights_available": info.weights_available or weights_path(info) is not None,
            "psnr": _measured_psnr(info),
            "hf_handle": info.hf_handle,
            "description": info.description,
        }
        for info in PRESETS.values()
    ]
