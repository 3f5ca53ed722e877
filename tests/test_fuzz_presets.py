"""Property-based fuzzing of what keras-din loads: preset folders (config.json, metadata.json, the weights
file) and the authors' checkpoint headers. Whatever the bytes, loading gives a model or a
`KerasDinError`: never another exception, never a crash, and no file outside the example's own
temporary folder is written, renamed or deleted (a Python audit hook watches every file operation).
"""

import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_din
from keras_din import KerasDinError
from keras_din.preset import save_to_preset

from test_hostile_presets import _touched
from test_presets import tiny_din

_FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_WRITES = {"os.remove", "os.rename", "os.replace", "os.rmdir", "os.truncate", "os.utime", "os.chmod", "os.link",
           "os.symlink", "shutil.rmtree", "shutil.copyfile", "shutil.move"}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """`{name: bytes}` of a real tiny preset folder, the material the examples mutate."""
    folder = save_to_preset(tiny_din(5), tmp_path_factory.mktemp("tiny") / "preset")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _assert_only_inside(events, root: Path) -> None:
    """No write, rename or delete outside `root`; files are opened for writing only inside it."""
    inside = os.path.realpath(root) + os.sep
    for event, raw in events:
        path = os.path.realpath(raw)
        if event in _WRITES:
            assert path.startswith(inside), (event, raw)


def _load(folder: Path, load_weights: bool):
    try:
        return keras_din.DIN.from_preset(folder, load_weights=load_weights)
    except KerasDinError:
        return None


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=True), st.text(max_size=12)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
_sizes = st.one_of(st.integers(-3, 40), st.sampled_from([10**9, 2**31, 1.5, "16", None, True, []]))
_names = st.sampled_from(
    ["model.weights.h5", "../../victim", "/etc/passwd", "a/b.h5", "..", ".", "", "x\0y", "other.weights.h5"]
)
_digests = st.one_of(st.sampled_from(["real", "0" * 64, "zz", None, 5]), st.text(max_size=70))


@st.composite
def _config_changes(draw):
    """Edits of config.json: DIN arguments set to odd values, unknown keys, or a whole different document."""
    if draw(st.booleans()):
        return draw(_json)  # config.json replaced by any JSON value
    keys = ["num_features", "growth_rate", "num_branches", "num_blocks", "in_channels", "out_channels",
            "attention_ratio", "scale", "version", "data_format", "dtype", "num_feature"]  # fmt: skip
    changes = draw(st.dictionaries(st.sampled_from(keys), st.one_of(_sizes, _json_leaf), max_size=3))
    return {"__arguments__": changes}


@st.composite
def _metadata_changes(draw):
    if draw(st.integers(0, 4)) == 0:
        return draw(_json)
    entries = draw(st.dictionaries(_names, st.fixed_dictionaries({"sha256": _digests, "size": _sizes}), max_size=3))
    return {"__weights__": entries}


_weights = st.sampled_from(["real", "empty", "truncated", "junk", "hdf5-of-another-network", "missing", "directory"])


@_FUZZ
@given(config=_config_changes(), metadata=_metadata_changes(), weights=_weights, load_weights=st.booleans())
def test_any_preset_folder_loads_or_raises_a_keras_din_error(tiny_preset, config, metadata, weights, load_weights):
    root = Path(tempfile.mkdtemp(prefix="keras-din-fuzz-"))
    try:
        folder = root / "preset"
        folder.mkdir()
        document = json.loads(tiny_preset["config.json"])
        if isinstance(config, dict) and "__arguments__" in config:
            document["config"].update(config["__arguments__"])
        else:
            document = config
        (folder / "config.json").write_text(json.dumps(document))
        real = tiny_preset["model.weights.h5"]
        content = {
            "real": real,
            "empty": b"",
            "truncated": real[: len(real) // 3],
            "junk": os.urandom(2048),
            "hdf5-of-another-network": _other_network_weights(),
        }.get(weights)
        if content is not None:
            (folder / "model.weights.h5").write_bytes(content)
        elif weights == "directory":
            (folder / "model.weights.h5").mkdir()
        info = json.loads(tiny_preset["metadata.json"])
        if isinstance(metadata, dict) and "__weights__" in metadata:
            digest = hashlib.sha256(content or b"").hexdigest()
            info["weights"] = {
                name: {**entry, "sha256": digest if entry["sha256"] == "real" else entry["sha256"]}
                for name, entry in metadata["__weights__"].items()
            } or info["weights"]
        else:
            info = metadata
        (folder / "metadata.json").write_text(json.dumps(info))
        with _touched() as events:
            model = _load(folder, load_weights)
        _assert_only_inside(events, root)
        if model is not None:
            assert isinstance(model, keras_din.DIN)
    finally:
        shutil.rmtree(root, ignore_errors=True)


_OTHER = {}


def _other_network_weights() -> bytes:
    """The weights file of a different tiny network (same format, other shapes)."""
    if "bytes" not in _OTHER:
        with tempfile.TemporaryDirectory() as folder:
            model = keras_din.DIN(scale=2, num_features=4, growth_rate=2, num_branches=1, num_blocks=1)
            _OTHER["bytes"] = (save_to_preset(model, folder) / "model.weights.h5").read_bytes()
    return _OTHER["bytes"]


# === The authors' checkpoints: safetensors headers ===

_DTYPES = st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "XX", 3])
_shapes = st.lists(st.integers(-2, 70000), max_size=5)


@st.composite
def _safetensors(draw, real: dict):
    """A safetensors file: the real tiny checkpoint's header with fuzzed entries, or a fuzzed header."""
    header = {}
    offset = 0
    for name, array in real.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    data = b"".join(np.ascontiguousarray(array, "<f4").tobytes() for array in real.values())
    for name in draw(st.lists(st.sampled_from(sorted(header)), max_size=3, unique=True)):
        entry = header[name]
        entry.update(
            draw(
                st.dictionaries(
                    st.sampled_from(["dtype", "shape", "data_offsets"]),
                    st.one_of(_DTYPES, _shapes, st.lists(st.integers(-5, 2**33), max_size=3)),
                    max_size=2,
                )
            )
        )
    if draw(st.integers(0, 5)) == 0:
        header = draw(_json)
    raw = json.dumps(header).encode()
    length = draw(st.sampled_from([len(raw), len(raw) + 7, 2**40, 0]))
    return struct.pack("<Q", length) + raw + data[: draw(st.sampled_from([len(data), len(data) // 2, 0]))]


@pytest.fixture(scope="module")
def tiny_checkpoint():
    from keras_din.convert import official_state_dict

    return official_state_dict(tiny_din(6))


@_FUZZ
@given(data=st.data())
def test_any_checkpoint_header_converts_or_raises_a_keras_din_error(tiny_checkpoint, data):
    root = Path(tempfile.mkdtemp(prefix="keras-din-fuzz-"))
    try:
        path = root / "din.safetensors"
        path.write_bytes(data.draw(_safetensors(tiny_checkpoint)))
        with _touched() as events:
            try:
                model = keras_din.convert_official_checkpoint(path)
            except KerasDinError:
                model = None
        _assert_only_inside(events, root)
        if model is not None:
            assert isinstance(model, keras_din.DIN)
    finally:
        shutil.rmtree(root, ignore_errors=True)
