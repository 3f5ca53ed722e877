"""Hostile presets: what a preset's files and `metadata.json` name can never make keras-din read, hash,
upload or delete outside the preset.

The repros: hand-built Hugging Face caches (`models--owner--name/` with `blobs/`,
`refs/main` and `snapshots/<commit>/` links into `blobs/`, loaded offline) and
served repos (`hub_server.FakeHub`) whose `metadata.json` lists `../../../../victim`,
an absolute path or a link out of the folder with a wrong `sha256`; local folders
with the same, a missing `sha256`, no `metadata.json`, a 20 GiB sparse file or a
FIFO; uploads naming a file outside the folder. Every test keeps victim files
outside the preset and checks afterwards that they exist with the same bytes and
mtime, and a Python audit hook (`open`, `os.remove`, `os.rename`, ...) records that
nothing touched them while keras-din ran.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from huggingface_hub import constants

import keras_din
from keras_din._io.atomic import require_free_space
from keras_din.errors import StorageError
from keras_din.preset import MAX_WEIGHTS_BYTES, PresetError, save_to_preset

from conftest import OFFICIAL
from test_hub import hub  # noqa: F401  (the fixture: a Hub on 127.0.0.1)
from test_presets import tiny_din

WEIGHTS = "model.weights.h5"
REPO_ID = "evil/preset"
HANDLE = f"hf://{REPO_ID}"
COMMIT = hashlib.sha1(b"hostile").hexdigest()
WRONG = "0" * 64

# === Watching the file system ===

_EVENTS: list[tuple[str, str]] | None = None  # recording while not None
_PATH_EVENTS = {
    "open",
    "os.remove",
    "os.rename",
    "os.replace",
    "os.rmdir",
    "os.truncate",
    "os.utime",
    "os.chmod",
    "os.link",
    "os.symlink",
    "shutil.rmtree",
    "shutil.copyfile",
    "shutil.move",
}


def _audit(event, args):
    if _EVENTS is None or event not in _PATH_EVENTS:
        return
    for arg in args[:2]:
        if isinstance(arg, (str, bytes, os.PathLike)):
            _EVENTS.append((event, os.fsdecode(arg)))


sys.addaudithook(_audit)  # cannot be removed; it records nothing outside `_touched`


@contextmanager
def _touched():
    """Records `(event, path)` of every file operation Python makes inside the block."""
    global _EVENTS
    _EVENTS = events = []
    try:
        yield events
    finally:
        _EVENTS = None


class Victims:
    """Files outside every preset, and the proof that nothing read, changed or deleted them."""

    def __init__(self, root: Path):
        self.root = root / "victim"
        self.root.mkdir()
        self.secret = self.root / "secret.txt"
        self.secret.write_bytes(b"the user's file\n" * 1000)
        self.link = root / "victim_link"  # where ../../../../victim_link from a cache snapshot lands
        self.link.symlink_to(self.secret)
        self.passwd = self.root / "passwd"
        self.passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
        self.paths = [self.secret, self.link, self.passwd]
        self.before = {path: self._state(path) for path in self.paths}

    @staticmethod
    def _state(path: Path):
        return path.is_symlink() and os.readlink(path), path.read_bytes(), path.stat().st_mtime_ns

    def sha256s(self) -> list[str]:
        return [hashlib.sha256(path.read_bytes()).hexdigest() for path in (self.secret, self.passwd)]

    def assert_untouched(self, events, message: str = "") -> None:
        for path in self.paths:
            assert path.exists() or path.is_symlink(), f"{path} was deleted"
            assert self._state(path) == self.before[path], f"{path} changed"
        watched = {os.path.abspath(path) for path in self.paths} | {str(self.root)}
        for event, raw in events:
            for candidate in (os.path.abspath(raw), os.path.realpath(raw)):
                assert candidate not in watched and not candidate.startswith(str(self.root) + os.sep), (event, raw)
        for digest in self.sha256s():  # no foreign file's hash in what the user is told
            assert digest not in message


@pytest.fixture
def victims(tmp_path):
    return Victims(tmp_path)


# === Presets ===


@pytest.fixture(scope="module")
def preset_files(tmp_path_factory):
    """`{name: bytes}` of a tiny preset folder as `save_to_preset` writes it."""
    folder = tiny_din(7).save_to_preset(tmp_path_factory.mktemp("tiny") / "preset")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _metadata(preset_files, **weights) -> dict:
    """The tiny preset's metadata with `weights` entries added (or, given `None`, removed)."""
    metadata = json.loads(preset_files["metadata.json"])
    for name, entry in weights.items():
        if entry is None:
            metadata["weights"].pop(name)
        else:
            metadata["weights"][name] = entry
    return metadata


def _folder(tmp_path, preset_files, metadata=None, name="preset") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for file, data in preset_files.items():
        (folder / file).write_bytes(data)
    if metadata is not None:
        (folder / "metadata.json").write_text(json.dumps(metadata))
    return folder


def _hf_cache(cache: Path, repo_id: str, files: dict[str, bytes], links: dict[str, str] = ()) -> Path:
    """A Hugging Face cache as huggingface_hub writes it: blobs named by content, `refs/main`, and
    `snapshots/<commit>/<name>` -> `../../blobs/<blob>`; `links` adds snapshot entries pointing anywhere."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    snapshot.mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (repo / "blobs" / blob).write_bytes(data)
        (snapshot / name).symlink_to(f"../../blobs/{blob}")
    for name, target in dict(links).items():
        (snapshot / name).symlink_to(target)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, huggingface_hub offline and pointed at it."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def _tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root`: a link's target, a file's bytes."""
    return {
        str(path.relative_to(root)): os.readlink(path) if path.is_symlink() else path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_symlink() or path.is_file()
    }


# === The Hugging Face cache: nothing outside the repo's own folder is read or deleted ===


def test_a_hand_built_cache_loads_offline(offline_cache, preset_files):
    """The layout the hostile tests use is huggingface_hub's: links into the repo's blobs/ are followed."""
    _hf_cache(offline_cache, REPO_ID, preset_files)
    model = keras_din.DIN.from_preset(HANDLE)
    assert model.count_params() == json.loads(preset_files["metadata.json"])["parameter_count"]


@pytest.mark.parametrize(
    "listed",
    ["../../../../victim_link", "../../../../victim/secret.txt", "ABSOLUTE", "sub/../../x", "..", "C:evil"],
)
def test_cache_metadata_naming_a_file_outside_deletes_nothing(offline_cache, preset_files, victims, listed):
    listed = str(victims.secret) if listed == "ABSOLUTE" else listed
    metadata = _metadata(preset_files, **{listed: {"sha256": WRONG}})
    snapshot = _hf_cache(offline_cache, REPO_ID, {**preset_files, "metadata.json": json.dumps(metadata).encode()})
    cache_before = _tree(offline_cache)
    with _touched() as events, pytest.raises(PresetError, match="not a plain file name") as error:
        keras_din.DIN.from_preset(HANDLE)
    assert str(error.value).startswith(f"{HANDLE} (") and repr(listed) in str(error.value)
    assert "Re-save the preset with `DIN.save_to_preset`" in str(error.value)
    victims.assert_untouched(events, str(error.value))
    assert _tree(offline_cache) == cache_before  # the cache keeps its files too: nothing was evicted
    assert snapshot.joinpath(WEIGHTS).is_file()


@pytest.mark.parametrize("target", ["victim", "victim_link", "other_repo_blob", "relative_out"])
def test_cache_snapshot_link_leading_out_of_the_repo_is_refused_and_not_followed(
    offline_cache, preset_files, victims, target
):
    """A snapshot entry may only link into its own repo's blobs/: not to a user file, nor another repo's blob."""
    other = _hf_cache(offline_cache, "someone/else", preset_files)  # a second repo in the same cache
    other_blob = other.joinpath(WEIGHTS).resolve()
    destination = {
        "victim": str(victims.secret),
        "victim_link": str(victims.link),
        "other_repo_blob": str(other_blob),
        "relative_out": "../../blobs/../../../victim/secret.txt",
    }[target]
    metadata = _metadata(preset_files, **{"extra.weights.h5": {"sha256": WRONG}})
    _hf_cache(
        offline_cache,
        REPO_ID,
        {**preset_files, "metadata.json": json.dumps(metadata).encode()},
        links={"extra.weights.h5": destination},
    )
    cache_before = _tree(offline_cache)
    other_state = (other_blob.read_bytes(), other_blob.stat().st_mtime_ns)
    with _touched() as events, pytest.raises(PresetError, match="symbolic link that leads out of the preset") as error:
        keras_din.DIN.from_preset(HANDLE)
    assert "extra.weights.h5" in str(error.value) and str(other_blob) not in str(error.value)
    victims.assert_untouched(events, str(error.value))
    assert (other_blob.read_bytes(), other_blob.stat().st_mtime_ns) == other_state
    assert not any(os.path.realpath(path) == str(other_blob) for _, path in events)
    assert _tree(offline_cache) == cache_before


def test_cache_weights_link_leading_out_is_refused_even_with_the_right_checksum(offline_cache, preset_files, victims):
    """`model.weights.h5 -> /the/user's/file` whose sha256 metadata records correctly: still not read."""
    digest, size = hashlib.sha256(victims.secret.read_bytes()).hexdigest(), victims.secret.stat().st_size
    metadata = _metadata(preset_files, **{WEIGHTS: {"sha256": digest, "size": size}})
    files = {name: data for name, data in preset_files.items() if name != WEIGHTS}
    _hf_cache(
        offline_cache,
        REPO_ID,
        {**files, "metadata.json": json.dumps(metadata).encode()},
        links={WEIGHTS: str(victims.secret)},
    )
    with _touched() as events, pytest.raises(PresetError, match=f"{WEIGHTS}' is a symbolic link that leads out"):
        keras_din.DIN.from_preset(HANDLE)
    victims.assert_untouched(events)


def test_corrupted_cached_weights_are_evicted_from_that_repo_only(offline_cache, preset_files, victims):
    """The legitimate eviction still works: the snapshot entry and its blob go, nothing else."""
    weights = bytearray(preset_files[WEIGHTS])
    weights[len(weights) // 2] ^= 0xFF
    other = _hf_cache(offline_cache, "someone/else", preset_files)
    snapshot = _hf_cache(offline_cache, REPO_ID, {**preset_files, WEIGHTS: bytes(weights)})
    blob = snapshot.joinpath(WEIGHTS).resolve()
    others_before = _tree(other.parents[2] / "models--someone--else")
    with _touched() as events, pytest.raises(PresetError, match="is corrupted.*removed from the Hugging Face cache"):
        keras_din.DIN.from_preset(HANDLE)
    victims.assert_untouched(events)
    assert not snapshot.joinpath(WEIGHTS).is_symlink() and not blob.exists()
    assert snapshot.joinpath("config.json").is_file() and snapshot.joinpath("metadata.json").is_file()
    assert _tree(other.parents[2] / "models--someone--else") == others_before
    removed = {os.path.abspath(path) for event, path in events if event == "os.remove"}
    assert removed == {str(snapshot / WEIGHTS), str(blob)}


def test_served_repo_naming_a_file_outside_deletes_nothing(hub, preset_files, victims, tmp_path):  # noqa: F811
    """The same through a real download: the repo's metadata.json lists ../../../../victim_link."""
    hostile = {"../../../../victim_link": {"sha256": WRONG}, "/etc/passwd": {"sha256": WRONG}}
    metadata = _metadata(preset_files, **hostile)
    hub.add_repo(REPO_ID, {**preset_files, "metadata.json": json.dumps(metadata).encode()})
    with _touched() as events, pytest.raises(PresetError, match="not a plain file name"):
        keras_din.DIN.from_preset(HANDLE)
    victims.assert_untouched(events)
    assert Path("/etc/passwd").exists()
    model = keras_din.DIN.from_preset(HANDLE, load_weights=False)  # the architecture needs no weights check
    assert model.count_params() == metadata["parameter_count"]


# === Local folders ===


@pytest.mark.parametrize("listed", ["../victim/secret.txt", "ABSOLUTE", "sub/model.weights.h5", "..\\victim", ""])
def test_folder_metadata_naming_a_file_outside_is_refused_before_reading(tmp_path, preset_files, victims, listed):
    listed = str(victims.secret) if listed == "ABSOLUTE" else listed
    folder = _folder(tmp_path, preset_files, _metadata(preset_files, **{listed: {"sha256": WRONG}}))
    with _touched() as events, pytest.raises(PresetError, match="not a plain file name") as error:
        keras_din.DIN.from_preset(folder)
    victims.assert_untouched(events, str(error.value))
    assert not any(path.endswith(WEIGHTS) for event, path in events if event == "open")  # refused before hashing


def test_folder_link_leading_out_is_refused_and_a_link_inside_loads(tmp_path, preset_files, victims):
    digest, size = hashlib.sha256(victims.secret.read_bytes()).hexdigest(), victims.secret.stat().st_size
    folder = _folder(tmp_path, preset_files, _metadata(preset_files, **{"extra.h5": {"sha256": digest, "size": size}}))
    (folder / "extra.h5").symlink_to(victims.secret)
    with _touched() as events, pytest.raises(PresetError, match="extra.h5' is a symbolic link that leads out"):
        keras_din.DIN.from_preset(folder)
    victims.assert_untouched(events)
    inside = _folder(tmp_path, preset_files, name="inside")  # a link that stays inside the folder is fine
    (inside / "real").mkdir()
    (inside / WEIGHTS).rename(inside / "real" / WEIGHTS)
    (inside / WEIGHTS).symlink_to(Path("real") / WEIGHTS)
    assert keras_din.DIN.from_preset(inside).count_params() > 0
    loop = _folder(tmp_path, preset_files, name="loop")
    (loop / WEIGHTS).unlink()
    (loop / WEIGHTS).symlink_to(WEIGHTS)
    with pytest.raises(PresetError, match="broken symbolic link"):
        keras_din.DIN.from_preset(loop)


@pytest.mark.parametrize(
    "entry", [{}, {"size": 10}, {"sha256": "abc"}, {"sha256": None}, {"sha256": "g" * 64}, "0" * 64, None]
)
def test_weights_without_a_sha256_are_refused(tmp_path, preset_files, entry):
    metadata = _metadata(preset_files, **{WEIGHTS: entry})
    folder = _folder(tmp_path, preset_files, metadata)
    message = "records no SHA-256 for .*model.weights.h5.*Re-save the preset with `DIN.save_to_preset`"
    with _touched() as events, pytest.raises(PresetError, match=message):
        keras_din.DIN.from_preset(folder)
    assert not any(path.endswith(WEIGHTS) for event, path in events if event == "open")  # nothing hashed
    assert keras_din.DIN.from_preset(folder, load_weights=False).count_params() > 0


def test_a_folder_without_metadata_is_refused_but_builds_without_weights(tmp_path, preset_files):
    folder = _folder(tmp_path, preset_files)
    (folder / "metadata.json").unlink()
    with pytest.raises(PresetError, match="has no metadata.json.*Re-save the model with `DIN.save_to_preset`"):
        keras_din.DIN.from_preset(folder)
    assert keras_din.DIN.from_preset(folder, load_weights=False).count_params() > 0
    metadata = json.loads(preset_files["metadata.json"])
    metadata.pop("weights")
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(PresetError, match="records no SHA-256 for model.weights.h5"):
        keras_din.DIN.from_preset(folder)


def test_old_presets_without_a_size_still_load_and_new_ones_record_it(tmp_path, preset_files):
    metadata = json.loads(preset_files["metadata.json"])
    assert metadata["weights"][WEIGHTS]["size"] == len(preset_files[WEIGHTS])  # what save_to_preset writes
    del metadata["weights"][WEIGHTS]["size"]
    metadata["weights"][WEIGHTS]["sha256"] = metadata["weights"][WEIGHTS]["sha256"].upper()
    assert keras_din.DIN.from_preset(_folder(tmp_path, preset_files, metadata)).count_params() > 0
    bundled = [folder for folder in (Path(keras_din.__file__).parent / "presets").iterdir() if folder.is_dir()]
    assert len(bundled) >= 3
    for folder in bundled:  # the bundled presets, as shipped
        assert keras_din.preset.verify_weights(folder, json.loads((folder / "metadata.json").read_text()))
    with pytest.raises(PresetError, match='records the "weights" entry'):
        save_to_preset(tiny_din(1), tmp_path / "mine", metadata={"weights": {}})
    assert not (tmp_path / "mine" / "metadata.json").exists()


def test_wrong_size_is_refused_before_hashing(tmp_path, preset_files):
    metadata = _metadata(preset_files)
    metadata["weights"][WEIGHTS]["size"] += 1
    folder = _folder(tmp_path, preset_files, metadata)
    with _touched() as events, pytest.raises(PresetError, match="is corrupted: its size is .* bytes, metadata.json"):
        keras_din.DIN.from_preset(folder)
    assert not any(path.endswith(WEIGHTS) for event, path in events if event == "open")
    metadata["weights"][WEIGHTS]["size"] = "1403496"
    (folder / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(PresetError, match="\"size\" of .* is '1403496', not a byte count"):
        keras_din.DIN.from_preset(folder)


@pytest.mark.parametrize("recorded", [None, 20 << 30, 1234])
def test_a_huge_sparse_file_is_refused_without_hashing(tmp_path, preset_files, recorded):
    """The issue's 20 GB file took minutes to hash; now its size is read and nothing else."""
    entry = {"sha256": WRONG} if recorded is None else {"sha256": WRONG, "size": recorded}
    folder = _folder(tmp_path, preset_files, _metadata(preset_files, **{"big.weights.h5": entry}))
    with open(folder / "big.weights.h5", "wb") as handle:
        handle.truncate(20 << 30)  # sparse: no disk used
    assert (20 << 30) > MAX_WEIGHTS_BYTES
    start = time.monotonic()
    with _touched() as events, pytest.raises(PresetError, match="big.weights.h5") as error:
        keras_din.DIN.from_preset(folder)
    assert time.monotonic() - start < 10
    expected = "is corrupted: its size is 21,474,836,480 bytes" if recorded == 1234 else "refused without reading it"
    assert expected in str(error.value)
    assert not any(path.endswith("big.weights.h5") for event, path in events if event == "open")


def test_a_fifo_is_refused_without_blocking(tmp_path, preset_files):
    folder = _folder(tmp_path, preset_files, _metadata(preset_files, **{"pipe.h5": {"sha256": WRONG}}))
    os.mkfifo(folder / "pipe.h5")  # opening it would wait for a writer forever
    with pytest.raises(PresetError, match="pipe.h5' is not a regular file"):
        keras_din.DIN.from_preset(folder)


# === Uploads: only the folder's own regular files are sent ===


def _sent(hub) -> set[bytes]:  # noqa: F811
    return {data for repo in hub.repos.values() for files in repo.commits.values() for data in files.values()}


def test_upload_of_metadata_naming_an_outside_file_sends_nothing(hub, tmp_path, preset_files, victims):  # noqa: F811
    """`"/etc/passwd": {...}` in metadata.json (with the right checksum) used to end up in the commit."""
    digest = hashlib.sha256(victims.passwd.read_bytes()).hexdigest()
    for listed in (str(victims.passwd), "../victim/passwd", "/etc/passwd"):
        entry = {"sha256": digest, "size": victims.passwd.stat().st_size}
        folder = _folder(tmp_path, preset_files, _metadata(preset_files, **{listed: entry}), name=f"p{len(listed)}")
        with _touched() as events, pytest.raises(PresetError, match="not a plain file name"):
            keras_din.upload_preset(HANDLE, folder, token="hf_test_token")
        victims.assert_untouched(events)
    assert hub.requests == [] and hub.repos == {}


@pytest.mark.parametrize("linked", [WEIGHTS, "extra.weights.h5", "config.json", "README.md"])
def test_upload_of_a_link_leading_out_sends_nothing(hub, tmp_path, preset_files, victims, linked):  # noqa: F811
    folder = _folder(tmp_path, preset_files)
    metadata = json.loads(preset_files["metadata.json"])
    if linked.endswith(".weights.h5"):  # metadata records the outside file's true checksum and size
        digest = hashlib.sha256(victims.secret.read_bytes()).hexdigest()
        metadata["weights"][linked] = {"sha256": digest, "size": victims.secret.stat().st_size}
        (folder / "metadata.json").write_text(json.dumps(metadata))
    (folder / linked).unlink(missing_ok=True)
    (folder / linked).symlink_to(victims.secret)
    with _touched() as events, pytest.raises(PresetError, match=f"{linked}' is a symbolic link that leads out"):
        keras_din.upload_preset(HANDLE, folder, token="hf_test_token")
    victims.assert_untouched(events)
    assert hub.requests == [] and victims.secret.read_bytes() not in _sent(hub)


def test_upload_sends_the_folders_own_files(hub, tmp_path, preset_files, victims):  # noqa: F811
    """A folder whose files are its own (one a link inside it) uploads as before, and nothing else."""
    folder = _folder(tmp_path, preset_files)
    shutil.copy(folder / WEIGHTS, folder / "copy.bin")
    (folder / WEIGHTS).unlink()
    (folder / WEIGHTS).symlink_to("copy.bin")
    (folder / "notes.txt").write_text("not a preset file: never sent\n")
    with _touched() as events:
        pinned = keras_din.upload_preset(HANDLE, folder, token="hf_test_token")
    victims.assert_untouched(events)
    files = hub.files(REPO_ID)
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "metadata.json", WEIGHTS]
    assert files[WEIGHTS] == preset_files[WEIGHTS]
    assert keras_din.DIN.from_preset(pinned).count_params() > 0


@contextmanager
def _small_disk(path: Path, size: str):
    """A real `size` tmpfs at `path` (needs mount rights: root in a container; skipped elsewhere)."""
    path.mkdir()
    if (
        sys.platform != "linux"
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
    ):
        pytest.skip("mounting a small tmpfs needs root (a CI container has it)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_free_space_is_measured_on_the_folder_or_its_nearest_parent(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    require_free_space(tmp_path / "not" / "yet", 1, "a note")
    with pytest.raises(StorageError, match=r"Not enough free space in .* to write a model: it needs about"):
        require_free_space(tmp_path / "not" / "yet", free + (1 << 30), "a model")


def test_saving_a_preset_to_a_full_disk_is_a_named_error_that_leaves_nothing(tmp_path):
    checkpoint = OFFICIAL / "conference_x2.pth"
    with _small_disk(tmp_path / "disk", "512k") as disk:  # less than any preset with its 1 MiB margin
        with pytest.raises(StorageError, match="the weights of preset"):
            save_to_preset(tiny_din(0), disk / "preset")
        assert list(disk.iterdir()) == []
        command = [sys.executable, "-m", "keras_din", "convert", str(checkpoint), str(disk / "converted")]
        completed = subprocess.run(command, capture_output=True, text=True)
        assert list(disk.iterdir()) == []
    assert completed.returncode == 2, completed.stderr
    # One line of ours; TensorFlow with oneDNN on (AVX-512 VNNI/BF16 CPUs) logs its own lines at import.
    ours = [line for line in completed.stderr.splitlines() if line.startswith("keras-din")]
    assert len(ours) == 1 and "Not enough free space" in ours[0] and "Traceback" not in completed.stderr
