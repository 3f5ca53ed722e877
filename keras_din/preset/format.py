"""The preset format: folders in KerasHub's layout (`config.json`, `metadata.json`, `model.weights.h5`).

A preset is a folder a model is rebuilt from: the config is data, the weights sit
beside it, and `metadata.json` records the SHA-256 (and size) of every weights
file so a corrupted download is refused instead of loaded. Loading reads JSON and
`.weights.h5` files only: nothing in a preset is executed.

A preset's files are plain names inside its folder: `metadata.json` may not name
an absolute path, `..` or a subfolder, and a symbolic link may not lead out of the
folder (in a Hugging Face cache snapshot, links into the same repo's `blobs/` are
how the cache stores files, and are followed). Weights are loaded only when
`metadata.json` records their SHA-256, and a file's size is checked before it is
read, so a preset can neither make keras-din read, hash, upload or delete a file
outside it nor make it hash an endless file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path

import keras

from keras_din._io.atomic import require_free_space, staging_folder
from keras_din.errors import KerasDinError
from keras_din.version import __version__

CONFIG_FILE = "config.json"
METADATA_FILE = "metadata.json"
WEIGHTS_FILE = "model.weights.h5"
# The model card (Hugging Face's README.md), written by tools/make_preset_folders.py or by upload_preset.
CARD_FILE = "README.md"
# The largest weights file read (hashed) at all; a paper-size DIN's is about 80 MB.
MAX_WEIGHTS_BYTES = 4 << 30
# The largest config.json / metadata.json / model card read.
MAX_TEXT_BYTES = 64 << 20
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_RESAVE = "Re-save the preset with `DIN.save_to_preset`, or download or convert it again."


class PresetError(KerasDinError, ValueError):
    """A preset that cannot be loaded; the message names the preset or file at fault."""


class CorruptedFileError(PresetError):
    """A weights file whose SHA-256 differs from the one `metadata.json` records.

    `path` is the file, `detail` the two checksums (or sizes: `what="size"`).
    """

    def __init__(self, path: Path, actual: str, expected: str, what: str = "SHA-256"):
        self.path = path
        self.detail = f"its {what} is {actual}, metadata.json says {expected}"
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


def _link_roots(folder: Path) -> tuple[Path, Path | None]:
    """Where a preset file's symbolic link may lead: inside `folder`, and for a Hub cache snapshot
    (`.../models--owner--name/snapshots/<commit>`) directly into that repo's `blobs/`."""
    real = folder.resolve()
    snapshots = real.parent
    if snapshots.name == "snapshots" and snapshots.parent.name.startswith("models--"):
        return real, snapshots.parent / "blobs"
    return real, None


def check_file_name(folder: Path, name) -> str:
    """`name` if it is a plain file name (no folder, no `..`, not absolute), else a `PresetError`.

    Example:
    >>> check_file_name(Path("my_preset"), "model.weights.h5")
    'model.weights.h5'
    """
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(character in name for character in "/\\:\0")
        or os.path.basename(name) != name
        or Path(name).is_absolute()
    ):
        raise PresetError(
            f"Preset {str(folder)!r}: its {METADATA_FILE} lists {name!r}, which is not a plain file name in the "
            f"preset folder (absolute paths, '..' and subfolders are refused): nothing was read. {_RESAVE}"
        )
    return name


def preset_file(folder: Path, name: str) -> Path | None:
    """`folder/name` after checking it is a regular file of the preset; `None` when there is none.

    `name` must be a plain file name, and a symbolic link must stay inside `folder`
    (or, for a Hub cache snapshot, lead into the same repo's `blobs/`): anything
    else raises `PresetError` without reading the file it leads to.

    Example:
    >>> preset_file(Path("/tmp/din_tiny_preset"), "config.json").name  # doctest: +SKIP
    'config.json'
    """
    path = folder / check_file_name(folder, name)
    try:
        mode = path.lstat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(mode):
        try:
            target = path.resolve()
        except (OSError, RuntimeError) as error:  # a link loop
            raise PresetError(f"{str(path)!r} is a broken symbolic link ({error}). {_RESAVE}") from error
        inside, blobs = _link_roots(folder)
        if not (target.is_relative_to(inside) and target != inside) and (blobs is None or target.parent != blobs):
            raise PresetError(
                f"{str(path)!r} is a symbolic link that leads out of the preset folder: refused, nothing was read. "
                f"A preset's files must be inside its folder: replace the link by the file itself. {_RESAVE}"
            )
        try:
            mode = target.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as error:  # a link loop, where resolve() does not raise on one
            raise PresetError(f"{str(path)!r} is a broken symbolic link ({error}). {_RESAVE}") from error
    if not stat.S_ISREG(mode):
        raise PresetError(f"{str(path)!r} is not a regular file: refused, nothing was read. {_RESAVE}")
    return path


def checked_size(path: Path, limit: int) -> int:
    """The size of `path` (a checked preset file), or a `PresetError` when it exceeds `limit` bytes."""
    size = path.stat().st_size
    if size > limit:
        raise PresetError(
            f"{str(path)!r} is {size:,} bytes, more than the {limit:,} bytes a keras-din preset file may have: "
            f"refused without reading it. Delete it. {_RESAVE}"
        )
    return size


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
    if "weights" in (metadata or {}):
        raise PresetError('save_to_preset records the "weights" entry of metadata.json itself; leave it out.')
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _write_preset(model, folder, metadata)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed save (e.g. a full disk) leaves nothing behind
        raise
    return folder


def saved_size(variables) -> int:
    """About how many bytes a file holding `variables` takes: their data plus 1 MiB of HDF5/zip structure.

    Example:
    >>> import keras
    >>> saved_size([keras.Variable(keras.ops.zeros((256, 1024)))])  # 1 MiB of float32 + 1 MiB
    2097152
    """
    return (1 << 20) + sum(math.prod(v.shape) * _itemsize(v.dtype) for v in variables)


def _itemsize(dtype) -> int:
    bits = re.search(r"\d+", keras.backend.standardize_dtype(dtype))  # "float32" -> 32, "bool" -> none
    return int(bits.group()) // 8 if bits else 1


def _write_preset(model, folder: Path, metadata: dict | None) -> None:
    require_free_space(folder, saved_size(model.weights), f"the weights of preset {str(folder)!r}")
    with staging_folder(folder, "preset") as staging:
        model.save_weights(staging / WEIGHTS_FILE)
        (staging / CONFIG_FILE).write_text(json.dumps(preset_config(model), indent=2) + "\n")
        info = {
            "keras_version": keras.__version__,
            "keras_din_version": __version__,
            "parameter_count": int(model.count_params()),
            "date_saved": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d@%H:%M:%S"),
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


def read_preset_json(folder: Path, name: str) -> dict:
    """Reads `folder/name` as JSON; a `PresetError` names a missing or malformed file.

    Example:
    >>> read_preset_json(Path("/tmp/din_tiny_preset"), "config.json")["class_name"]  # doctest: +SKIP
    'DIN'
    """
    path = preset_file(folder, name)
    if path is None:
        raise PresetError(f"Preset {str(folder)!r} has no {name}; is it a keras-din preset folder?")
    checked_size(path, MAX_TEXT_BYTES)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PresetError(f"{str(path)!r} is not valid JSON: {error}") from error


def weights_entries(folder: Path, metadata: dict) -> dict[str, dict]:
    """The `"weights"` entries of `metadata.json`, each checked: a plain file name with a 64-hex `sha256`
    and, when recorded, an integer `size`. Reads no file; a `PresetError` names the entry at fault.

    Example:
    >>> entry = {"sha256": "0" * 64, "size": 1403496}
    >>> list(weights_entries(Path("p"), {"weights": {"model.weights.h5": entry}}))
    ['model.weights.h5']
    """
    where = f"{str(folder / METADATA_FILE)!r}"
    entries = metadata.get("weights", {}) if isinstance(metadata, dict) else None
    if not isinstance(entries, dict):
        raise PresetError(f'{where}: "weights" must map file names to {{"sha256": ..., "size": ...}}. {_RESAVE}')
    for name, entry in entries.items():
        check_file_name(folder, name)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise PresetError(
                f'{where} records no SHA-256 for {name!r} (a 64-digit hex "sha256"), so it cannot be checked: '
                f"refused, nothing was read. {_RESAVE}"
            )
        size = entry.get("size")
        if size is not None and (type(size) is not int or size < 0):
            raise PresetError(f'{where}: the "size" of {name!r} is {size!r}, not a byte count. {_RESAVE}')
    return entries


def verify_weights(folder: Path, metadata: dict) -> Path:
    """Returns the weights file after checking every weights file against its SHA-256 in `metadata.json`.

    Every entry must be a plain file name inside the folder with a `sha256`, and
    `model.weights.h5` must be listed; sizes are checked (against a recorded
    `size` and `MAX_WEIGHTS_BYTES`) before anything is hashed. Raises
    `PresetError` when the weights file is missing or an entry or file is refused,
    and `CorruptedFileError` (naming the file) when a size or checksum differs.

    Example:
    >>> folder = Path("/tmp/din_tiny_preset")
    >>> verify_weights(folder, read_preset_json(folder, "metadata.json")).name  # doctest: +SKIP
    'model.weights.h5'
    """
    entries = weights_entries(folder, metadata)
    path = preset_file(folder, WEIGHTS_FILE)
    if path is None:
        subject = f"Preset {str(folder)!r} has no {WEIGHTS_FILE}: its weights do not exist yet"
        raise PresetError(missing_weights_message(subject))
    if WEIGHTS_FILE not in entries:
        raise PresetError(
            f"{str(folder / METADATA_FILE)!r} records no SHA-256 for {WEIGHTS_FILE}, so its weights cannot be "
            f"checked: refused. {_RESAVE}"
        )
    for name, entry in entries.items():
        listed = preset_file(folder, name)
        if listed is None:
            raise PresetError(f"Preset {str(folder)!r} has no {name}, which its metadata.json lists.")
        size = listed.stat().st_size
        if entry.get("size") is not None and size != entry["size"]:
            raise CorruptedFileError(listed, f"{size:,} bytes", f"{entry['size']:,} bytes", what="size")
        checked_size(listed, MAX_WEIGHTS_BYTES)
        actual = sha256_of(listed)
        if actual != entry["sha256"].lower():
            raise CorruptedFileError(listed, actual, entry["sha256"])
    return path


def weights_parameter_count(path, name: str | None = None) -> int:
    """The number of model weights stored in a Keras `.weights.h5` file (a path or file object), read from its
    tensor shapes (no tensor is read); an optimizer's state saved beside them (`optimizer/`) is not counted.

    Raises `PresetError` naming the file (`name`, default its path) when it is not a readable HDF5 weights file,
    or when a weight is not an array of plain numbers (at most 8 bytes each), so that its count bounds the
    memory loading it takes.
    """
    import h5py  # Keras' own dependency for .weights.h5

    where = name or repr(str(path))
    total, odd = 0, []

    def count(key, item):
        nonlocal total
        if isinstance(item, h5py.Dataset) and key.split("/")[0] != "optimizer":
            dtype = item.dtype
            bfloat16 = item.attrs.get("dtype") == "bfloat16" and dtype.itemsize == 2  # Keras stores it opaque
            if dtype.subdtype is not None or dtype.itemsize > 8 or not (dtype.kind in "fiub" or bfloat16):
                odd.append(f"{key!r} ({dtype})")
            total += int(item.size)

    try:
        with h5py.File(path, "r") as weights:
            weights.visititems(count)
    except (OSError, ValueError) as error:
        raise PresetError(f"{where} is not a readable Keras weights file (HDF5): {error}. {_RESAVE}") from error
    if odd:
        raise PresetError(f"{where} holds {odd[0]}: not an array of numbers, so not a weight. Refused unread.")
    return total
