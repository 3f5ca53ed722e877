"""A GPU burst: train a bundled preset's run for a few minutes on a lent accelerator, then go on on CPU.

    python -m tools.gpu_burst pack din_small_x2 [--wheels]   # here: build .burst/ (git-ignored)
    # on the device machine, carrying .burst (the `device` tool's `run`, carry [".burst"]):
    #     bash .burst/run.sh 8        # train 8 minutes in mixed bfloat16; results to $OUT
    python -m tools.gpu_burst unpack din_small_x2 FOLDER    # here: commit what came back (files_at)

`pack` writes `.burst/`: the training and validation images re-encoded as lossless WebP (the
same pixels in about 73 % of the PNG bytes; the device tool carries at most 64 MiB with the
working tree, so the images take what the tree leaves, training folders giving images in turn);
a copy of the training config that reads them and trains in `mixed_bfloat16`; and `run.sh`.
The run's committed checkpoint travels as a tracked file of the working tree. With `--wheels`
it also downloads Keras and the pure-Python pieces the device image lacks, as wheels for its
Python 3.12, which `run.sh` installs without a network.

`run.sh MINUTES` resumes the run there with `keras-din train --minutes MINUTES` and copies the
committed checkpoint, state and log to `$OUT` (each file well under the tool's 16 MiB). `unpack`
checks that what came back continues the local run (more epochs, its checkpoint present and
named by its state), then puts the checkpoint and log in place and commits by replacing
`state.json` last, as training itself does: the CPU run resumes from it with the usual command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from keras_din._io.atomic import write_text_atomic
from keras_din._io.images import list_images, load_image
from keras_din.train import STATE_FILE, committed_checkpoint, load_config

REPO = Path(__file__).resolve().parents[1]
# What the device tool carries at most: the working tree, this burst included (its README).
DEVICE_TREE_LIMIT = 64 << 20
# What the device image lacks for Keras (its list: the device tool's KINDS.md); all else is there.
WHEELS = ("keras==3.15.1", "namex", "optree")
_RUN_SH = """#!/usr/bin/env bash
# Resume the run for MINUTES minutes (mixed bfloat16), then copy it to $OUT. Made by tools/gpu_burst.py.
set -euo pipefail
burst=$(basename "$(cd "$(dirname "$0")" && pwd)")
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ls "$burst"/wheels/*.whl >/dev/null 2>&1 && ! "$PYTHON" -c "import keras" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/keras_din_site "$burst"/wheels/*.whl
    export PYTHONPATH=/tmp/keras_din_site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=${KERAS_BACKEND:-torch} PYTHONUNBUFFERED=1
"$PYTHON" -c "import keras; print('keras', keras.__version__, keras.backend.backend())"
"$PYTHON" -m keras_din train "$burst/config.json" --minutes "$1"
run=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['output_dir'])" "$burst/config.json")
checkpoint=$("$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['checkpoint'])" "$run/state.json")
cp "$run/$checkpoint" "$run/log.csv" "${OUT:?set OUT to the folder to copy the run to}/"
cp "$run/state.json" "$OUT/"
"""


def _config_and_run(config_path: Path, root: Path) -> tuple[dict, Path]:
    """A training config and its run folder (`output_dir`, relative to the checkout `root` it runs in)."""
    config = load_config(config_path)
    return config, root / config["output_dir"]


def _pack_images(sources: list[Path], destination: Path, budget: int) -> tuple[list[Path], int]:
    """Images of `sources` (one list per folder, taken in turn) as lossless WebP in `destination/<i>/`,
    each checked to decode to the same pixels, until `budget` bytes are used; the folders and bytes used."""
    used, folders = 0, [destination / str(i) for i in range(len(sources))]
    queue = [
        (folder, path) for group in itertools.zip_longest(*sources) for folder, path in zip(folders, group) if path
    ]
    for folder, path in queue:
        image = load_image(path, channels=None)
        target = folder / f"{path.stem}.webp"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target, format="WEBP", lossless=True, quality=25, method=2)
        with Image.open(target) as check:
            if not np.array_equal(np.asarray(check.convert("L" if image.ndim == 2 else "RGB")), image):
                raise SystemExit(f"{path}: lossless WebP did not keep its pixels; this image cannot be packed.")
        if used + target.stat().st_size > budget:
            target.unlink()
            break
        used += target.stat().st_size
    return [folder for folder in folders if folder.is_dir()], used


def _travelling_bytes(root: Path) -> int:
    """The size of what the device tool carries from `root` besides the burst: files git tracks or does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    return sum(
        (root / os.fsdecode(name)).stat().st_size for name in listed if name and (root / os.fsdecode(name)).is_file()
    )


def _bytes_in(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def pack(config_path: Path, burst: Path, wheels: bool = False, limit: int = DEVICE_TREE_LIMIT) -> Path:
    """Builds the burst folder `burst` (in the repository root it runs from) for a config's run.

    The images take what is left of `limit` (what the device tool carries) after the working tree
    and the wheels; when not all fit, the training folders give images in turn and the count is said.
    """
    root = burst.parent
    config, run = _config_and_run(config_path, root)
    if committed_checkpoint(run) is None:
        raise SystemExit(f"{run} holds no committed epoch: train on CPU first, a burst resumes a run.")
    shutil.rmtree(burst, ignore_errors=True)
    tree = _travelling_bytes(root)  # measured before the burst exists, which may not be git-ignored
    burst.mkdir()
    (burst / "run.sh").write_text(_RUN_SH)
    if wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
             "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
             "-d", str(burst / "wheels"), *WHEELS],
            check=True,
        )  # fmt: skip
    budget = limit - tree - _bytes_in(burst) - (1 << 20)  # 1 MiB for the config written below
    data = dict(config["data"])
    if data["val"]:
        (val,), used = _pack_images([list_images(root / data["val"])], burst / "val", budget)
        data["val"], budget = str(val.relative_to(root)), budget - used
    sources = [list_images(root / folder) for folder in data["train"]]
    folders, used = _pack_images(sources, burst / "train", budget)
    packed, total = sum(len(list(f.iterdir())) for f in folders), sum(map(len, sources))
    if packed == 0:
        raise SystemExit(f"No training image fits in the {budget / 2**20:.1f} MiB the device tool has left.")
    data["train"] = [str(folder.relative_to(root)) for folder in folders]
    solver = dict(config["solver"], mixed_precision="mixed_bfloat16")
    burst_config = dict(config, data=data, solver=solver, init_from=None)
    write_text_atomic(burst / "config.json", json.dumps(burst_config, indent=2) + "\n")
    print(
        f"{burst}: {packed} of {total} training images; with the working tree {(tree + _bytes_in(burst)) / 2**20:.1f} "
        f"MiB travel; on the device: bash {burst.name}/run.sh MINUTES (carry {burst.name!r})"
    )
    return burst


def unpack(config_path: Path, folder: Path, root: Path = REPO) -> Path:
    """Commits a burst's returned checkpoint, log and state into the config's run in the checkout `root`;
    returns the checkpoint."""
    config, run = _config_and_run(config_path, root)
    state = json.loads((folder / STATE_FILE).read_text())
    returned = folder / str(state.get("checkpoint"))
    if Path(str(state.get("checkpoint"))).name != state.get("checkpoint") or not returned.is_file():
        raise SystemExit(
            f"{folder / STATE_FILE} names checkpoint {state.get('checkpoint')!r}, which did not come back."
        )
    local = committed_checkpoint(run)
    done = json.loads((run / STATE_FILE).read_text())["epochs_done"] if local else 0
    if state["epochs_done"] <= done:
        raise SystemExit(f"The burst ended at epoch {state['epochs_done']}; {run} is already at epoch {done}.")
    shutil.copy2(returned, run / returned.name)
    shutil.copy2(folder / "log.csv", run / "log.csv")
    state["config"] = config  # the run's own config (its paths and precision), as the CPU resume reads it
    write_text_atomic(run / STATE_FILE, json.dumps(state, indent=2))  # the commit
    if local is not None and local != run / returned.name:
        local.unlink()
    print(f"{run}: epoch {done} -> {state['epochs_done']}; resume on CPU with keras-din train {config_path}")
    return run / returned.name


def _config_path(name: str) -> Path:
    """A bundled preset's training config, or a config file given by path."""
    path = REPO / "presets" / name / "train_config.json"
    return path if path.is_file() else Path(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="build .burst/ for a preset's run")
    packing.add_argument("name", help="a bundled preset (its presets/NAME/train_config.json) or a config file")
    packing.add_argument("--wheels", action="store_true", help="also download Keras wheels for the device")
    unpacking = commands.add_parser("unpack", help="commit what a burst brought back")
    unpacking.add_argument("name", help="a bundled preset (its presets/NAME/train_config.json) or a config file")
    unpacking.add_argument("folder")
    args = parser.parse_args(argv)
    if args.command == "pack":
        pack(_config_path(args.name), REPO / ".burst", args.wheels)
    else:
        unpack(_config_path(args.name), Path(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
