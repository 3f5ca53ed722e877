"""Training recipes side by side: short runs from one checkpoint, one ingredient changed at a time.

    python benchmarks/training_recipes.py [--preset din_small_x2] [--epochs 8] [--recipes step,cosine,...]
                                          [--steps-per-epoch N] [--out benchmarks/results]

Every recipe resumes a copy of the preset's committed training run (weights and Adam state, as the
presets themselves are trained on), extended by `--epochs` epochs of the preset's own data section
under the recipe's solver, with `keras-din train` in a fresh process (the backend `KERAS_BACKEND`
names), and is scored by the run's validation (Set5 for the SR presets: Y-PSNR, border = scale)
after every epoch. (Starting from the weights alone with a fresh Adam state, `init_from`, the first
Adam steps move every weight by the full learning rate and an average of the weights keeps that
shock for its whole horizon: a comparison of schedules, not of fine-tuning, needs the Adam state.)
Same data, same seed, same steps, so the table compares the recipes at equal steps; the seconds
per step say whether they also cost the same time. Results:
`OUT/training_recipes-<preset>-<cpu kind>.{json,md}`; a later run of other recipes at the same
`--epochs` adds its rows to the file (a recipe run again replaces its row). Runs go to a temporary
folder, deleted afterwards: nothing of a preset changes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_din.train import committed_checkpoint

from _machine import describe_machine

REPO = Path(__file__).resolve().parents[1]

# Each recipe: what it changes in the preset's solver section, over a warm restart at 2.5e-4, from
# `BASELINE` (so that "step" is plain whatever the preset's own run used). Milestones are fractions of
# the run (halving after half and after three quarters of it).
BASELINE = {"lr_cosine": False, "ema": None, "loss": "l1"}
RECIPES = {
    "step": {"lr_milestones": [0.5, 0.75], "lr_values": [2.5e-4, 1.25e-4, 6.25e-5]},
    "step+ema": {"lr_milestones": [0.5, 0.75], "lr_values": [2.5e-4, 1.25e-4, 6.25e-5], "ema": 0.999},
    "cosine": {"lr_milestones": [], "lr_values": [2.5e-4], "lr_cosine": True},
    "cosine+ema": {"lr_milestones": [], "lr_values": [2.5e-4], "lr_cosine": True, "ema": 0.999},
    "cosine+ema+l2": {"lr_milestones": [], "lr_values": [2.5e-4], "lr_cosine": True, "ema": 0.999, "loss": "l2"},
}


def _config(preset: str, recipe: dict, epochs: int, out: Path, steps_per_epoch: int | None = None) -> tuple[dict, int]:
    """The preset's config extended by `epochs` under `recipe`, its run copied to `out` to resume there;
    and the epochs the run had done. `steps_per_epoch` shortens the epochs (a smoke run)."""
    config = json.loads((REPO / "presets" / preset / "train_config.json").read_text())
    run = REPO / config["output_dir"]
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    out.mkdir(parents=True)
    for path in (run / "state.json", run / "log.csv", committed_checkpoint(run)):
        shutil.copy2(path, out / path.name)
    solver = {
        **config["solver"],
        **BASELINE,
        **recipe,
        "epochs": done + epochs,
        "lr_milestones": [done] + [done + round(fraction * epochs) for fraction in recipe["lr_milestones"]],
        "lr_values": recipe["lr_values"][:1] + recipe["lr_values"],  # the first stretch is the run so far
    }
    data = {**config["data"], "train": [str(REPO / p) for p in config["data"]["train"]]}
    data["val"] = str(REPO / data["val"]) if data.get("val") else None
    if steps_per_epoch is not None:
        data["steps_per_epoch"] = steps_per_epoch
    return {**config, "data": data, "solver": solver, "init_from": None, "output_dir": str(out)}, done


def _run(config: dict, done: int, folder: Path) -> dict:
    path = folder / "config.json"
    path.write_text(json.dumps(config))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "keras_din", "train", str(path)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        return {"error": result.stderr[-2000:], "seconds": seconds}
    with open(Path(config["output_dir"]) / "log.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) >= done]
    steps = (config["solver"]["epochs"] - done) * config["data"]["steps_per_epoch"]
    return {
        "solver": config["solver"],
        "val_psnr": [float(r["val_psnr"]) for r in rows],
        "seconds": seconds,
        "seconds_per_step": seconds / steps,
    }


def _markdown(preset: str, start_psnr: float | None, results: dict, machine: dict, epochs: int) -> str:
    lines = [
        f"# Training recipes, {preset}: its training run resumed for {epochs} more epochs",
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} CPUs, {machine['cpu_kind']} "
        f"({', '.join(machine['cpu_vector_features'])}); backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}; "
        f"load average before: {machine['load_average_1_5_15'][0]:.2f}. "
        f"Validation PSNR before: {'n/a' if start_psnr is None else f'{start_psnr:.3f}'} dB.",
        "",
        "| recipe | val PSNR per epoch (dB) | last | best | s/step (whole process) |",
        "|---|---|---:|---:|---:|",
    ]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"| {name} | failed: see the JSON | | | |")
            continue
        curve = " ".join(f"{p:.3f}" for p in result["val_psnr"])
        last, best = result["val_psnr"][-1], max(result["val_psnr"])
        lines.append(f"| {name} | {curve} | {last:.3f} | {best:.3f} | {result['seconds_per_step']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="din_small_x2")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"comma-separated, of: {', '.join(RECIPES)}")
    parser.add_argument("--steps-per-epoch", type=int, help="shorter epochs than the preset's (a smoke run)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    names = args.recipes.split(",")
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; known: {sorted(RECIPES)}")
    machine = describe_machine()
    run = REPO / json.loads((REPO / "presets" / args.preset / "train_config.json").read_text())["output_dir"]
    last_logs = json.loads((run / "state.json").read_text()).get("last_logs", {})
    results = {}
    with tempfile.TemporaryDirectory(prefix="keras-din-recipes-") as temporary:
        for name in names:
            folder = Path(temporary) / name.replace("+", "_")
            folder.mkdir()
            print(f"{name} ...", flush=True)
            config, done = _config(args.preset, RECIPES[name], args.epochs, folder / "run", args.steps_per_epoch)
            results[name] = _run(config, done, folder)
            print(f"  {results[name].get('val_psnr', results[name].get('error'))}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"training_recipes-{args.preset}-{machine['cpu_kind']}"
    earlier = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").is_file() else {}
    if (earlier.get("epochs"), earlier.get("steps_per_epoch")) == (args.epochs, args.steps_per_epoch):
        # recipes measured before on this CPU kind, at the same length, stay in the table
        results = {**earlier["results"], **results}
    record = {
        "preset": args.preset,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "machine": machine,
        "recipes": RECIPES,
        "results": results,
    }
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
    stem.with_suffix(".md").write_text(_markdown(args.preset, last_logs.get("val_psnr"), results, machine, args.epochs))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
