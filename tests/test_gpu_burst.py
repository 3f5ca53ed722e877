"""The GPU burst path, run on CPU: pack a run, train it through `run.sh` under a time budget in mixed
bfloat16 (as on a lent accelerator), bring the files back, commit them, and resume on CPU."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_din.train import train
from tools import gpu_burst

from conftest import DATASETS

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "torch",
    reason="the burst trains with torch (the device image's framework) in a subprocess: the torch pass tests it",
)


def _config(root, epochs):
    config = {
        "model": {"version": "conference", "scale": 2, "num_features": 8, "growth_rate": 4, "num_branches": 2,
                  "num_blocks": 1},
        "data": {"train": [str(DATASETS / "Set5" / "HR")], "val": str(DATASETS / "Set5" / "HR"),
                 "val_max_images": 1, "patch_size": 12, "batch_size": 4, "steps_per_epoch": 4},
        "solver": {"epochs": epochs, "learning_rate": 1e-3},
        "output_dir": "run",  # in the checkout, as presets/<name>/training is
    }  # fmt: skip
    path = root / "train_config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A git checkout holding a tiny run one CPU epoch in (training runs from the checkout's root)."""
    root = tmp_path / "checkout"
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    monkeypatch.chdir(root)
    train(_config(root, epochs=1), verbose=0)
    return root


def test_a_burst_trains_under_its_budget_comes_back_and_resumes_on_cpu(checkout, tmp_path):
    config = _config(checkout, epochs=10_000)
    burst = gpu_burst.pack(config, checkout / ".burst")
    for png in sorted((DATASETS / "Set5" / "HR").glob("*.png")):  # the packed images are the same pixels
        with Image.open(png) as a, Image.open(burst / "train" / "0" / f"{png.stem}.webp") as b:
            np.testing.assert_array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))
    burst_config = json.loads((burst / "config.json").read_text())
    assert burst_config["solver"]["mixed_precision"] == "mixed_bfloat16"
    assert burst_config["data"]["train"] == [".burst/train/0"] and burst_config["data"]["val"] == ".burst/val/0"

    device = Path(shutil.copytree(checkout, tmp_path / "device"))  # what the device tool carries and runs in
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "KERAS_BACKEND": "torch"}
    completed = subprocess.run(
        ["bash", str(device / ".burst" / "run.sh"), "0.1"], env=env, capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "Time budget of 0.1 min: stopping after epoch" in completed.stdout
    returned = json.loads((out / "state.json").read_text())
    assert 1 < returned["epochs_done"] < 10_000
    assert sorted(p.name for p in out.iterdir()) == sorted([returned["checkpoint"], "log.csv", "state.json"])
    assert all(p.stat().st_size < 16 << 20 for p in out.iterdir())  # the device tool's per-file limit

    gpu_burst.unpack(config, out, checkout)
    run = checkout / "run"
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == returned["epochs_done"]
    assert [s["mixed_precision"] for s in state["history"]] == [None, "mixed_bfloat16"]
    assert state["config"]["data"]["train"] == [str(DATASETS / "Set5" / "HR")]  # the CPU run's own config again
    assert sorted(p.name for p in run.glob("checkpoint-*")) == [returned["checkpoint"]]
    with pytest.raises(SystemExit, match="already at epoch"):  # the same files twice: nothing to commit
        gpu_burst.unpack(config, out, checkout)

    done = returned["epochs_done"]
    resumed = train(_config(checkout, epochs=done + 1), verbose=0)  # on CPU in float32, as usual
    assert int(resumed.optimizer.iterations.numpy()) == (done + 1) * 4
    history = json.loads((run / "state.json").read_text())["history"]
    assert [s["mixed_precision"] for s in history] == [None, "mixed_bfloat16", None]


def test_unpack_refuses_a_state_naming_a_file_that_did_not_come_back(checkout, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "state.json").write_text(json.dumps({"epochs_done": 5, "checkpoint": "../../secret.keras"}))
    with pytest.raises(SystemExit, match="did not come back"):
        gpu_burst.unpack(checkout / "train_config.json", out, checkout)


def test_pack_fills_what_the_device_tool_carries_and_says_how_many_images_fit(checkout, capsys):
    config = checkout / "train_config.json"
    settings = json.loads(config.read_text())
    settings["data"]["val"] = None  # the training images alone share the space
    config.write_text(json.dumps(settings))
    tree = sum(p.stat().st_size for p in checkout.rglob("*") if p.is_file() and ".git" not in p.parts)
    half = sum(p.stat().st_size for p in (DATASETS / "Set5" / "HR").iterdir()) // 2
    burst = gpu_burst.pack(config, checkout / ".burst", limit=tree + (1 << 20) + half)  # val + part of the train set
    packed = len(list((burst / "train" / "0").iterdir()))
    assert 0 < packed < 5 and f"{packed} of 5 training images" in capsys.readouterr().out
    assert sum(p.stat().st_size for p in burst.rglob("*.webp")) <= half
    with pytest.raises(SystemExit, match="No training image fits"):
        gpu_burst.pack(config, checkout / ".burst", limit=tree + (1 << 20) + 1000)
