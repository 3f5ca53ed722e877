"""Network sizes side by side at equal training time: which width and depth learn most per CPU-hour.

    python benchmarks/model_sizes.py [--preset din_small_x2] [--minutes 20]
                                     [--sizes 16/8/2/2,24/12/2/2,32/16/2/2] [--probe-steps 20]
                                     [--steps-per-epoch N] [--out benchmarks/results]

Each size (`num_features/growth_rate/num_branches/num_blocks`) is trained from scratch with
`keras-din train` on the preset's own data and validation (Set5 for the SR presets), in a fresh
process with the backend `KERAS_BACKEND` names, for about `--minutes` of wall time:

1. a probe run of two epochs of `--probe-steps` steps each, without validation, gives the size's
   seconds per step: Keras' own step time of the second epoch (start-up and compiling excluded);
2. the run gets as many whole epochs as fit in `--minutes` at that rate (at least one), the
   preset's learning rate annealed to 0 along a half cosine over them (so every size ends its
   schedule, whatever its speed), and the preset's precision and EMA.

A size that is slower per step gets fewer steps: the table compares sizes at equal time, not at
equal steps (which would flatter the big ones). Results, written after each size:
`OUT/model_sizes-<preset>-<cpu kind>-<backend>.{json,md}`; a later run of other sizes with the same
`--minutes` and steps per epoch adds its rows (a size run again replaces its row), another setting
replaces the file. Runs go to a temporary folder, deleted afterwards: nothing of a preset changes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from keras_din.architecture import checked_parameter_count

from _machine import describe_machine

REPO = Path(__file__).resolve().parents[1]
SIZE_KEYS = ("num_features", "growth_rate", "num_branches", "num_blocks")


def _parse_sizes(text: str) -> list[dict]:
    """`16/8/2/2,32/16/2/2` -> [{"num_features": 16, "growth_rate": 8, ...}, ...]."""
    sizes = []
    for item in text.split(","):
        numbers = item.split("/")
        if len(numbers) != len(SIZE_KEYS) or not all(n.isdigit() and int(n) > 0 for n in numbers):
            raise ValueError(f"size {item!r}: give four positive integers, num_features/growth_rate/branches/blocks")
        sizes.append(dict(zip(SIZE_KEYS, map(int, numbers))))
    return sizes


def _name(size: dict) -> str:
    return "/".join(str(size[key]) for key in SIZE_KEYS)


def _base_config(preset: str) -> dict:
    config = json.loads((REPO / "presets" / preset / "train_config.json").read_text())
    data = {**config["data"], "train": [str(REPO / p) for p in config["data"]["train"]]}
    data["val"] = str(REPO / data["val"]) if data.get("val") else None
    return {**config, "data": data, "init_from": None}


BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")  # Keras' default when it is unset
_STEP_TIME = re.compile(r"(\d+(?:\.\d+)?)(s|ms|us)/step")


def _train(config: dict, folder: Path) -> tuple[float, str]:
    """Runs `keras-din train` on `config` (its run in `folder/checkpoints`): the whole process's seconds and
    its output."""
    folder.mkdir(parents=True)
    path = folder / "config.json"
    path.write_text(json.dumps({**config, "output_dir": str(folder / "checkpoints")}))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "keras_din", "train", str(path)], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"keras-din train {path} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def _last_step_time(output: str) -> float:
    """The last step time Keras' progress bar printed ("380ms/step"), in seconds."""
    found = _STEP_TIME.findall(output)
    if not found:
        raise RuntimeError(f"no step time in the probe's output:\n{output[-2000:]}")
    value, unit = found[-1]
    return float(value) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}[unit]


def _measure(base: dict, size: dict, minutes: float, probe_steps: int, folder: Path) -> dict:
    model = {**base["model"], **size}
    solver = {key: value for key, value in base["solver"].items() if key not in ("lr_milestones", "lr_values")}
    data = {**base["data"], "steps_per_epoch": probe_steps, "val": None}
    probe = {**base, "model": model, "data": data, "solver": {**solver, "epochs": 2, "lr_cosine": False}}
    seconds_per_step = _last_step_time(_train(probe, folder / "probe")[1])
    steps_per_epoch = base["data"]["steps_per_epoch"]
    epochs = max(1, math.floor(minutes * 60 / (seconds_per_step * steps_per_epoch)))
    solver = {**solver, "epochs": epochs, "lr_milestones": [], "lr_values": None, "lr_cosine": True}
    seconds = _train({**base, "model": model, "solver": solver}, folder / "run")[0]
    with open(folder / "run" / "checkpoints" / "log.csv", newline="") as handle:
        curve = [float(row["val_psnr"]) for row in csv.DictReader(handle)]
    return {
        "size": size,
        "parameters": checked_parameter_count(**{"in_channels": 3, "out_channels": 3, **model}),
        "seconds_per_step": round(seconds_per_step, 4),
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "seconds": round(seconds, 1),
        "val_psnr": curve,
    }


def _markdown(preset: str, minutes: float, results: dict, machine: dict) -> str:
    lines = [
        f"# Network sizes, {preset}'s data: each trained from scratch for about {minutes:g} minutes",
        "",
        f"Machine: {machine['cpu_model']}, {machine['usable_cpus']} CPUs, {machine['cpu_kind']} "
        f"({', '.join(machine['cpu_vector_features'])}); backend {BACKEND}; "
        f"load average before: {machine['load_average_1_5_15'][0]:.2f}.",
        "",
        "| size (features/growth/branches/blocks) | parameters | s/step | epochs (steps) | wall s "
        "| val PSNR per epoch (dB) | last |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in results.items():
        curve = " ".join(f"{p:.2f}" for p in r["val_psnr"])
        lines.append(
            f"| {name} | {r['parameters']:,} | {r['seconds_per_step']:.3f} | {r['epochs']} ({r['steps']:,}) "
            f"| {r['seconds']:.0f} | {curve} | {r['val_psnr'][-1]:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="din_small_x2")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--sizes", default="16/8/2/2,24/12/2/2,32/16/2/2")
    parser.add_argument("--probe-steps", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, help="instead of the preset's (a smoke run uses a few)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    try:
        sizes = _parse_sizes(args.sizes)
    except ValueError as error:
        parser.error(str(error))
    if not (REPO / "presets" / args.preset / "train_config.json").is_file():
        parser.error(f"presets/{args.preset}/train_config.json does not exist: name a trained preset")
    base, machine = _base_config(args.preset), describe_machine()
    if args.steps_per_epoch:
        base["data"]["steps_per_epoch"] = args.steps_per_epoch
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"model_sizes-{args.preset}-{machine['cpu_kind']}-{BACKEND}"
    setting = {"preset": args.preset, "minutes": args.minutes, "steps_per_epoch": base["data"]["steps_per_epoch"]}
    earlier = json.loads(stem.with_suffix(".json").read_text()) if stem.with_suffix(".json").is_file() else {}
    # Sizes measured before in the same setting, on this CPU kind and backend, stay in the table.
    results = earlier.get("results", {}) if all(earlier.get(k) == v for k, v in setting.items()) else {}
    with tempfile.TemporaryDirectory(prefix="keras-din-sizes-") as temporary:
        for index, size in enumerate(sizes):
            print(f"{_name(size)} ...", flush=True)
            results[_name(size)] = _measure(base, size, args.minutes, args.probe_steps, Path(temporary) / str(index))
            print(f"  {results[_name(size)]}", flush=True)
            record = {**setting, "backend": BACKEND, "machine": machine, "results": results}
            stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
            stem.with_suffix(".md").write_text(_markdown(args.preset, args.minutes, results, machine))
    print(stem.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
