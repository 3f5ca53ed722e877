"""Presets: folders in KerasHub's layout (`config.json`, `metadata.json`, `model.weights.h5`), and
`load_preset`, which turns any preset reference into a model.

A preset is a folder a model is rebuilt from: the config is data, the weights sit
beside it, and `metadata.json` records the SHA-256 of every weights file so a
corrupted download is refused instead of loaded. Loading reads JSON and
`.weights.h5` files only: nothing in a preset is executed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from keras_din.version import __version__

if TYPE_CHECKING:
    from keras_din.preset_registry import PresetInfo

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


class PresetError(ValueError):
    """A preset that cannot be loaded; the message names the preset or file at fault."""


class CorruptedFileError(PresetError):
    """A weights file whose SHA-256 differs from the one `metadata.json` records.

    `path` is the file, `detail` the two checksums.
    """

    def __init__(self, path: Path, actual: str, expected: str):
        self.path = path
        self.detail = f"its SHA-256 is {actual}, metadata.json says {expected}"
        super().__init__(f"{str(path)!r} is corrupted: {self.detail}. Delete it and download or convert it again.")


def missing_weights_message(subject: str) -> str:
    """The message for a preset without trained weights: what is missing, then the two ways on.

    Example:
    >>> missing_weights_message("Preset 'din_conference_x4' has no trained weights yet")[:44]
    "Preset 'din_conference_x4' has no trained we"
    """
    return (
        f"{subject}. Pass load_weights=False to build the architecture with fresh weights, or convert an "
        "authors' checkpoint with `keras-din convert CHECKPOINT OUT_DIR` and load OUT_DIR."
    )


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def preset_config(model) -> dict:
    """The `config.json` content of a preset of `model`: class, module and `get_config()`.

    Example:
    >>> import keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)
    >>> preset_config(model)["registered_name"]
    'keras_din>DIN'
    """
    return {
        "module": "keras_din",
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "registered_name": keras.saving.get_registered_name(type(model)),
    }


def save_to_preset(model, folder: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Writes `model` as a preset folder; files appear complete or not at all.

    Args:
        model: a `keras_din.DIN`.
        folder: the preset folder (created; existing preset files in it are replaced).
        metadata: extra entries for `metadata.json` (e.g. provenance, training data).

    Example:
    >>> import keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)
    >>> folder = model.save_to_preset("/tmp/din_tiny_preset")
    >>> sorted(p.name for p in folder.iterdir())
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".incomplete-") as staging:
        staging = Path(staging)
        model.save_weights(staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(preset_config(model), indent=2) + "\n")
        info = {
            "keras_version": keras.__version__,
            "keras_din_version": __version__,
            "parameter_count": int(model.count_params()),
            "date_saved": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d@%H:%M:%S"),
            "weights": {
                WEIGHTS_FILE: {
                    "sha256": sha256_of(staging / WEIGHTS_FILE),
                    "size": (staging / WEIGHTS_FILE).stat().st_size,
                }
            },
        }
        info.update(metadata or {})
        (staging / METADATA_FILE).write_text(json.dumps(info, indent=2) + "\n")
        # Weights first, metadata last: a folder whose metadata is present is complete.
        for name in (WEIGHTS_FILE, CONFIG_FILE, METADATA_FILE):
            os.replace(staging / name, folder / name)
    return folder


def read_preset_json(folder: Path, name: str) -> dict:
    """Reads `folder/name` as JSON; a `PresetError` names a missing or malformed file.

    Example:
    >>> read_preset_json(Path("/tmp/din_tiny_preset"), "config.json")["class_name"]  # doctest: +SKIP
    'DIN'
    """
    path = folder / name
    if not path.is_file():
        raise PresetError(f"Preset {str(folder)!r} has no {name}; is it a keras-din preset folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PresetError(f"{str(path)!r} is not valid JSON: {error}") from error


def verify_weights(folder: Path, metadata: dict) -> Path:
    """Returns the weights file after checking every weights file against its SHA-256 in `metadata.json`.

    Raises `PresetError` when the weights file is missing and `CorruptedFileError`
    (naming the file) when a checksum differs.

    Example:
    >>> folder = Path("/tmp/din_tiny_preset")
    >>> verify_weights(folder, read_preset_json(folder, "metadata.json")).name  # doctest: +SKIP
    'model.weights.h5'
    """
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        subject = f"Preset {str(folder)!r} has no {WEIGHTS_FILE}: its weights do not exist yet"
        raise PresetError(missing_weights_message(subject))
    for name, info in metadata.get("weights", {}).items():
        listed = folder / name
        if not listed.is_file():
            raise PresetError(f"Preset {str(folder)!r} has no {name}, which its metadata.json lists.")
        actual = sha256_of(listed)
        if actual != info.get("sha256", actual):
            raise CorruptedFileError(listed, actual, info["sha256"])
    return path


def load_preset_folder(folder: str | os.PathLike, load_weights: bool = True, **overrides):
    """Builds the model a preset folder describes; `overrides` replace config entries (e.g. `dtype`)."""
    from keras_din.model import DIN

    folder = Path(folder)
    config = read_preset_json(folder, CONFIG_FILE)
    metadata = read_preset_json(folder, METADATA_FILE) if (folder / METADATA_FILE).exists() else {}
    if config.get("class_name") != "DIN" or not isinstance(config.get("config"), dict):
        raise PresetError(f"{str(folder / CONFIG_FILE)!r} does not describe a keras_din DIN model.")
    weights = verify_weights(folder, metadata) if load_weights else None
    model = DIN.from_config({**config["config"], **overrides})
    if weights is not None:
        model.load_weights(weights)
    return model


def load_preset(preset: str | os.PathLike, load_weights: bool = True, **overrides):
    """Resolves `preset` to a model.

    `preset` is one of, in the order they are tried:

    * an `hf://owner/repo` handle, optionally `@revision` (branch, tag or commit):
      downloaded through `huggingface_hub` into its cache (offline once cached),
      weights checked against `metadata.json`;
    * a preset folder (`config.json`, `metadata.json`, `model.weights.h5`);
    * an authors' checkpoint file (`.pth`, `.safetensors`, ...), converted;
    * a registered preset name (`keras_din.list_presets()`), loaded from its folder,
      or from the Hub when its weights are published there.

    Example:
    >>> import keras_din
    >>> keras_din.DIN.from_preset("din_small_x2").count_params()  # bundled, trained
    257735
    >>> model = keras_din.DIN.from_preset("din_conference_x2", load_weights=False)  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    19884603
    """
    from keras_din.convert import CHECKPOINT_SUFFIXES, convert_official_checkpoint
    from keras_din.hub import HF_SCHEME, download_preset
    from keras_din.preset_registry import get_preset

    reference = os.fspath(preset)
    if reference.startswith(HF_SCHEME):
        folder = download_preset(reference, include_weights=load_weights)
        return load_preset_folder(folder, load_weights=load_weights, **overrides)
    path = Path(reference).expanduser()
    if path.is_dir():
        return load_preset_folder(path, load_weights=load_weights, **overrides)
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return convert_official_checkpoint(path, **overrides)
    return _load_registered(get_preset(reference), load_weights, overrides)


def _load_registered(info: PresetInfo, load_weights: bool, overrides: dict):
    """Loads a registered preset: from its folder, else from the Hub where its weights are published."""
    from keras_din.model import DIN
    from keras_din.preset_registry import weights_path

    folder = info.folder()
    if folder is not None and (not load_weights or weights_path(info) is not None):
        return load_preset_folder(folder, load_weights=load_weights, **overrides)
    if not load_weights:
        return DIN.from_config({**info.architecture_config(), **overrides})
    if info.weights_available:
        return load_preset(info.hf_handle, **overrides)
    subject = f'Preset {info.name!r} has no trained weights yet ("weights_available": false)'
    raise PresetError(missing_weights_message(subject))
