"""Turns a training run of a bundled preset into its shipped folder, evaluated.

    python -m tools.package_trained_preset din_small_x2 [--datasets Set5,Set14,B100,Urban100]

Reads `presets/<name>/train_config.json` and the checkpoint its run's `state.json`
commits to (in its `output_dir`), loads its network (`DIN.from_preset` of the checkpoint:
float32, the EMA weights, no optimizer state), checks that it is the registered architecture,
evaluates it with `keras_din.evaluate` (super-resolution: Y-PSNR/SSIM, BI, border = scale,
beside bicubic; same-size restoration: the task's sets and levels, beside the degraded
input), and writes `keras_din/presets/<name>/` (config, weights,
metadata with the training record and the results), redraws the run's `curve.png`, then
regenerates the model card with `tools.make_preset_folders`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras

from keras_din.evaluate import evaluate, evaluate_restoration
from keras_din.model import DIN
from keras_din.preset.card import format_restoration_table, format_sr_table, levels_text
from keras_din.preset.registry import PresetInfo, get_preset
from keras_din.train import STATE_FILE, committed_checkpoint, load_config, lr_stretches, plot_training_log, run_history
from tools import make_preset_folders

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a bundled preset, e.g. din_small_x2")
    parser.add_argument("--datasets", default=None, help="default: Set5,Set14,B100,Urban100 (SR); the task's sets")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets"))
    args = parser.parse_args(argv)

    info = get_preset(args.name)
    if not info.bundled:
        raise SystemExit(f"{info.name} is not a bundled preset; its weights are published on the Hub instead.")
    config_path = REPO / "presets" / info.name / "train_config.json"
    config = load_config(config_path)
    run = Path(config["output_dir"])
    run = run if run.is_absolute() else REPO / run
    checkpoint = committed_checkpoint(run)
    if checkpoint is None:
        raise SystemExit(f"{run} holds no finished epoch: train first (`keras-din train {config_path}`).")
    state = json.loads((run / STATE_FILE).read_text())
    model = trained_model(checkpoint, info)

    folder = make_preset_folders.PACKAGE_PRESETS / info.name
    steps = state["epochs_done"] * config["data"]["steps_per_epoch"]
    training = {
        "command": f"keras-din train presets/{info.name}/train_config.json",
        "config": f"presets/{info.name}/train_config.json",
        "data": config["data"]["train"],
        "epochs_done": state["epochs_done"],
        "steps": steps,
        "patches_seen": steps * config["data"]["batch_size"],
        "init_from": config["init_from"],
        # state.json records the training backend; runs older than that field get the packaging one.
        "backend": state.get("backend", keras.backend.backend()),
        "history": run_history(state),
        # the schedule as the config describes it now, which a resumed run follows
        "learning_rates": lr_stretches(config["solver"], state["epochs_done"]),
        "last_logs": state.get("last_logs", {}),
    }
    task = _task(config["data"], training["history"])
    if task is not None:
        training["degradation"] = task[1]
    plot_training_log(run / "log.csv", run / "curve.png", training["learning_rates"], config["solver"]["loss"].upper())
    model.save_to_preset(folder, metadata={"training": training})
    datasets = None if args.datasets is None else [d for d in args.datasets.split(",") if d]
    if task is not None:
        levels = _PACKAGED_LEVELS.get(task[0])
        # scored as `keras-din restore` runs the registered preset (its folder's path alone would not say
        # that a JPEG preset's output is kept consistent with its file)
        constraint = "on" if info.task == "jpeg" else "off"
        rows = evaluate_restoration(
            str(folder), task[0], levels, data_root=args.data, datasets=datasets, jpeg_constraint=constraint
        )
        print(format_restoration_table(rows))
    else:
        datasets = datasets or ["Set5", "Set14", "B100", "Urban100"]
        rows = evaluate(str(folder), args.data, datasets, [info.config["scale"]])
        bicubic = evaluate("bicubic", args.data, datasets, [info.config["scale"]])
        for row, base in zip(rows, bicubic):
            row["bicubic_psnr"], row["bicubic_ssim"] = base["psnr"], base["ssim"]
        print(format_sr_table(rows, digits=4))
    model.save_to_preset(folder, metadata={"training": training, "results": rows})
    return make_preset_folders.main([])


def trained_model(checkpoint: Path, info: PresetInfo) -> DIN:
    """The network of a run's `checkpoint` (float32, with its EMA weights when the run kept an average),
    named after the registered preset `info`, whose architecture it must have: a run whose config was
    edited away from the registry's would otherwise ship weights under a card that describes another net.

    Example:
    >>> run = Path("presets/din_base_x2/training")
    >>> trained_model(run / "checkpoint-0120.keras", get_preset("din_base_x2")).name  # doctest: +SKIP
    'din_base_x2'
    """
    model = DIN.from_preset(str(checkpoint), name=info.name)
    config = model.get_config()
    differ = {key: (config.get(key), value) for key, value in info.config.items() if config.get(key) != value}
    if differ:
        details = ", ".join(f"{key} {ours!r} (registry: {theirs!r})" for key, (ours, theirs) in differ.items())
        raise SystemExit(
            f"{checkpoint} is not {info.name}'s architecture: {details}. Train with the registry's "
            f"configuration (`presets/{info.name}/train_config.json`) or register the run's own."
        )
    return model


# Levels a same-size preset is scored at when packaged (default: the task's literature levels). A blind
# JPEG model must not make a good JPEG worse, so it is scored over the whole range it was trained on.
_PACKAGED_LEVELS = {"jpeg": tuple(range(10, 100, 10))}


def _task(data: dict, history: list[dict]) -> tuple[str, str] | None:
    """(evaluation task, how the training input was degraded) of a same-size run; None for SR.

    The levels are named here when every stretch of the run used the same; otherwise the card
    names them per stretch.
    """
    levels = {levels_text(segment) for segment in history}
    same = levels.pop() if len(levels) == 1 else None
    if data["jpeg_quality"] is not None:
        return "jpeg", "blind JPEG, Pillow " + (same.removeprefix("JPEG ") if same else "encoder")
    if data["noise_sigma"] is not None:
        return "denoise", "blind Gaussian noise" + (f", {same.removeprefix('noise ')}" if same else "") + " on 0–255"
    return None


if __name__ == "__main__":
    sys.exit(main())
