"""`load_preset`: one entry point that turns any preset reference into a model of a given class.

The loader dispatches on the reference (an `hf://` handle, a preset folder, an authors'
checkpoint file, a registered name) to the preset subpackage's format, Hub transport,
checkpoint reader and registry. Like KerasHub's `preset_utils`, it never imports a model
class: the caller passes its class (`DIN.from_preset` passes `DIN`), so the model layer
imports the preset layer and never the other way round.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
import zlib
from pathlib import Path

import h5py
import keras
import ml_dtypes
import numpy as np
from keras.src.saving import saving_lib

from keras_din.architecture import ARCHITECTURE_ARGUMENTS, checked_parameter_count
from keras_din.preset.checkpoint import CHECKPOINT_SUFFIXES, model_from_checkpoint
from keras_din.preset.format import (
    CONFIG_FILE,
    MAX_TEXT_BYTES,
    MAX_WEIGHTS_BYTES,
    METADATA_FILE,
    WEIGHTS_FILE,
    PresetError,
    checked_size,
    missing_weights_message,
    preset_file,
    read_preset_json,
    verify_weights,
    weights_parameter_count,
)
from keras_din.preset.hub import HF_SCHEME, download_preset
from keras_din.preset.registry import PresetInfo, get_preset, weights_path

# A Keras model file (a zip of config.json and model.weights.h5), as `model.save` and `keras-din train` write.
KERAS_SUFFIX = ".keras"
# What a `.keras` file's model.weights.h5 may unpack to per model weight: the weight itself and an
# optimizer's slots (Adam's two moments, the EMA's average: 16 bytes), with room to spare, plus HDF5's
# own overhead; checked before anything is unpacked.
_KERAS_BYTES_PER_WEIGHT = 32
_KERAS_OVERHEAD_BYTES = 16 << 20


def load_preset_folder(cls, folder: str | os.PathLike, load_weights: bool = True, **overrides):
    """Builds the `cls` model a preset folder describes; `overrides` replace config entries (e.g. `dtype`)."""
    folder = Path(folder)
    where = repr(str(folder / CONFIG_FILE))
    try:
        arguments = _described_arguments(cls, read_preset_json(folder, CONFIG_FILE), where)
    except PresetError as error:
        run = sorted(folder.glob(f"*{KERAS_SUFFIX}")) if (folder / "state.json").is_file() else []
        if not run:
            raise
        hint = f"It is a `keras-din train` run folder: pass one of its checkpoints, e.g. {str(run[-1])!r}."
        raise PresetError(f"{error} {hint}") from None
    expected = _expected_parameters(where, arguments)  # sizes checked before any weights are read
    weights = None
    if load_weights:
        if preset_file(folder, METADATA_FILE) is None:
            raise PresetError(
                f"Preset {str(folder)!r} has no {METADATA_FILE}, so its weights cannot be checked against their "
                "SHA-256: refused. Re-save the model with `DIN.save_to_preset` (which writes it), or pass "
                "load_weights=False to build the architecture with fresh weights."
            )
        weights = verify_weights(folder, read_preset_json(folder, METADATA_FILE))
        remedy = "Re-save the preset with `DIN.save_to_preset`, or download or convert it again."
        _check_weights_count(weights, repr(str(weights)), expected, where, remedy)
    return _build(cls, arguments, overrides, weights, repr(str(weights)), where)


def load_training_checkpoint(cls, path: str | os.PathLike, load_weights: bool = True, **overrides):
    """Builds the `cls` model a Keras `.keras` file holds, e.g. a `keras-din train` checkpoint mid-run.

    Only the file's `config.json` and its model's weights are read (with `solver.ema`, the moving
    average: what the run's validation scored); the optimizer's state beside them is skipped, and
    nothing in the file is executed or deserialised but the model's config, as for a preset folder.
    The model is built in the global precision policy (float32 by default), not in the mixed precision
    the run trained in; `overrides` replace config entries (e.g. `dtype`).

    Example:
    >>> import keras_din
    >>> keras_din.DIN.from_preset("run/checkpoint-0046.keras").count_params()  # doctest: +SKIP
    577977
    """
    path = Path(path)
    where = repr(str(path))
    config_where, weights_where = f"{CONFIG_FILE} in {where}", f"{WEIGHTS_FILE} in {where}"
    checked_size(path, MAX_WEIGHTS_BYTES)
    with _keras_zip(path, where) as archive:
        try:
            config = json.loads(_zip_member(archive, CONFIG_FILE, MAX_TEXT_BYTES, where))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise PresetError(f"{config_where} is not valid JSON: {error}") from None
        arguments = _described_arguments(cls, config, config_where)
        arguments.pop("dtype", None)  # the run's training precision (e.g. mixed_bfloat16), not an inference one
        expected = _expected_parameters(config_where, arguments)
        weights = None
        if load_weights:
            limit = MAX_WEIGHTS_BYTES
            if expected is not None:
                limit = min(limit, expected * _KERAS_BYTES_PER_WEIGHT + _KERAS_OVERHEAD_BYTES)
            weights = io.BytesIO(_zip_member(archive, WEIGHTS_FILE, limit, where))
    if weights is not None:
        remedy = "Save the model again (`model.save(...)`) or pass another checkpoint of the run."
        _check_weights_count(weights, weights_where, expected, config_where, remedy)
    return _build(cls, arguments, overrides, weights, weights_where, config_where)


# What Python's zipfile raises on a damaged, truncated, encrypted or oddly compressed archive.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, NotImplementedError, zlib.error)


@contextlib.contextmanager
def _keras_zip(path: Path, where: str):
    """`path` opened as a zip archive; a `PresetError` naming it when it is none."""
    try:
        archive = zipfile.ZipFile(path)
    except (*_ZIP_ERRORS, OSError) as error:
        raise PresetError(
            f"{where} is not a readable .keras file ({error}); a `keras-din train` checkpoint or `model.save(...)` is."
        ) from None
    with archive:
        yield archive


def _zip_member(archive: zipfile.ZipFile, name: str, limit: int, where: str) -> bytes:
    """The bytes of `archive`'s member `name`, refused unread when missing or larger than `limit` unpacked."""
    try:
        size = archive.getinfo(name).file_size
    except KeyError:
        raise PresetError(f"{where} has no {name}: it is not a Keras .keras model file.") from None
    if size > limit:
        raise PresetError(
            f"{where}: its {name} unpacks to {size:,} bytes, more than the {limit:,} its config's network can "
            "need: refused unread."
        )
    try:
        return archive.read(name)  # zipfile stops at the size the archive declares
    except _ZIP_ERRORS as error:
        raise PresetError(f"{where}: its {name} cannot be unpacked ({error}); the file is damaged.") from None


def _described_arguments(cls, config, where: str) -> dict:
    """The constructor arguments of a serialised `cls` (`config["config"]`), or a `PresetError` naming `where`."""
    described = isinstance(config, dict) and config.get("class_name") == cls.__name__
    if not described or not isinstance(config.get("config"), dict):
        named = isinstance(config, dict) and "class_name" in config
        held = f" (it describes a {config['class_name']!r})" if named else ""
        raise PresetError(f"{where} does not describe a keras_din {cls.__name__} model{held}.")
    return dict(config["config"])


def _check_weights_count(weights, weights_name: str, expected: int | None, where: str, remedy: str) -> None:
    """A `PresetError` when the weights file (a path or file object) holds other than `expected` weights."""
    stored = weights_parameter_count(weights, weights_name)
    if expected is not None and stored != expected:
        raise PresetError(
            f"{weights_name} holds {stored:,} weights, but the network {where} describes has {expected:,}: "
            f"the config and the weights do not belong together, nothing was built. {remedy}"
        )


def _build(cls, arguments: dict, overrides: dict, weights, weights_name: str, where: str):
    """The `cls` of `arguments` (with `overrides`), holding the values of `weights` (a checked `.weights.h5`
    path or file object; `None` for fresh weights); the names say where the config and weights came from."""
    pending = _pending_variables()
    try:
        # With weights to load, the variables are made without their initializers' values (see below).
        with keras.StatelessScope(initialize_variables=False) if weights else contextlib.nullcontext():
            model = cls.from_config({**arguments, **overrides})
    except (TypeError, ValueError) as error:
        _set_pending_variables(pending)  # those of the half-built model are dropped with it
        raise PresetError(f"{where} does not describe a buildable {cls.__name__}: {error}") from None
    if weights is not None:
        _load_into_uninitialized(model, weights, weights_name)
    return model


# === Keras internals, for start-up time =================================================
# Building a network runs every weight initializer, for values the weights file then replaces:
# on JAX each new kernel shape compiles its own XLA program (building din_small_x2 spent 18.7 of
# its 21 s there on the 2-core AVX2 machine), and on TensorFlow a paper-size conference x4 spent
# 1.8 s in eager initializer ops, then 1.4 s assigning in `load_weights`. So a preset with weights
# is built inside Keras' StatelessScope without initialisation, `load_weights` runs in a second one
# that only records the values it would assign, and each variable is then created once, directly
# from the file's value (Keras' `_initialize`, what its deferred initialisation itself calls). On the
# AVX-512 EPYC (2 threads, nothing beside) conference x4 built and loaded in 2.0 s instead of
# 3.4 s on TensorFlow and 1.6 s instead of 1.8 s on torch (README, "Start-up").


def _load_into_uninitialized(model, weights, weights_name: str) -> None:
    """Gives `model`'s uninitialized variables the values of the weights file (a `PresetError` if they do not
    fit); a variable the file does not hold gets its initializer's value, and none is left on Keras' list of
    variables still to initialise (or the next StatelessScope would initialise it again)."""
    _cache_attr_skipsets()
    try:
        with keras.StatelessScope(initialize_variables=False) as recorded:
            _load_weights_file(model, weights)
    except ValueError as error:
        raise PresetError(f"{weights_name} does not fit the network of its config.json: {error}") from None
    finally:
        ours = {id(variable) for variable in model.variables}
        _set_pending_variables([v for v in _pending_variables() if id(v) not in ours])
    for variable in model.variables:
        value = recorded.get_current_value(variable)
        if value is None:
            variable._deferred_initialize()
        else:
            variable._initialize(value)


def _load_weights_file(model, weights) -> None:
    """`model.load_weights(weights)` for a `.weights.h5` file, its arrays read in one pass first.

    Keras' `load_weights` looks each layer's variables up in the open HDF5 file through h5py, two to four
    group lookups per layer (a paper-size conference x4: 12,065 membership tests, 7,865 group opens for
    1,100 arrays), 0.8-1.3 s of the build and load on the 2-core AMX Xeon; reading every array in one
    `visititems` takes 0.22-0.27 s. So the file is read into `_WeightsInMemory` and Keras' own walk over the
    model (`saving_lib._load_state`, what `load_weights` runs) takes its values from there: the same
    variables get the same values (`tests/test_serialization.py` compares them with `load_weights`'), and a
    mismatch raises Keras' own `ValueError`.
    """
    failed, messages = set(), {}
    saving_lib._load_state(
        model,
        weights_store=_WeightsInMemory(weights),
        assets_store=None,
        inner_path="",
        visited_saveables=set(),
        failed_saveables=failed,
        error_msgs=messages,
    )
    if failed:
        saving_lib._raise_loading_failure(messages)


class _WeightsInMemory(saving_lib.H5IOStore):
    """Keras' HDF5 weights store in read mode (the interface `_load_state` uses), over arrays read at once.

    Like `H5IOStore.get`, a path holds the arrays of its `vars` group (none where it has no such group), a
    dataset Keras marked `bfloat16` is read as `ml_dtypes.bfloat16`, and a file written by Keras 2.13
    (`_layer_checkpoint_dependencies` for `layers`) is read too. Subclassed only because `_load_state`
    accepts no other kind of store; none of `H5IOStore`'s state is used.
    """

    def __init__(self, path):  # a path or file object; not H5IOStore.__init__, which opens the file
        self.mode = "r"
        self._groups: dict[str, dict[str, np.ndarray]] = {}
        self._paths: set[str] = set()
        self._entry: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as file:
            file.visititems(self._read)

    def _read(self, name: str, item) -> None:
        if name.split("/")[0] == "optimizer":
            return  # a checkpoint's optimizer state (`.keras`): never loaded into the model, so never read
        self._paths.add(name)
        if isinstance(item, h5py.Dataset):
            bfloat16 = item.attrs.get("dtype") == "bfloat16"  # stored as 2-byte opaque values; h5py converts
            group, _, key = name.rpartition("/")
            self._groups.setdefault(group, {})[key] = np.array(item, dtype=ml_dtypes.bfloat16 if bfloat16 else None)

    def get(self, path: str):
        group = f"{path}/vars" if path else "vars"
        if group not in self._groups and "_layer_checkpoint_dependencies" in self._paths:
            group = group.replace("layers", "_layer_checkpoint_dependencies")
        self._entry = self._groups.get(group, {})
        return self

    def has_path(self, path: str) -> bool:
        return path in self._paths

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        return len(self._entry)

    def keys(self):
        return self._entry.keys()

    def __getitem__(self, key: str) -> np.ndarray:
        return self._entry[key]

    def __contains__(self, key: str) -> bool:
        return key in self._entry

    def close(self) -> None:
        self._groups.clear()


def _cache_attr_skipsets() -> None:
    """Fills the cache Keras' `load_weights` means to keep of the attributes it skips per kind of object.

    `keras.src.saving.saving_lib.get_attr_skipset` (Keras 3.15) reads its cache under
    `saving_attr_skiplist_<kind>` but stores it under `saving_attr_skipset_<kind>`, so it never hits: for each
    layer `load_weights` visits it builds a throwaway `Layer()` to list the attributes of a bare one (668 for
    a paper-size conference x4, 0.2-0.5 s of its build and load on the 2-core AVX-512 EPYC). Storing each set
    under the key it reads makes that once per kind; harmless once Keras fixes the key (the entry is then
    never read).
    """
    from keras.src.backend.common import global_state

    for kind in ("Layer", "Functional", "Operation"):
        key = f"saving_attr_skiplist_{kind}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(kind))


def _pending_variables() -> list:
    from keras.src.backend.common import global_state  # Keras' list of variables still to initialise

    return list(global_state.get_global_attribute("uninitialized_variables") or [])


def _set_pending_variables(variables: list) -> None:
    from keras.src.backend.common import global_state

    global_state.set_global_attribute("uninitialized_variables", variables)


def _expected_parameters(where: str, arguments: dict) -> int | None:
    """The parameter count of the network a config describes, its sizes first checked against DIN's bounds.

    Microseconds, before anything is built; a `PresetError` names the config and the size at fault.
    `None` for a hand-written config that leaves sizes to DIN's defaults (its constructor checks them).
    """
    known = {key: arguments[key] for key in ARCHITECTURE_ARGUMENTS if key in arguments}
    if not set(ARCHITECTURE_ARGUMENTS) - {"attention_ratio"} <= set(known):
        return None
    try:
        return checked_parameter_count(**known)
    except (TypeError, ValueError) as error:
        raise PresetError(f"{where}: {error}") from None


def load_preset(cls, preset: str | os.PathLike, load_weights: bool = True, **overrides):
    """Resolves `preset` to a `cls` model (`DIN.from_preset` calls this with `cls=DIN`).

    `preset` is one of, in the order they are tried:

    * an `hf://owner/repo` handle, optionally `@revision` (branch, tag or commit):
      downloaded through `huggingface_hub` into its cache (offline once cached),
      weights checked against `metadata.json`;
    * a preset folder (`config.json`, `metadata.json`, `model.weights.h5`);
    * an authors' checkpoint file (`.pth`, `.safetensors`, ...), converted;
    * a Keras `.keras` file, e.g. a `keras-din train` checkpoint (`load_training_checkpoint`);
    * a registered preset name (`keras_din.list_presets()`), loaded from its folder,
      or from the Hub when its weights are published there.

    Example:
    >>> import keras_din
    >>> load_preset(keras_din.DIN, "din_small_x2").count_params()  # bundled, trained
    257735
    """
    reference = os.fspath(preset)
    if reference.startswith(HF_SCHEME):
        folder = download_preset(reference, include_weights=load_weights)
        return load_preset_folder(cls, folder, load_weights=load_weights, **overrides)
    path = Path(reference).expanduser()
    if path.is_dir():
        return load_preset_folder(cls, path, load_weights=load_weights, **overrides)
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return model_from_checkpoint(cls, path, **overrides)
    if path.suffix.lower() == KERAS_SUFFIX and not path.is_dir():
        if not path.is_file():
            raise PresetError(f"{str(path)!r}: no such .keras file (a training checkpoint, or `model.save(...)`).")
        return load_training_checkpoint(cls, path, load_weights=load_weights, **overrides)
    return _load_registered(cls, get_preset(reference), load_weights, overrides)


def _load_registered(cls, info: PresetInfo, load_weights: bool, overrides: dict):
    """Loads a registered preset: from its folder, else from the Hub where its weights are published."""
    folder = info.folder()
    if folder is not None and (not load_weights or weights_path(info) is not None):
        return load_preset_folder(cls, folder, load_weights=load_weights, **overrides)
    if not load_weights:
        return cls.from_config({**info.architecture_config(), **overrides})
    if info.weights_available:
        return load_preset(cls, info.hf_handle, **overrides)
    subject = f'Preset {info.name!r} has no trained weights yet ("weights_available": false)'
    raise PresetError(missing_weights_message(subject))
