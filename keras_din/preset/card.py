"""Model cards: the `README.md` of a preset on the Hub, rendered from its config and metadata.

The training paragraph is rendered from a `TrainingRecord`, the typed form of the
`"training"` entry of `metadata.json` that training writes (see `TrainingRecord`).
"""

from __future__ import annotations

import dataclasses

# The evaluation sets of the papers, as the Hub names them; none of them is used for training here.
_BENCHMARKS = {
    "Set5": "eugenesiow/Set5",
    "Set14": "eugenesiow/Set14",
    "B100": "eugenesiow/BSD100",
    "Urban100": "eugenesiow/Urban100",
}


@dataclasses.dataclass(frozen=True)
class TrainingRecord:
    """How a preset was trained: the `"training"` entry of its `metadata.json`.

    `tools/package_trained_preset.py` writes it from the run's `state.json` (`keras_din.train`);
    the model card is rendered from it.

    Attributes:
        command: the command that trained it (`keras-din train presets/x/train_config.json`).
        epochs_done, steps, patches_seen: how long it trained.
        data: the training image folders.
        degradation: what the inputs were degraded with (text), if anything.
        init_from: the preset it started from, if any.
        backend: the Keras backend it trained on.
        history: from which epoch on it ran in which precision (`keras_din.train.run_history`).
        learning_rates: the learning rate per stretch of epochs (`keras_din.train.lr_stretches`).

    Example:
    >>> record = TrainingRecord.from_metadata({"command": "keras-din train c.json", "epochs_done": 2,
    ...     "steps": 500, "patches_seen": 8000, "data": ["datasets/T91/HR"]})
    >>> record.data_names()
    ['T91']
    """

    command: str
    epochs_done: int
    steps: int
    patches_seen: int
    data: tuple[str, ...]
    degradation: str | None = None
    init_from: str | None = None
    backend: str | None = None
    history: tuple[dict, ...] = ()
    learning_rates: tuple[dict, ...] = ()

    @classmethod
    def from_metadata(cls, entry: dict) -> "TrainingRecord":
        """The record of a `metadata.json` `"training"` entry (unknown keys are ignored)."""
        known = {field.name for field in dataclasses.fields(cls)}
        values = {key: value for key, value in entry.items() if key in known}
        for key in ("data", "history", "learning_rates"):
            values[key] = tuple(values.get(key) or ())
        return cls(**values)

    def data_names(self) -> list[str]:
        """Training folders named by their data set (`../shared/datasets/T91/HR` -> `T91`), no local paths."""
        names = []
        for folder in self.data:
            parts = [part for part in str(folder).replace("\\", "/").split("/") if part not in ("", ".", "..")]
            parts = parts[:-1] if parts and parts[-1] == "HR" and len(parts) > 1 else parts
            names.append(parts[-1] if parts else str(folder))
        return names

    def sentence(self) -> str:
        """The card's training paragraph (without the SR-only note on Urban100)."""
        return (
            f"Trained with `{self.command}` for {self.epochs_done} epochs ({self.steps:,} "
            f"steps, {self.patches_seen:,} patches) on {' + '.join(self.data_names())}"
            + (f" ({self.degradation})" if self.degradation else "")
            + (f", starting from `{self.init_from}`" if self.init_from else "")
            + _run_text(self.backend, list(self.history), self.epochs_done)
            + "."
            + _learning_rate_text(list(self.learning_rates), self.epochs_done)
        )


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
    lines = _front_matter(version, restoration, results) + ["", f"# {name}", ""]
    lines += [metadata.get("description", f"A keras-din preset: DIN {version} x{scale}."), ""]
    lines += _weights_note(handle, available) + _use(name, handle, arguments, available)
    shown = {key: value for key, value in arguments.items() if key not in ("name", "trainable", "dtype")}
    lines += ["## Configuration", "", "| argument | value |", "|---|---|"]
    lines += [f"| `{key}` | `{value}` |" for key, value in shown.items()]
    if "parameter_count" in metadata:
        lines += ["", f"Parameters: {metadata['parameter_count']:,}."]
    if restoration:
        lines += ["", "## Results", ""] + (_restoration_results(results) if results else ["Not measured yet."])
    else:
        lines += ["", "## Results", ""] + _sr_results(results or [{"dataset": d, "scale": scale} for d in _BENCHMARKS])
    if "training" in metadata:
        record = TrainingRecord.from_metadata(metadata["training"])
        lines += ["", record.sentence() + ("" if restoration else " Urban100 here is the first 15 of its 100 images.")]
    return "\n".join(lines + _CITATION)


def _front_matter(version: str, restoration: bool, results: list[dict]) -> list[str]:
    """The card's YAML header: licence, library, task tags, evaluation sets, metrics."""
    tags = ["keras", "keras-din", "din"] + (["image-restoration"] if restoration or version == "enhanced" else [])
    tags += sorted({_TASK_TAGS[row["task"]] for row in results if "task" in row}) or (
        [] if restoration else ["super-resolution"]
    )
    lines = ["---", "license: apache-2.0", "library_name: keras", "pipeline_tag: image-to-image", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    if not restoration:
        lines += ["datasets:"] + [f"- {dataset}" for dataset in _BENCHMARKS.values()]
    return lines + ["metrics:", "- psnr", "- ssim", "---"]


def _weights_note(handle: str, available: bool) -> list[str]:
    if available:
        return [f'Trained weights are included; `DIN.from_preset("{handle}")` loads them.', ""]
    return [
        "**Weights: not available yet.** This preset describes the architecture only "
        '(`metadata.json`: `"weights_available": false`). `DIN.from_preset` builds it with fresh weights '
        "when given `load_weights=False`; for trained weights, convert a checkpoint trained with the "
        "authors' code: `keras-din convert CHECKPOINT OUT_DIR`.",
        "",
    ]


def _use(name: str, handle: str, arguments: dict, available: bool) -> list[str]:
    """The card's runnable example: load the preset, restore a random image."""
    load = f'"{handle}"' if available else f'"{name}", load_weights=False'  # unpublished: the registered name
    scale = arguments["scale"]
    return [
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
    ]


_CITATION = [
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


_TASK_TAGS = {"denoise": "denoising", "jpeg": "jpeg-artifact-removal"}


def _sr_results(results: list[dict]) -> list[str]:
    return ["Y-channel PSNR/SSIM, border = scale, BI degradation (MATLAB bicubic).", "", format_sr_table(results)]


def format_sr_table(rows: list[dict], digits: int = 2) -> str:
    """A Markdown table of super-resolution scores (`keras_din.evaluate.evaluate`'s rows, a card's results):
    Y-PSNR (`digits` decimals) / SSIM per dataset and scale, with bicubic's beside them where the rows carry
    it (`bicubic_psnr`, `bicubic_ssim`); "not measured yet" where a row lacks a score.

    Example:
    >>> row = {"dataset": "Set5", "scale": 4, "images": 5, "psnr": 28.420712, "ssim": 0.810369}
    >>> print(format_sr_table([row], digits=4).splitlines()[-1])
    | Set5 | x4 | 5 | 28.4207 | 0.8104 |
    """
    bicubic = any("bicubic_psnr" in row for row in rows)
    lines = ["| dataset | scale | images | PSNR (dB) | SSIM |" + (" bicubic PSNR / SSIM |" if bicubic else "")]
    lines += ["|---|---|---|---|---|" + ("---|" if bicubic else "")]
    for row in rows:
        psnr = f"{row['psnr']:.{digits}f}" if "psnr" in row else "not measured yet"
        ssim = f"{row['ssim']:.4f}" if "ssim" in row else "not measured yet"
        line = f"| {row['dataset']} | x{row['scale']} | {row.get('images', '')} | {psnr} | {ssim} |"
        if bicubic:
            line += f" {row['bicubic_psnr']:.{digits}f} / {row['bicubic_ssim']:.4f} |"
        lines.append(line)
    return "\n".join(lines)


def _restoration_results(results: list[dict]) -> list[str]:
    note = (
        "PSNR on every channel (SSIM averaged over channels), no border; the degraded input beside the output. "
        "Noise: N(0, σ/255) on the [0, 1] image from seed 0, not clipped; JPEG: Pillow at quality q"
        + ("; PSNR-B (Yim & Bovik) on greyscale." if _with_psnr_b(results) else ".")
    )
    if any(row.get("jpeg_constraint") for row in results):
        note += (
            " `keras-din restore` keeps this preset's output consistent with the JPEG file it came from (the"
            " JPEG constraint: luma DCT coefficients clipped into the file's quantisation cells, never further"
            " from the original than the network alone; `--jpeg-constraint off` turns it off): both are shown."
        )
    return [note, "", format_restoration_table(results)]


def _with_psnr_b(rows: list[dict]) -> bool:
    return any("input_psnr_b" in row or "psnr_b" in row for row in rows)


def format_restoration_table(rows: list[dict]) -> str:
    """A Markdown table of restoration scores (`keras_din.evaluate.evaluate_restoration`'s rows, a card's
    results): the degraded input's and the model's PSNR / SSIM, and PSNR-B where measured; "—" where a
    row lacks a score. Rows measured with the JPEG constraint (`network_psnr`, ...) show the network's
    own output beside the constrained one (what `keras-din restore` writes).

    Example:
    >>> row = {"dataset": "Kodak24", "task": "denoise", "level": 25, "images": 24, "input_psnr": 20.43,
    ...        "input_ssim": 0.3, "psnr": 31.06, "ssim": 0.8527}
    >>> print(format_restoration_table([row]).splitlines()[-1])
    | Kodak24 | denoise | 25 | 24 | 20.43 / 0.3000 | 31.06 / 0.8527 |
    """
    with_b = _with_psnr_b(rows)
    constrained = any("network_psnr" in row for row in rows)
    outputs = ("input_", "network_", "") if constrained else ("input_", "")
    names = {"input_": "input", "network_": "network alone", "": "with JPEG constraint" if constrained else "model"}
    columns = ["dataset", "task", "level", "images"] + [f"{names[p]} PSNR / SSIM" for p in outputs]
    columns += [f"{names[p]} PSNR-B" for p in outputs] if with_b else []

    def score(row, key, digits=2):
        return f"{row[key]:.{digits}f}" if row.get(key) is not None else "—"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [r["dataset"], r["task"], str(r["level"]), str(r["images"])]
        cells += [f"{score(r, p + 'psnr')} / {score(r, p + 'ssim', 4)}" for p in outputs]
        cells += [score(r, p + "psnr_b") for p in outputs] if with_b else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _epoch_ranges(segments: list[dict], epochs_done: int) -> list[tuple[int, int, dict]]:
    """(first, last, segment) for each stretch of a run that starts at its `from_epoch`."""
    ends = [segment["from_epoch"] - 1 for segment in segments[1:]] + [epochs_done]
    return [(segment["from_epoch"], end, segment) for segment, end in zip(segments, ends)]


def _learning_rate_text(stretches: list[dict], epochs_done: int) -> str:
    """The card's sentence on a run's schedule: ' Adam, learning rate 0.0005 for epochs 1–7, 0.00025 for 8–20.'

    A cosine stretch the run has not finished says where its cosine ends: a preset packaged mid-run.

    Example:
    >>> _learning_rate_text([{"from_epoch": 1, "learning_rate": 5e-4, "anneal": "cosine", "to_epoch": 120}], 68)
    ' Adam, learning rate 0.0005 on a half cosine that reaches 0 at epoch 120, for epochs 1–68 (training goes on).'
    """
    ranges = _epoch_ranges(stretches, epochs_done)
    if not ranges:
        return ""
    parts = []
    for i, (first, last, stretch) in enumerate(ranges):
        epochs = f"{'epochs ' if i == 0 else ''}{first}{f'–{last}' if last > first else ''}"
        if not stretch.get("anneal"):
            parts.append(f"{stretch['learning_rate']:g} for {epochs}")
        elif stretch.get("to_epoch", last) > last:
            end = stretch["to_epoch"]
            parts.append(
                f"{stretch['learning_rate']:g} on a half cosine that reaches 0 at epoch {end}, "
                f"for {epochs} (training goes on)"
            )
        else:
            parts.append(f"{stretch['learning_rate']:g} annealed to 0 by a half cosine for {epochs}")
    return " Adam, learning rate " + ", ".join(parts) + "."


def _run_text(backend: str | None, history: list[dict], epochs_done: int) -> str:
    """Where and how a run trained: ", on the torch backend, in float32", or per stretch where they differ
    (", epochs 1–22 on torch in float32 (AMD EPYC, 2 CPUs, AVX2) and 23–40 on tensorflow in ...").

    A stretch (`keras_din.train.run_history`) names its backend, precision and, when recorded, machine.
    """
    stretches = _epoch_ranges(history, epochs_done)
    backends = {segment.get("backend") or backend for _, _, segment in stretches} or {backend}
    one_backend = next(iter(backends)) if len(backends) == 1 else None
    text = f", on the {one_backend} backend" if one_backend else ""
    # the inputs' degradation levels, said per stretch only where a resumed run changed them
    levels_changed = len({levels_text(segment) for _, _, segment in stretches}) > 1

    def how(segment: dict) -> str:
        parts = [] if one_backend else [f"on {segment.get('backend') or backend}"]
        parts.append(f"in {segment.get('mixed_precision') or 'float32'}")
        if levels_changed and levels_text(segment):
            parts.append(f"at {levels_text(segment)}")
        if segment.get("ema"):
            parts.append(f"with an EMA of the weights at momentum {segment['ema']:g}")
        return " ".join(parts + ([f"({segment['machine']})"] if segment.get("machine") else []))

    described = [(first, last, how(segment)) for first, last, segment in stretches]
    if not described:
        return text
    if len({description for _, _, description in described}) == 1:
        return f"{text}, {described[0][2]}"
    return f"{text}, epochs " + " and ".join(f"{first}–{last} {description}" for first, last, description in described)


def levels_text(segment: dict) -> str:
    """The degradation levels of a run's stretch (`keras_din.train.run_history`); '' for SR.

    Example:
    >>> levels_text({"from_epoch": 1, "jpeg_quality": [10, 90]})
    'JPEG quality 10–90'
    >>> levels_text({"from_epoch": 1, "noise_sigma": 25})
    'noise σ 25'
    """

    def levels(value) -> str:
        return f"{value[0]}–{value[1]}" if isinstance(value, list) else str(value)

    names = {"jpeg_quality": "JPEG quality", "noise_sigma": "noise σ"}
    return ", ".join(f"{names[key]} {levels(segment[key])}" for key in names if segment.get(key) is not None)
