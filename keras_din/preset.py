"""Preset folders in KerasHub's layout: `config.json`, `metadata.json`, `model.weights.h5`.

A preset is a folder a model is rebuilt from: the config is data, the weights sit
beside it, and `metadata.json` records the SHA-256 of every weights file so a
corrupted download is refused instead of loaded.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from keras_din.version import __version__

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"


class PresetError(ValueError):
    """A preset that cannot be loaded; the message names the preset or file at fault."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
        config = {
            "module": "keras_din",
            "class_name": type(model).__name__,
            "config": model.get_config(),
            "registered_name": keras.saving.get_registered_name(type(model)),
        }
        (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
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
    path = folder / name
    if not path.is_file():
        raise PresetError(f"Preset {str(folder)!r} has no {name}; is it a keras-din preset folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PresetError(f"{str(path)!r} is not valid JSON: {error}") from error


def verify_weights(folder: Path, metadata: dict) -> Path:
    """Returns the weights file after checking it against the SHA-256 in `metadata.json`."""
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        raise PresetError(
            f"Preset {str(folder)!r} has no {WEIGHTS_FILE}: its weights do not exist yet. Build the "
            "architecture with load_weights=False, or convert an authors' checkpoint with "
            "`keras-din convert CHECKPOINT OUT_DIR`."
        )
    expected = metadata.get("weights", {}).get(WEIGHTS_FILE, {}).get("sha256")
    if expected is not None:
        actual = sha256_of(path)
        if actual != expected:
            raise PresetError(
                f"{str(path)!r} is corrupted: its SHA-256 is {actual}, metadata.json says {expected}. "
                "Delete it and download or convert it again."
            )
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
    """Resolves `preset` to a model: a preset folder, or an authors' checkpoint file (converted).

    Example:
    >>> import keras_din
    >>> model = keras_din.DIN.from_preset("/tmp/din_tiny_preset")  # doctest: +SKIP
    """
    from keras_din.convert import CHECKPOINT_SUFFIXES, convert_official_checkpoint

    path = Path(os.fspath(preset)).expanduser()
    if path.is_dir():
        return load_preset_folder(path, load_weights=load_weights, **overrides)
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return convert_official_checkpoint(path, **overrides)
    raise PresetError(
        f"Unknown preset {os.fspath(preset)!r}: give a preset folder (with config.json) or an "
        f"authors' checkpoint file ({', '.join(CHECKPOINT_SUFFIXES)})."
    )
