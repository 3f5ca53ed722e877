"""The Hugging Face Hub: `hf://owner/repo[@revision]` handles, downloading and uploading presets.

Downloads go through `huggingface_hub` and its cache (`HF_HUB_CACHE`), so a
preset downloaded once loads offline (`HF_HUB_OFFLINE=1`) afterwards. Only
`config.json`, `metadata.json` and `*.weights.h5` are fetched, and every weights
file is checked against the SHA-256 (and size) that `metadata.json` records: a
corrupted or truncated download is refused and removed from the cache, so the next
call downloads it again. What a repo's `metadata.json` names is checked first
(plain file names of the snapshot, links only into the repo's own `blobs/`), and
removal never reaches outside that repo's folder of the cache. The endpoint is
huggingface_hub's (`HF_ENDPOINT`).
"""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name

from keras_din.preset.card import model_card
from keras_din.preset.format import (
    CARD_FILE,
    CONFIG_FILE,
    MAX_TEXT_BYTES,
    METADATA_FILE,
    WEIGHTS_FILE,
    CorruptedFileError,
    PresetError,
    preset_file,
    read_preset_json,
    verify_weights,
)
from keras_din.version import __version__

HF_SCHEME = "hf://"
_WEIGHTS_PATTERN = "*.weights.h5"


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Splits `hf://owner/repo[@revision]` into the repo id and the revision (`None`: the default branch).

    Example:
    >>> parse_handle("hf://keras-din/din_conference_x4@v1")
    ('keras-din/din_conference_x4', 'v1')
    """
    body = handle[len(HF_SCHEME) :] if handle.startswith(HF_SCHEME) else ""
    repo_id, at, revision = body.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or (at and not revision):
        raise PresetError(
            f"{handle!r} is not a Hugging Face preset handle: write hf://owner/repo or hf://owner/repo@revision."
        )
    return repo_id, revision or None


def download_preset(handle: str, include_weights: bool = True, cache_dir: str | os.PathLike | None = None) -> Path:
    """Downloads the preset at `handle` into the huggingface_hub cache and returns its folder.

    Args:
        handle: `hf://owner/repo`, optionally `@revision` (branch, tag or commit).
        include_weights: `False` fetches only `config.json` and `metadata.json`.
        cache_dir: the huggingface_hub cache (default: `HF_HUB_CACHE`).

    Raises:
        PresetError: naming the repo (and file) for a missing repo, revision or
            file, a preset not cached while offline, or a corrupted weights file
            (which is then removed from the cache).

    Example:
    >>> folder = download_preset("hf://keras-din/din_conference_x4")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['config.json', 'metadata.json', 'model.weights.h5']
    """
    repo_id, revision = parse_handle(handle)
    patterns = [CONFIG_FILE, METADATA_FILE] + ([_WEIGHTS_PATTERN] if include_weights else [])
    where = f"{handle} ({hf_constants.ENDPOINT})"
    folder = _snapshot(handle, repo_id, revision, patterns, cache_dir, where)
    try:
        for name in (CONFIG_FILE, METADATA_FILE):
            if preset_file(folder, name) is None:
                raise PresetError(f"{where} has no {name}: is {repo_id!r} a keras-din preset repo?")
        if include_weights:
            verify_weights(folder, read_preset_json(folder, METADATA_FILE))
    except CorruptedFileError as error:
        repo_cache = Path(cache_dir if cache_dir is not None else hf_constants.HF_HUB_CACHE).expanduser()
        repo_cache = repo_cache / repo_folder_name(repo_id=repo_id, repo_type="model")
        if _evict_from_cache(error.path, repo_cache):
            outcome = "It was removed from the Hugging Face cache: the next call downloads it again."
        else:
            outcome = f"Delete {str(error.path)!r} and download it again."
        corrupted = f"{where}: the downloaded {error.path.name} is corrupted ({error.detail})."
        raise PresetError(f"{corrupted} {outcome}") from error
    except PresetError as error:
        if str(error).startswith(where):
            raise
        raise PresetError(f"{where}: {error}") from error
    return folder


def _snapshot(handle: str, repo_id: str, revision: str | None, patterns: list[str], cache_dir, where: str) -> Path:
    """huggingface_hub's `snapshot_download` of `patterns`, its failures as `PresetError`s naming the repo."""
    try:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=patterns,
                cache_dir=cache_dir,
                library_name="keras-din",
                library_version=__version__,
            )
        )
    except RepositoryNotFoundError as error:
        raise PresetError(
            f"{where}: the Hugging Face repo {repo_id!r} does not exist, or is private or gated "
            "(log in with `hf auth login` if you have access)."
        ) from error
    except RevisionNotFoundError as error:
        raise PresetError(f"{where}: the repo {repo_id!r} has no revision {revision!r}.") from error
    except LocalEntryNotFoundError as error:
        raise PresetError(
            f"{handle} is not in the Hugging Face cache, and the Hub could not be reached or HF_HUB_OFFLINE is "
            "set: download it once online (unset HF_HUB_OFFLINE) and it loads offline afterwards."
        ) from error
    except EntryNotFoundError as error:
        raise PresetError(f"{where}: a file the repo lists could not be downloaded: {error}") from error
    except (HfHubHTTPError, OSError, ValueError) as error:  # ValueError: huggingface_hub's HFValidationError
        raise PresetError(f"{where}: the download failed: {error}") from error


def _evict_from_cache(snapshot_file: Path, repo_cache: Path) -> bool:
    """Removes a cached file so huggingface_hub refetches it: its snapshot entry and the blob it links to.

    Only `repo_cache/snapshots/<commit>/<name>` and a blob directly in
    `repo_cache/blobs` are ever deleted: a path or link leading anywhere else is
    left alone (and `False` returned), whatever the repo's files say.
    """
    repo_cache = repo_cache.resolve()
    name = snapshot_file.name
    entry = snapshot_file.parent.resolve() / name  # the folder resolved, the entry itself not followed
    if name in ("", ".", "..") or entry.parent.parent != repo_cache / "snapshots":
        return False
    if entry.is_symlink():
        blob = entry.resolve()
        entry.unlink()
        if blob.parent == repo_cache / "blobs" and blob.is_file():
            blob.unlink()
        return True
    if entry.is_file():
        entry.unlink()
        return True
    return False


def upload_preset(
    handle: str,
    folder: str | os.PathLike,
    token: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> str:
    """Publishes a preset folder to the Hugging Face Hub and returns its handle pinned to the new commit.

    Creates the repo when it does not exist, then commits `config.json`,
    `metadata.json`, the weights files and the model card (the folder's
    `README.md`, or one written from its config and metadata). A folder whose
    weights are missing or do not match `metadata.json` is refused before
    anything is sent, and so is one whose `metadata.json` names anything but a
    regular file of the folder itself (an absolute path, `..`, a link leading out).

    Args:
        handle: `hf://owner/repo` (the default branch; no `@revision`).
        folder: a preset folder with weights (`DIN.save_to_preset`).
        token: a Hub token with write access (default: huggingface_hub's login).
        private: create the repo private (only used when it is created).
        commit_message: the commit's title.

    Example:
    >>> import keras_din
    >>> model = keras_din.DIN(scale=2, num_features=8, growth_rate=2, num_branches=2, num_blocks=1)
    >>> folder = model.save_to_preset("/tmp/din_tiny_preset")
    >>> keras_din.upload_preset("hf://me/din_tiny", folder)  # doctest: +SKIP
    'hf://me/din_tiny@5f1c...'
    """
    repo_id, revision = parse_handle(handle)
    if revision is not None:
        raise PresetError(f"{handle}: uploads go to the default branch; write hf://{repo_id} without @{revision}.")
    folder = Path(folder)
    config = read_preset_json(folder, CONFIG_FILE)
    metadata = read_preset_json(folder, METADATA_FILE)
    verify_weights(folder, metadata)  # also: every file it names is a regular file inside the folder
    card_path = preset_file(folder, CARD_FILE)
    if card_path is not None and card_path.stat().st_size <= MAX_TEXT_BYTES:
        card = card_path.read_bytes()
    elif card_path is not None:
        raise PresetError(f"{str(card_path)!r} is larger than {MAX_TEXT_BYTES:,} bytes: not a model card to upload.")
    else:
        card = model_card(repo_id.split("/")[1], handle, config, metadata).encode()
    names = dict.fromkeys([CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, *metadata.get("weights", {})])
    names.pop(CARD_FILE, None)  # the model card is added once, below
    operations = [huggingface_hub.CommitOperationAdd(name, str(preset_file(folder, name))) for name in names]
    operations.append(huggingface_hub.CommitOperationAdd(CARD_FILE, card))
    api = huggingface_hub.HfApi(token=token, library_name="keras-din", library_version=__version__)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(
            repo_id, operations, commit_message=commit_message or f"Upload keras-din preset {folder.name}"
        )
    except Exception as error:  # noqa: BLE001 - HTTP, connection (httpx), offline-mode and validation errors
        # differ between huggingface_hub versions and transports: each is named, never a bare traceback.
        failure = f"{type(error).__name__}: {error}"
        raise PresetError(f"Uploading {str(folder)!r} to {handle} ({api.endpoint}) failed ({failure}).") from error
    return f"{HF_SCHEME}{repo_id}@{commit.oid}"
