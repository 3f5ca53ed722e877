"""Training DIN like the papers: L1 loss, Adam 1e-4, step-halving schedule, resumable.

A run is described by a small JSON file, like the authors' option files:

    {
      "model": {"version": "conference", "scale": 2, "num_features": 16, "growth_rate": 8,
                "num_branches": 2, "num_blocks": 2},
      "data": {"train": ["../shared/datasets/T91/HR", "../shared/datasets/BSD200/HR"],
               "val": "../shared/datasets/Set5/HR", "degradation": "BI",
               "patch_size": 48, "batch_size": 16, "steps_per_epoch": 1000},
      "solver": {"epochs": 100, "learning_rate": 1e-4, "lr_milestones": [50, 75], "lr_gamma": 0.5},
      "output_dir": "runs/din_x2"
    }

Paths are relative to the working directory. After each epoch the run writes
`output_dir/checkpoint-NNNN.keras` (model and optimizer) and then `state.json` (the epoch count
and the checkpoint's name), which commits the two as one unit, plus `log.csv` and `curve.png`; it
resumes from them when started again, never losing or repeating an epoch: the weights and Adam
state come from the checkpoint, the solver (epochs, schedule, precision) from the config as it is
then. `state.json` keeps the run's `history`: from which epoch on it ran on which backend and in which precision.

The learning rate is `learning_rate`, multiplied by `lr_gamma` after each epoch in
`lr_milestones`; `lr_values` (one rate per stretch, `len(lr_milestones) + 1` of them) sets
each stretch's rate instead: `"lr_milestones": [20, 30], "lr_values": [5e-4, 5e-5, 2.5e-4]`
drops to 5e-5 after epoch 20 and restarts warm at 2.5e-4 after epoch 30 (a finished run can be
extended so, and resumes with it). `"lr_cosine": true` anneals the last stretch from its rate to 0
along a half cosine ending with epoch `epochs`; `"lr_cosine": 24` (0 or one of `lr_milestones`)
anneals every stretch after epoch 24 to 0 by its end, the next milestone or `epochs` (cosine
annealing with warm restarts, SGDR): a finished annealed run extended by one more milestone and
rate so keeps the schedule its epochs were trained with.

`"ema": 0.999` keeps an exponential moving average of the weights (Adam's `use_ema`): validation,
checkpoints and the returned model use the averaged weights, training goes on from the raw ones,
which the checkpoint keeps in the optimizer's state (a resumed run loses neither).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_din._io.atomic import atomic_path, require_free_space, write_text_atomic
from keras_din.data import SRPatchDataset
from keras_din.errors import ConfigError, KerasDinError
from keras_din.metrics import YPSNR
from keras_din.model import DIN
from keras_din.preset.format import PresetError, saved_size

DEFAULTS = {
    "model": {"version": "conference", "scale": 2},
    "data": {
        "train": [],
        "val": None,
        "lr_train": None,
        "degradation": "BI",
        "patch_size": 48,
        "batch_size": 16,
        "steps_per_epoch": 1000,
        "noise_sigma": None,
        "jpeg_quality": None,
        "val_noise_sigma": None,
        "val_jpeg_quality": None,
        "workers": 1,
        "seed": 0,
        "val_max_images": None,
    },
    "solver": {
        "epochs": 100,
        "learning_rate": 1e-4,
        "lr_milestones": [],
        "lr_gamma": 0.5,
        "lr_values": None,
        "lr_cosine": False,
        "loss": "l1",
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-8,
        "clip_norm": None,
        "ema": None,
        "mixed_precision": None,
        "distribution": None,
    },
    "init_from": None,
    "output_dir": "runs/din",
}


class EMAWithoutCheckpointWarning(UserWarning):
    """`solver.ema` set on a run with no checkpoint (random or `init_from` weights, a fresh Adam state)."""


class SlowPrecisionWarning(UserWarning):
    """`solver.mixed_precision` asks for bfloat16 on a CPU that has no bfloat16 units and would emulate it."""


class TrainingError(KerasDinError, RuntimeError):
    """Training stopped abnormally (e.g. a NaN loss); the message says where and what to do."""


def load_config(source: str | os.PathLike | dict) -> dict:
    """A training config (file path or dict) merged over the defaults, with unknown keys named.

    Example:
    >>> load_config({"model": {"scale": 3}, "data": {"train": "T91/HR"}})["model"]["scale"]
    3
    """
    if isinstance(source, dict):
        user = source
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"Training config {str(path)!r} does not exist.")
        try:
            user = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ConfigError(f"Training config {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(user, dict):
        raise ConfigError(
            f"A training config is a JSON object (sections model, data, solver, ...), got {type(user).__name__}."
        )
    config = copy.deepcopy(DEFAULTS)
    for key, value in user.items():
        if key not in config:
            raise ConfigError(f"Unknown training config key {key!r}; known: {sorted(config)}.")
        if isinstance(config[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"Training config section {key!r} must be an object, got {value!r}.")
            known = _MODEL_KEYS if key == "model" else set(config[key])
            unknown = set(value) - known
            if unknown:
                raise ConfigError(
                    f"Unknown keys in training config section {key!r}: {sorted(unknown)}; known: {sorted(known)}."
                )
            config[key].update(value)
        else:
            config[key] = value
    if isinstance(config["data"]["train"], str):
        config["data"]["train"] = [config["data"]["train"]]
    _check_types(config)
    _lr_values(config["solver"])
    return config


# The model section's keys: DIN's constructor arguments.
_MODEL_KEYS = {
    "version", "scale", "num_features", "growth_rate", "num_branches", "num_blocks",
    "in_channels", "out_channels", "attention_ratio", "data_format",
}  # fmt: skip


def _check_types(config: dict) -> None:
    """Refuses wrong types and out-of-range values by name, before anything is built or written."""
    data, solver = config["data"], config["solver"]
    train = data["train"]
    if not isinstance(train, list) or not train or not all(isinstance(f, str) for f in train):
        raise ConfigError(f"Training config: data.train must name one or more folders of HR images, got {train!r}.")
    for section, key in (("data", "patch_size"), ("data", "batch_size"), ("data", "steps_per_epoch"),
                         ("data", "workers"), ("solver", "epochs")):  # fmt: skip
        value = config[section][key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"Training config: {section}.{key} must be a positive integer, got {value!r}.")
    for key in ("learning_rate", "lr_gamma"):
        value = solver[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ConfigError(f"Training config: solver.{key} must be a positive number, got {value!r}.")
    milestones = solver["lr_milestones"]
    if not isinstance(milestones, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in milestones):
        raise ConfigError(
            f"Training config: solver.lr_milestones must be a list of epochs (integers), got {milestones!r}."
        )
    values = solver["lr_values"]
    if values is not None and (
        not isinstance(values, list) or not all(isinstance(v, (int, float)) and v > 0 for v in values)
    ):
        raise ConfigError(f"Training config: solver.lr_values must be a list of positive numbers, got {values!r}.")
    cosine = solver["lr_cosine"]
    if not isinstance(cosine, bool) and not (isinstance(cosine, int) and (cosine == 0 or cosine in milestones)):
        raise ConfigError(
            "Training config: solver.lr_cosine must be true, false or the epoch after which every stretch is "
            f"annealed (0 or one of lr_milestones {milestones}), got {cosine!r}."
        )
    ema = solver["ema"]
    if ema is not None and not (isinstance(ema, float) and 0 < ema < 1):
        raise ConfigError(
            f"Training config: solver.ema must be null or a momentum between 0 and 1 (e.g. 0.999), got {ema!r}."
        )
    if config["init_from"] is not None and not isinstance(config["init_from"], str):
        raise ConfigError(
            f"Training config: init_from must be a preset name, folder or file, got {config['init_from']!r}."
        )
    if not isinstance(config["output_dir"], str) or not config["output_dir"]:
        raise ConfigError(f"Training config: output_dir must be a folder path, got {config['output_dir']!r}.")


def _lr_values(solver: dict) -> list[float]:
    """The learning rate of each stretch between `lr_milestones`, checked against them."""
    epochs = [int(m) for m in solver["lr_milestones"]]
    if epochs != sorted(set(epochs)) or any(m < 1 for m in epochs):
        raise ConfigError(f"solver.lr_milestones must be increasing epochs >= 1, got {solver['lr_milestones']}.")
    values = solver["lr_values"]
    if values is None:
        return [float(solver["learning_rate"]) * solver["lr_gamma"] ** i for i in range(len(epochs) + 1)]
    if len(values) != len(epochs) + 1:
        raise ConfigError(
            f"solver.lr_values needs one learning rate per stretch: {len(epochs) + 1} for "
            f"{len(epochs)} lr_milestones, got {len(values)}."
        )
    return [float(v) for v in values]


def lr_stretches(solver: dict, epochs: int) -> list[dict]:
    """The learning rate of each stretch of epochs 1..`epochs` under `solver` (a loaded config's).

    Example:
    >>> solver = {"epochs": 4, "learning_rate": 1e-3, "lr_gamma": 0.5, "lr_milestones": [2], "lr_values": None}
    >>> lr_stretches(solver, 3)
    [{'from_epoch': 1, 'learning_rate': 0.001}, {'from_epoch': 3, 'learning_rate': 0.0005}]
    >>> lr_stretches(solver | {"lr_cosine": 0}, 3)[0]  # warm restarts, each stretch annealed to 0
    {'from_epoch': 1, 'learning_rate': 0.001, 'anneal': 'cosine', 'to_epoch': 2}
    """
    starts = [1] + [int(m) + 1 for m in solver["lr_milestones"]]
    ends = [start - 1 for start in starts[1:]] + [int(solver["epochs"])]
    first = _first_annealed(solver)
    return [
        {"from_epoch": start, "learning_rate": value}
        | ({"anneal": "cosine", "to_epoch": end} if index >= first else {})
        for index, (start, end, value) in enumerate(zip(starts, ends, _lr_values(solver)))
        if start <= epochs
    ]


def _first_annealed(solver: dict) -> int:
    """The index of the first stretch that `solver["lr_cosine"]` anneals (the number of stretches: none)."""
    cosine, milestones = solver.get("lr_cosine", False), [int(m) for m in solver["lr_milestones"]]
    if cosine is True:
        return len(milestones)
    if cosine is False:
        return len(milestones) + 1
    return 0 if cosine == 0 else milestones.index(cosine) + 1


def epoch_learning_rate(stretch: dict, epoch: int) -> float:
    """The learning rate in the middle of `epoch` (1-based) of one of `lr_stretches`' stretches.

    Example:
    >>> rate = epoch_learning_rate({"from_epoch": 1, "learning_rate": 1e-3, "anneal": "cosine", "to_epoch": 2}, 2)
    >>> round(rate, 7)  # 1e-3 * (1 + cos(0.75 pi)) / 2
    0.0001464
    """
    if stretch.get("anneal") != "cosine":
        return stretch["learning_rate"]
    rate = stretch["learning_rate"]  # the schedule itself, counted in epochs instead of steps
    annealed = CosineStretches([stretch["from_epoch"] - 1], [rate, rate], end_step=stretch["to_epoch"])
    return float(annealed(epoch - 0.5))


def _schedule(solver: dict, steps_per_epoch: int):
    values = _lr_values(solver)
    boundaries = [int(m) * steps_per_epoch for m in solver["lr_milestones"]]
    first = _first_annealed(solver)
    if first < len(values):
        return CosineStretches(boundaries, values, int(solver["epochs"]) * steps_per_epoch, first)
    if len(values) == 1:
        return values[0]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@keras.saving.register_keras_serializable(package="keras_din")
class CosineStretches(keras.optimizers.schedules.LearningRateSchedule):
    """Constant `values` between step `boundaries`; from stretch `first_annealed` on (default: the last
    stretch) each is annealed to 0 by a half cosine at its end, the next boundary or `end_step`.

    Example:
    >>> schedule = CosineStretches([10], [1e-3, 5e-4], end_step=20)
    >>> [round(float(schedule(step)), 6) for step in (0, 10, 15, 20, 30)]
    [0.001, 0.0005, 0.00025, 0.0, 0.0]
    >>> restarts = CosineStretches([10], [1e-3, 5e-4], end_step=20, first_annealed=0)
    >>> [round(float(restarts(step)), 6) for step in (0, 5, 10, 15, 20)]
    [0.001, 0.0005, 0.0005, 0.00025, 0.0]
    """

    def __init__(self, boundaries: list[int], values: list[float], end_step: int, first_annealed: int | None = None):
        self.boundaries, self.values, self.end_step = list(boundaries), list(values), int(end_step)
        self.first_annealed = len(self.boundaries) if first_annealed is None else int(first_annealed)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        starts = [0.0] + [float(b) for b in self.boundaries]
        ends = [float(b) for b in self.boundaries] + [float(self.end_step)]
        rate = None
        for index in reversed(range(len(self.values))):  # the last stretch also holds every step after it
            value, start, end = self.values[index], starts[index], ends[index]
            if index >= self.first_annealed:
                progress = keras.ops.clip((step - start) / max(end - start, 1.0), 0.0, 1.0)
                value = self.values[index] * 0.5 * (1.0 + keras.ops.cos(math.pi * progress))
            rate = value if rate is None else keras.ops.where(step < end, value, rate)
        return rate

    def get_config(self) -> dict:
        return {
            "boundaries": self.boundaries,
            "values": self.values,
            "end_step": self.end_step,
            "first_annealed": self.first_annealed,
        }


def _loss(name: str):
    losses = {"l1": keras.losses.MeanAbsoluteError(), "l2": keras.losses.MeanSquaredError()}
    if name not in losses:
        raise ConfigError(f"Unknown loss {name!r}: use one of {sorted(losses)}.")
    return losses[name]


def build_model(config: dict) -> DIN:
    """The DIN of `config["model"]`, initialised from `config["init_from"]` where given.

    Fine-tuning copies every layer whose name and weight shapes match (e.g. the whole
    body of an ×2 preset into an ×4 model, whose upsampler then starts fresh). A colour
    source initialises a greyscale model exactly: its first convolution's kernel is summed
    over the three input channels and its last convolution averaged over the three outputs,
    so the grey model computes the colour model's mean output on the grey image repeated.
    `init_from` is a preset (name, folder, `hf://`) or a `.keras` file (a training checkpoint).
    """
    solver = config["solver"]
    keras.utils.set_random_seed(int(config["data"]["seed"]))  # reproducible initial weights
    model = DIN(**config["model"], dtype=solver["mixed_precision"])
    if config["init_from"]:
        source = _init_source(str(config["init_from"]))
        fold = (source.in_channels, model.in_channels) == (3, 1)
        copied = 0
        for layer in model.layers:
            try:
                other = source.get_layer(layer.name)
            except ValueError:
                continue
            weights = [_fitted(w, tuple(v.shape), fold) for w, v in zip(other.get_weights(), layer.weights)]
            if weights and len(weights) == len(layer.weights) and all(w is not None for w in weights):
                layer.set_weights(weights)
                copied += 1
        if not copied:
            raise ConfigError(f"init_from {config['init_from']!r} shares no layer with this model's shapes.")
        print(f"Initialised {copied} of {len(model.layers)} layers from {config['init_from']}")
    return model


def _init_source(init_from: str) -> DIN:
    try:
        return DIN.from_preset(init_from)
    except PresetError as error:
        raise ConfigError(f"Training config: init_from {init_from!r} cannot be loaded: {error}") from None


def _fitted(weight: np.ndarray, shape: tuple, fold: bool) -> np.ndarray | None:
    """`weight` for a variable of `shape`: as it is, folded from colour to grey (`fold`), or `None`."""
    if weight.shape == shape:
        return weight
    if not fold:
        return None
    if (
        weight.ndim == 4
        and weight.shape[:2] + weight.shape[3:] == shape[:2] + shape[3:]
        and (weight.shape[2], shape[2]) == (3, 1)
    ):
        return weight.sum(axis=2, keepdims=True)  # the first convolution sees the grey value in each channel
    if weight.shape[:-1] == shape[:-1] and (weight.shape[-1], shape[-1]) == (3, 1):
        return weight.mean(axis=-1, keepdims=True)  # the last convolution (kernel or bias): the mean of R, G, B
    return None


def _finite(logs: dict) -> bool:
    return all(math.isfinite(float(v)) for v in logs.values() if isinstance(v, (int, float)))


STATE_FILE = "state.json"
# The checkpoint name of runs saved before state.json named its checkpoint.
_LEGACY_CHECKPOINT = "checkpoint.keras"


def committed_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint a run folder's `state.json` commits to, or `None` when the folder holds no finished epoch.

    Each epoch's checkpoint is written under a new name (`checkpoint-0007.keras`) and only then
    committed by replacing `state.json`, which names it: a crash between the two writes leaves
    the previous epoch's checkpoint and state, which match.

    Example:
    >>> committed_checkpoint("presets/din_small_x2/training").name  # doctest: +SKIP
    'checkpoint-0060.keras'
    """
    state_path = Path(folder) / STATE_FILE
    if not state_path.is_file():
        return None
    name = json.loads(state_path.read_text()).get("checkpoint", _LEGACY_CHECKPOINT)
    path = Path(folder) / name
    return path if path.is_file() and path.parent == Path(folder) else None


class _EpochCheckpoint(keras.callbacks.Callback):
    """Saves model + optimizer and the epoch count as one unit after every finite epoch.

    The checkpoint goes to a new file first; replacing `state.json` (which names that file and
    the epoch count) is the one step that commits both; older checkpoints are removed after it.
    """

    def __init__(self, folder: Path, extra_state: dict):
        super().__init__()
        self.folder = folder
        self.extra_state = extra_state

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if not _finite(logs):
            return  # never replace the last good checkpoint with a diverged one
        name = f"checkpoint-{epoch + 1:04d}.keras"
        variables = [*self.model.weights, *self.model.optimizer.variables]
        require_free_space(self.folder, saved_size(variables), f"the checkpoint {name}")
        with atomic_path(self.folder / name) as temporary, _averaged_weights(self.model):
            self.model.save(temporary)  # the averaged weights; the raw ones stay in the optimizer's state
        state = {
            **self.extra_state,
            "epochs_done": epoch + 1,
            "checkpoint": name,
            "last_logs": {k: float(v) for k, v in logs.items()},
        }
        write_text_atomic(self.folder / STATE_FILE, json.dumps(state, indent=2))
        _remove_stale_checkpoints(self.folder)


@contextlib.contextmanager
def _averaged_weights(model: DIN):
    """Inside the block `model` holds its optimizer's moving average of the weights (solver.ema).

    The two are swapped, not copied: inside, the optimizer's average slots hold the raw weights,
    so a model saved there keeps both. Without EMA it changes nothing.
    """
    pairs = _average_slots(model)
    for variable, average in pairs:
        _swap(variable, average)
    try:
        yield model
    finally:
        for variable, average in pairs:
            _swap(variable, average)


def _average_slots(model: DIN) -> list[tuple]:
    # Keras keeps the averages in a private list; its own SwapEMAWeights callback reads it the same way.
    optimizer = model.optimizer
    if optimizer is None or not optimizer.use_ema or not optimizer.built:
        return []
    return list(zip(model.trainable_variables, optimizer._model_variables_moving_average, strict=True))


def _swap(a, b) -> None:
    value = keras.ops.copy(a.value)
    a.assign(b.value)
    b.assign(value)


def _remove_stale_checkpoints(folder: Path) -> None:
    """Deletes the checkpoints of `folder` that its `state.json` does not commit to (older, or never committed)."""
    keep = committed_checkpoint(folder)
    for path in [*folder.glob("checkpoint-*.keras"), folder / _LEGACY_CHECKPOINT]:
        if path.is_file() and path != keep:
            path.unlink()


def _validation_level(fixed, blind):
    """The validation level of a same-size task: `fixed`, else the middle of the training range."""
    if fixed is not None or blind is None:
        return fixed
    low, high = (blind, blind) if isinstance(blind, (int, float)) else blind
    return (low + high) / 2


class _ValidationPSNR(keras.callbacks.Callback):
    """PSNR/SSIM on whole validation images at each epoch end (logged as val_psnr / val_ssim).

    Super-resolution on Y; same-size restoration (scale 1) on every channel, the input degraded at
    `val_noise_sigma` / `val_jpeg_quality` (by default the middle of the training ranges).
    """

    def __init__(self, data: dict, scale: int, channels: int):
        super().__init__()
        from keras_din.evaluate import load_pairs, restoration_pairs

        if scale == 1:
            noise = _validation_level(data["val_noise_sigma"], data["noise_sigma"])
            quality = _validation_level(data["val_jpeg_quality"], data["jpeg_quality"])
            pairs = restoration_pairs(data["val"], channels, noise, None if quality is None else round(quality))
        else:
            pairs = load_pairs(data["val"], scale, data["degradation"])
        self.pairs = pairs[: data["val_max_images"]]
        self.scale = scale

    def on_epoch_end(self, epoch, logs=None):
        from keras_din.evaluate import score_model

        if not _finite(logs or {}):
            return  # a diverged model has nothing to validate (TerminateOnNaN ends the run)
        with _averaged_weights(self.model):
            psnr, ssim = score_model(self.model, self.pairs, self.scale)
        if logs is not None:
            logs["val_psnr"], logs["val_ssim"] = psnr, ssim
        print(f" - val_psnr: {psnr:.3f} dB - val_ssim: {ssim:.4f}")


class _CurvePlot(keras.callbacks.Callback):
    """Redraws `curve.png` (training loss, validation PSNR, learning rate per epoch) from `log.csv`."""

    def __init__(self, csv_path: Path, png_path: Path, solver: dict):
        super().__init__()
        self.csv_path, self.png_path, self.solver = csv_path, png_path, solver

    def on_epoch_end(self, epoch, logs=None):
        stretches = lr_stretches(self.solver, epoch + 1)
        plot_training_log(self.csv_path, self.png_path, stretches, loss_name=self.solver["loss"].upper())


def plot_training_log(
    csv_path: str | os.PathLike,
    png_path: str | os.PathLike,
    learning_rates: list[dict] | None = None,
    loss_name: str = "L1",
) -> Path | None:
    """Plots loss (and val_psnr where logged) from a Keras CSV log; returns None without matplotlib.

    `learning_rates` (`lr_stretches` of the run) adds a panel with the learning rate per epoch.

    Example:
    >>> plot_training_log("presets/din_small_x3/training/log.csv", "/tmp/curve.png")  # doctest: +SKIP
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import csv

    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    if learning_rates:
        figure, (loss_axis, lr_axis) = plt.subplots(
            2, 1, figsize=(7, 5), dpi=100, sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        rates = [epoch_learning_rate([s for s in learning_rates if s["from_epoch"] <= e][-1], e) for e in epochs]
        lr_axis.step(epochs, rates, where="mid", color="tab:green")
        lr_axis.set_yscale("log")
        if not any(s.get("anneal") for s in learning_rates):  # a few constant rates: label each
            lr_axis.set_yticks(sorted(set(rates)), [f"{rate:g}" for rate in sorted(set(rates))], minor=False)
            lr_axis.set_yticks([], minor=True)
        lr_axis.set_ylabel("learning rate", color="tab:green")
        lr_axis.set_xlabel("epoch")
    else:
        figure, loss_axis = plt.subplots(figsize=(7, 4), dpi=100)
        loss_axis.set_xlabel("epoch")
    loss_axis.plot(epochs, [float(r["loss"]) for r in rows], color="tab:blue", label="training loss")
    loss_axis.set_ylabel(f"training {loss_name} loss", color="tab:blue")
    # CSVLogger writes "NA" for validation keys when there is no validation.
    measured = [(e, float(r["val_psnr"])) for e, r in zip(epochs, rows) if r.get("val_psnr", "NA") != "NA"]
    if measured:
        psnr_axis = loss_axis.twinx()
        psnr_axis.plot(*zip(*measured), color="tab:red", marker=".", label="val PSNR")
        psnr_axis.set_ylabel("validation Y-PSNR (dB)", color="tab:red")
    figure.tight_layout()
    try:
        with atomic_path(png_path) as temporary:
            figure.savefig(temporary, format="png")
    finally:
        plt.close(figure)
    return Path(png_path)


def train(
    config: str | os.PathLike | dict, resume: bool = True, verbose: int | str = "auto", minutes: float | None = None
) -> DIN:
    """Trains a DIN as `config` says; resumes from `output_dir` when a checkpoint is there.

    With `minutes`, the run stops after the last epoch that fits in that time (judged by the
    longest epoch so far; the first epoch always runs), committed as usual: running again
    resumes there. Returns the trained model. Raises `TrainingError` if the loss becomes NaN
    (the last good checkpoint is kept).

    Example:
    >>> model = train("presets/din_small_x2/train_config.json")  # doctest: +SKIP
    """
    config = load_config(config)
    if minutes is not None and not (isinstance(minutes, (int, float)) and 0 < minutes < math.inf):
        raise ConfigError(f"The time budget (--minutes) must be a positive number of minutes, got {minutes!r}.")
    solver = config["solver"]
    out = Path(config["output_dir"])
    write_text_atomic(out / "config.json", json.dumps(config, indent=2) + "\n")
    _set_distribution(solver["distribution"])
    _warn_if_slow_precision(solver["mixed_precision"], _cpu()[1], _accelerator())
    checkpoint = committed_checkpoint(out) if resume else None
    # A resumed run is rebuilt from today's config, so a longer schedule or a precision change applies;
    # its weights come from the checkpoint, not from init_from.
    model = _compiled_model({**config, "init_from": None} if checkpoint else config)
    if solver["ema"] is not None and checkpoint is None:
        warnings.warn(
            f"solver.ema = {solver['ema']} on a run with no checkpoint: the average starts at the "
            f"{'init_from' if config['init_from'] else 'random'} weights and keeps a fresh Adam's first full-rate "
            f"steps, so validation and checkpoints trail the raw weights by about {round(1 / (1 - solver['ema']))} "
            "steps (x2 runs so validated at 11.6 dB after an epoch from random weights, 33.72 dB after 250 steps "
            "from init_from). Train the first epochs with ema null, then set it and run again: a resumed run "
            "starts the average from the checkpoint's weights.",
            EMAWithoutCheckpointWarning,
            stacklevel=2,
        )
    initial_epoch, history = _resume(model, checkpoint, out) if checkpoint else (0, [])
    segment = _segment(initial_epoch + 1, keras.backend.backend(), solver, _machine(), config["data"])
    if not history or {**history[-1], "from_epoch": segment["from_epoch"]} != segment:
        history.append(segment)
    if initial_epoch >= solver["epochs"]:
        print(f"{out} already trained for {initial_epoch} epochs (solver.epochs = {solver['epochs']}).")
        model.optimizer.finalize_variable_values(model.trainable_variables)  # the averaged weights, as fit ends
        return model
    # shuffle=False: each batch is already random, and Keras would shuffle with Python's global RNG,
    # which a resumed run cannot reproduce.
    model.fit(
        _training_data(config, model, initial_epoch),
        epochs=solver["epochs"],
        initial_epoch=initial_epoch,
        callbacks=_callbacks(config, model, out, initial_epoch, history) + ([_TimeBudget(minutes)] if minutes else []),
        verbose=verbose,
        shuffle=False,
    )
    if model.stop_training and not _finite_history(model):
        raise TrainingError(
            f"The loss became NaN; training stopped. The last good checkpoint is {committed_checkpoint(out)}. "
            "Lower solver.learning_rate or set solver.clip_norm, then run again to resume."
        )
    return model


def _set_distribution(distribution: str | None) -> None:
    if distribution == "data_parallel":
        if keras.backend.backend() != "jax":
            raise ConfigError(
                "solver.distribution 'data_parallel' uses keras.distribution, which needs the JAX backend."
            )
        keras.distribution.set_distribution(keras.distribution.DataParallel())
    elif distribution is not None:
        raise ConfigError(f"Unknown solver.distribution {distribution!r}: use null or 'data_parallel'.")


def _compiled_model(config: dict) -> DIN:
    """The config's model, compiled with Adam on the config's schedule, its loss and Y-PSNR."""
    solver = config["solver"]
    model = build_model(config)
    optimizer = keras.optimizers.Adam(
        learning_rate=_schedule(solver, int(config["data"]["steps_per_epoch"])),
        beta_1=solver["beta_1"],
        beta_2=solver["beta_2"],
        epsilon=solver["epsilon"],
        global_clipnorm=solver["clip_norm"],
        **({"use_ema": True, "ema_momentum": solver["ema"]} if solver["ema"] is not None else {}),
    )
    model.compile(optimizer=optimizer, loss=_loss(solver["loss"]), metrics=[YPSNR(border=model.scale)])
    return model


def _resume(model: DIN, checkpoint: Path, out: Path) -> tuple[int, list[dict]]:
    """Loads the committed checkpoint into `model`; returns the epochs done and the run's history."""
    _restore(model, checkpoint)
    state = json.loads((out / STATE_FILE).read_text())
    _trim_log(out / "log.csv", state["epochs_done"])
    print(f"Resuming {checkpoint} after epoch {state['epochs_done']}")
    return state["epochs_done"], run_history(state)


def _training_data(config: dict, model: DIN, initial_epoch: int) -> SRPatchDataset:
    data = config["data"]
    dataset = SRPatchDataset(
        data["train"],
        scale=model.scale,
        patch_size=data["patch_size"],
        batch_size=data["batch_size"],
        steps_per_epoch=int(data["steps_per_epoch"]),
        degradation=data["degradation"],
        lr_dirs=data["lr_train"],
        noise_sigma=data["noise_sigma"],
        jpeg_quality=data["jpeg_quality"],
        seed=data["seed"],
        data_format=model.data_format,
        channels=model.in_channels,
        workers=data["workers"],
    )
    dataset.epoch = initial_epoch  # the patches a resumed run would have drawn
    return dataset


def _callbacks(config: dict, model: DIN, out: Path, initial_epoch: int, history: list[dict]) -> list:
    data, solver = config["data"], config["solver"]
    callbacks = [_ValidationPSNR(data, model.scale, model.in_channels)] if data["val"] else []
    return callbacks + [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(out / "log.csv"), append=initial_epoch > 0),
        _EpochCheckpoint(out, {"config": config, "backend": keras.backend.backend(), "history": history}),
        _CurvePlot(out / "log.csv", out / "curve.png", solver),
    ]


class _TimeBudget(keras.callbacks.Callback):
    """Stops a run, after its epoch is committed, when the next epoch would not end within `minutes`."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.start = time.monotonic()
        self.longest = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.longest = max(self.longest, now - self.epoch_start)
        if now - self.start + self.longest > self.seconds and epoch + 1 < self.params["epochs"]:
            self.model.stop_training = True
            print(
                f"\nTime budget of {self.seconds / 60:g} min: stopping after epoch {epoch + 1} "
                f"({(now - self.start) / 60:.1f} min, longest epoch {self.longest / 60:.1f} min); run again to resume."
            )


def _segment(
    from_epoch: int, backend: str | None, solver: dict, machine: str | None = None, data: dict | None = None
) -> dict:
    """One stretch of a run's `history`: the epochs from `from_epoch` on, how and (when known) where they
    ran, and the degradation levels of a same-size run's inputs (a resumed run may change them)."""
    segment = {"from_epoch": from_epoch, "backend": backend, "mixed_precision": solver["mixed_precision"]}
    if solver.get("ema") is not None:
        segment["ema"] = solver["ema"]
    segment.update(_degradation_levels(data or {}))
    return {**segment, "machine": machine} if machine else segment


def _degradation_levels(data: dict) -> dict:
    """The `noise_sigma` / `jpeg_quality` a config's data section sets (a level or a `[low, high]` range)."""
    return {key: data[key] for key in ("noise_sigma", "jpeg_quality") if data.get(key) is not None}


def _machine() -> str:
    """This machine as a model card names it: 'AMD EPYC, 2 CPUs, AVX-512 BF16', an accelerator first if used."""
    model, flags = _cpu()
    vector = next(
        (name for flag, name in _VECTOR_UNITS if flag in flags), "no AVX2" if flags else "unknown vector units"
    )
    description = f"{model}, {len(os.sched_getaffinity(0))} CPUs, {vector}"
    accelerator = _accelerator()
    return f"{accelerator} + {description}" if accelerator else description


def _cpu() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags, from Linux's /proc/cpuinfo (x86 names; none known elsewhere)."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return model, flags


def _warn_if_slow_precision(precision: str | None, flags: set[str], accelerator: str | None) -> None:
    """Warns when bfloat16 would run on a CPU that has no bfloat16 units and so emulates it, ~10x slower
    than float32 (flags unknown, e.g. off Linux or x86: no warning)."""
    if precision != "mixed_bfloat16" or accelerator or not flags or flags & {"avx512_bf16", "amx_bf16"}:
        return
    warnings.warn(
        "solver.mixed_precision = 'mixed_bfloat16' on a CPU without bfloat16 units (no avx512_bf16 or amx_bf16 "
        "in /proc/cpuinfo): each step emulates bfloat16, measured 19 s/step against 1.8 s/step in float32 for a "
        "24-feature x3 network on torch on a 2-core AVX2 EPYC. Set solver.mixed_precision to null here (a resumed "
        "run takes the config's precision; the checkpoint's weights are float32 either way).",
        SlowPrecisionWarning,
        stacklevel=3,
    )


# The CPU features that decide training speed, best first (bfloat16 matrix units, then vector width).
_VECTOR_UNITS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def _accelerator() -> str | None:
    """The GPU the backend trains on, if any. Backend-specific: Keras has no portable device query."""
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return None if device.platform == "cpu" else device.device_kind
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else None
    return None


def run_history(state: dict) -> list[dict]:
    """Which epochs of a run (its `state.json`) ran on which backend and in which precision.

    Each entry starts at `from_epoch` (1-based); states written before this record existed
    count as one stretch, as their config says, and stretches recorded before the degradation
    levels were get the config's.

    Example:
    >>> run_history({"epochs_done": 2, "config": {"solver": {"mixed_precision": None}, "data": {}}})
    [{'from_epoch': 1, 'backend': None, 'mixed_precision': None}]
    """
    config = state["config"]
    history = state.get("history") or [_segment(1, state.get("backend"), config["solver"])]
    levels = _degradation_levels(config.get("data", {}))
    return [{**segment, **{key: value for key, value in levels.items() if key not in segment}} for segment in history]


def _restore(model: DIN, checkpoint: Path) -> None:
    """Copies the weights and the Adam state (step count, moments) of `checkpoint` into `model`.

    A checkpoint written with EMA holds the averaged weights in the model and the raw ones in the
    optimizer's average slots (`_averaged_weights`); training resumes from the raw ones, and the
    average starts from the checkpoint's model weights (the average, or the weights themselves
    when the checkpoint had none).
    """
    # Checkpoints written before CosineStretches annealed more than the last stretch name it CosineLastStretch.
    saved = keras.saving.load_model(checkpoint, custom_objects={"keras_din>CosineLastStretch": CosineStretches})
    try:
        model.set_weights(saved.get_weights())
    except ValueError as error:
        raise ConfigError(
            f"{checkpoint} holds a different network than the config's model section ({error}). "
            "Restore the model section it was trained with, or pass --restart / use a new output_dir."
        ) from None
    model.optimizer.build(model.trainable_variables)

    def state(model):  # the learning rate comes from the config, not the checkpoint; the averages below
        averages = {id(average) for _, average in _average_slots(model)}
        return [
            v
            for v in model.optimizer.variables
            if v.path.rsplit("/", 1)[-1] != "learning_rate" and id(v) not in averages
        ]

    for target, source in zip(state(model), state(saved), strict=True):
        target.assign(source)
    for variable, average in _average_slots(model):
        average.assign(keras.ops.copy(variable.value))  # a copy: JAX refuses one buffer donated twice
    if kept := _average_slots(saved):  # an EMA checkpoint: training goes on from the raw weights it kept
        for variable, (_, raw) in zip(model.trainable_variables, kept, strict=True):
            variable.assign(raw.value)


def _trim_log(csv_path: Path, epochs_done: int) -> None:
    """Drops the rows of epochs after `epochs_done` (logged, but not committed before a crash) from a run's log."""
    if not csv_path.is_file():
        return
    lines = csv_path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epochs_done]
    if kept != lines:
        write_text_atomic(csv_path, "".join(kept))


def _finite_history(model) -> bool:
    history = getattr(model, "history", None)
    losses = history.history.get("loss", []) if history is not None else []
    return all(np.isfinite(losses))
