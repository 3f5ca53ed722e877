"""The Hugging Face Hub: `hf://owner/repo[@revision]` handles, downloading and uploading presets, model cards.

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

from keras_din.preset import (
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
CARD_FILE = "README.md"
_WEIGHTS_PATTERN = "*.weights.h5"
# The evaluation sets of the papers, as the Hub names them; none of them is used for training here.
_BENCHMARKS = {
    "Set5": "eugenesiow/Set5",
    "Set14": "eugenesiow/Set14",
    "B100": "eugenesiow/BSD100",
    "Urban100": "eugenesiow/Urban100",
}


def parse_handle(handle: str) -> tuple[str, str | None]:
    """Splits `hf://owner/repo[@revision]` into the repo id and the revision (`None`: the default branch).

    Example:
    >>> parse_handle("hf://keras-din/din_conference_x4@v1")
    ('keras-din/din_conference_x4', 'v1')
    """
    body = handle[len(HF_SCHEME):] if handle.startswith(HF_SCHEME) else ""
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
    try:
        folder = Path(
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
    except (HfHubHTTPError, OSError) as error:
        raise PresetError(f"{where}: the download failed: {error}") from error
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
    except HfHubHTTPError as error:
        raise PresetError(f"Uploading {str(folder)!r} to {handle} ({api.endpoint}) failed: {error}") from error
    return f"{HF_SCHEME}{repo_id}@{commit.oid}"


def model_card(name: str, handle: str, config: dict, metadata: dict) -> str:
    """The Hub model card (`README.md`) of a preset: YAML front matter, use, configuration, results.

    Args:
        name: the preset's name (the card's title).
        handle: where the preset is published, `hf://owner/repo`.
        config: its `config.json`.
        metadata: its `metadata.json`; `description`, `weights_available` and
            `results` (rows with `dataset`, `scale`, `psnr`, `ssim`) are used when present.

    Example:
    >>> card = model_card("din_tiny", "hf://me/din_tiny", {"config": {"version": "conference", "scale": 2}}, {})
    >>> card.splitlines()[:3]
    ['---', 'license: apache-2.0', 'library_name: keras']
    """
    arguments = config["config"]
    version, scale = arguments["version"], arguments["scale"]
    available = metadata.get("weights_available", bool(metadata.get("weights")))
    results = metadata.get("results") or []
    restoration = scale == 1
    tags = ["keras", "keras-din", "din"] + (["image-restoration"] if restoration or version == "enhanced" else [])
    tags += sorted({_TASK_TAGS[row["task"]] for row in results if "task" in row}) or ([] if restoration else ["super-resolution"])
    lines = ["---", "license: apache-2.0", "library_name: keras", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    if not restoration:
        lines += ["datasets:"] + [f"- {dataset}" for dataset in _BENCHMARKS.values()]
    lines += ["metrics:", "- psnr", "- ssim", "---", "", f"# {name}", ""]
    lines += [metadata.get("description", f"A keras-din preset: DIN {version} x{scale}."), ""]
    if available:
        lines += [f'Trained weights are included; `DIN.from_preset("{handle}")` loads them.', ""]
    else:
        lines += [
            "**Weights: not available yet.** This preset describes the architecture only "
            '(`metadata.json`: `"weights_available": false`). `DIN.from_preset` builds it with fresh weights '
            "when given `load_weights=False`; for trained weights, convert a checkpoint trained with the "
            "authors' code: `keras-din convert CHECKPOINT OUT_DIR`.",
            "",
        ]
    load = f'"{handle}"' if available else f'"{name}", load_weights=False'  # unpublished: the registered name
    lines += [
        "## Use",
        "",
        "```python",
        "import numpy as np",
        "import keras_din  # pip install keras-din; any Keras 3 backend",
        "",
        f"model = keras_din.DIN.from_preset({load})",
        f'out = model(np.random.rand(1, 48, 48, {arguments.get("in_channels", 3)}).astype("float32"))'
        f"  # images in [0, 1] -> (1, {48 * scale}, {48 * scale}, {arguments.get('out_channels', 3)})",
        "```",
        "",
        "## Configuration",
        "",
        "| argument | value |",
        "|---|---|",
    ]
    shown = {key: value for key, value in arguments.items() if key not in ("name", "trainable", "dtype")}
    lines += [f"| `{key}` | `{value}` |" for key, value in shown.items()]
    if "parameter_count" in metadata:
        lines += ["", f"Parameters: {metadata['parameter_count']:,}."]
    if restoration:
        lines += ["", "## Results", ""] + (_restoration_results(results) if results else ["Not measured yet."])
    else:
        lines += ["", "## Results", ""] + _sr_results(results or [{"dataset": d, "scale": scale} for d in _BENCHMARKS])
    if "training" in metadata:
        training = metadata["training"]
        lines += [
            "",
            f"Trained with `{training['command']}` for {training['epochs_done']} epochs ({training['steps']:,} "
            f"steps, {training['patches_seen']:,} patches) on {' + '.join(_data_names(training['data']))}"
            + (f" ({training['degradation']})" if training.get("degradation") else "")
            + (f", starting from `{training['init_from']}`" if training.get("init_from") else "")
            + (f", on the {training['backend']} backend" if training.get("backend") else "")
            + _precision_text(training.get("history", []), training["epochs_done"])
            + "."
            + _learning_rate_text(training.get("learning_rates", []), training["epochs_done"])
            + ("" if restoration else " Urban100 here is the first 15 of its 100 images."),
        ]
    lines += [
        "",
        "## Citation",
        "",
        "Feng Li, Runmin Cong, Huihui Bai, Yifan He. *Deep Interleaved Network for Single Image "
        "Super-Resolution with Asymmetric Co-Attention.* IJCAI 2020. "
        "[arXiv 2004.11814](https://arxiv.org/abs/2004.11814) (the conference version).",
        "",
        "Feng Li, Runmin Cong, Huihui Bai, Yifan He, Yao Zhao, Ce Zhu. *Learning Deep Interleaved Networks "
        "with Asymmetric Co-Attention for Image Restoration.* [arXiv 2010.15689](https://arxiv.org/abs/2010.15689) "
        "(the enhanced version).",
        "",
        "The authors' code: <https://github.com/lifengshiwo/DIN>. This port: keras-din (Apache-2.0).",
        "",
    ]
    return "\n".join(lines)


_TASK_TAGS = {"denoise": "denoising", "jpeg": "jpeg-artifact-removal"}


def _data_names(folders: list[str]) -> list[str]:
    """Training folders named by their data set (`../shared/datasets/T91/HR` -> `T91`), no local paths."""
    names = []
    for folder in folders:
        parts = [part for part in str(folder).replace("\\", "/").split("/") if part not in ("", ".", "..")]
        parts = parts[:-1] if parts and parts[-1] == "HR" and len(parts) > 1 else parts
        names.append(parts[-1] if parts else str(folder))
    return names


def _sr_results(results: list[dict]) -> list[str]:
    bicubic = any("bicubic_psnr" in row for row in results)
    lines = ["Y-channel PSNR/SSIM, border = scale, BI degradation (MATLAB bicubic).", ""]
    lines += ["| dataset | scale | images | PSNR (dB) | SSIM |" + (" bicubic PSNR / SSIM |" if bicubic else "")]
    lines += ["|---|---|---|---|---|" + ("---|" if bicubic else "")]
    for row in results:
        psnr = f"{row['psnr']:.2f}" if "psnr" in row else "not measured yet"
        ssim = f"{row['ssim']:.4f}" if "ssim" in row else "not measured yet"
        line = f"| {row['dataset']} | x{row['scale']} | {row.get('images', '')} | {psnr} | {ssim} |"
        if bicubic:
            line += f" {row['bicubic_psnr']:.2f} / {row['bicubic_ssim']:.4f} |"
        lines.append(line)
    return lines


def _restoration_results(results: list[dict]) -> list[str]:
    with_b = any("psnr_b" in row for row in results)
    lines = [
        "PSNR on every channel (SSIM averaged over channels), no border; the degraded input beside the output. "
        "Noise: N(0, σ/255) on the [0, 1] image from seed 0, not clipped; JPEG: Pillow at quality q"
        + ("; PSNR-B (Yim & Bovik) on greyscale." if with_b else "."),
        "",
        "| dataset | task | level | images | input PSNR | PSNR (dB) | SSIM |" + (" input PSNR-B | PSNR-B |" if with_b else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if with_b else ""),
    ]
    for row in results:
        line = (
            f"| {row['dataset']} | {row['task']} | {row['level']} | {row['images']} | {row['input_psnr']:.2f} | "
            f"{row['psnr']:.2f} | {row['ssim']:.4f} |"
        )
        if with_b:
            line += f" {row['input_psnr_b']:.2f} | {row['psnr_b']:.2f} |"
        lines.append(line)
    return lines


def _epoch_ranges(segments: list[dict], epochs_done: int, key: str) -> list[tuple[int, int, object]]:
    """(first, last, segment[key]) for each stretch of a run that starts at its `from_epoch`."""
    ends = [segment["from_epoch"] - 1 for segment in segments[1:]] + [epochs_done]
    return [(segment["from_epoch"], end, segment[key]) for segment, end in zip(segments, ends)]


def _learning_rate_text(stretches: list[dict], epochs_done: int) -> str:
    """The card's sentence on a run's schedule: ' Adam, learning rate 0.0005 for epochs 1–7, 0.00025 for 8–20.'"""
    ranges = _epoch_ranges(stretches, epochs_done, "learning_rate")
    if not ranges:
        return ""
    parts = [f"{rate:g} for {'epochs ' if i == 0 else ''}{first}–{last}" for i, (first, last, rate) in enumerate(ranges)]
    return " Adam, learning rate " + ", ".join(parts) + "."


def _precision_text(history: list[dict], epochs_done: int) -> str:
    """", in float32" or ", epochs 1–30 in float32 and 31–60 in mixed_bfloat16" from a run's history."""
    stretches = [
        (first, last, precision or "float32")
        for first, last, precision in _epoch_ranges(history, epochs_done, "mixed_precision")
    ]
    if not stretches:
        return ""
    if len({precision for _, _, precision in stretches}) == 1:
        return f", in {stretches[0][2]}"
    return ", epochs " + " and ".join(f"{first}–{last} in {precision}" for first, last, precision in stretches)
