"""Training: a real tiny run on real images — loss falls, resume loses nothing, NaN stops, fine-tuning."""

import csv
import json
import os
import shutil
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
from PIL import Image

from keras_din.errors import ConfigError
from keras_din.model import DIN
from keras_din.preset import PresetError
from keras_din.train import (
    EMAWithoutCheckpointWarning,
    SlowPrecisionWarning,
    TrainingError,
    _warn_if_slow_precision,
    build_model,
    load_config,
    lr_stretches,
    run_history,
    train,
)

from conftest import DATASETS, REPO

TINY = {"version": "conference", "scale": 2, "num_features": 8, "growth_rate": 4, "num_branches": 2, "num_blocks": 1}


def _config(out, **solver):
    return {
        "model": dict(TINY),
        "data": {
            "train": [str(DATASETS / "Set5" / "HR")],
            "val": str(DATASETS / "Set5" / "HR"),
            "val_max_images": 1,
            "patch_size": 12,
            "batch_size": 4,
            "steps_per_epoch": 6,
        },
        "solver": {"epochs": 3, "learning_rate": 2e-3, "lr_milestones": [2], **solver},
        "output_dir": str(out),
    }


def _cpuinfo_lines():
    try:
        return open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return []


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return out, train(_config(out), verbose=0)


def test_loss_falls_and_everything_is_logged(full_run):
    out, model = full_run
    with open(out / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert {"loss", "psnr", "val_psnr", "val_ssim"} <= set(rows[0])
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 3
    with Image.open(out / "curve.png") as curve:
        assert curve.size[0] > 300
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 18
    # step halving: 2e-3 for two epochs, then 1e-3
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-3)


def test_resume_continues_where_it_stopped(full_run, tmp_path):
    out_full, full_model = full_run
    first = _config(tmp_path)
    first["solver"]["epochs"] = 2
    train(first, verbose=0)  # "interrupted" after epoch 2
    resumed = train(_config(tmp_path), verbose=0)  # same command, asks for 3
    with open(tmp_path / "log.csv", newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [0, 1, 2]
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 18
    assert len(json.loads((tmp_path / "state.json").read_text())["history"]) == 1  # nothing changed
    for a, b in zip(_weights(resumed), _weights(full_model)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_time_budget_stops_after_a_committed_epoch_and_the_run_resumes(full_run, tmp_path, capsys):
    _, full_model = full_run
    stopped = train(_config(tmp_path), verbose=0, minutes=1e-4)  # 6 ms: less than any epoch
    assert "stopping after epoch 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "state.json").read_text())["epochs_done"] == 1
    assert int(keras.ops.convert_to_numpy(stopped.optimizer.iterations)) == 6
    resumed = train(_config(tmp_path), verbose=0, minutes=60)  # an ample budget runs to the end
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 18
    for a, b in zip(_weights(resumed), _weights(full_model)):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("minutes", [0, -1, float("nan"), float("inf"), "5"])
def test_a_bad_time_budget_is_refused_before_anything_is_written(tmp_path, minutes):
    with pytest.raises(ConfigError, match="--minutes"):
        train(_config(tmp_path), verbose=0, minutes=minutes)
    assert not tmp_path.joinpath("config.json").exists()


_KILL_BETWEEN_WRITES = """
import json, os, signal, sys
import keras_din.train as train_module

commit = train_module.write_text_atomic

def killed_before_committing_epoch_3(path, text):
    if path.name == "state.json" and json.loads(text)["epochs_done"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # epoch 3's checkpoint is written, its state is not
    return commit(path, text)

train_module.write_text_atomic = killed_before_committing_epoch_3
train_module.train(json.loads(sys.argv[1]), verbose=0)
"""


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL")
def test_a_kill_between_checkpoint_and_state_loses_and_repeats_nothing(full_run, tmp_path):
    out_full, full_model = full_run
    config = _config(tmp_path)
    killed = subprocess.run([sys.executable, "-c", _KILL_BETWEEN_WRITES, json.dumps(config)], cwd=REPO)
    assert killed.returncode == -9
    state = json.loads((tmp_path / "state.json").read_text())
    assert (state["epochs_done"], state["checkpoint"]) == (2, "checkpoint-0002.keras")
    assert (tmp_path / "checkpoint-0003.keras").is_file()  # written, never committed
    resumed = train(config, verbose=0)
    with open(tmp_path / "log.csv", newline="") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [0, 1, 2]  # epoch 3 logged once
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 18
    assert sorted(p.name for p in tmp_path.glob("checkpoint*.keras")) == ["checkpoint-0003.keras"]
    for a, b in zip(_weights(resumed), _weights(full_model)):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_run_saved_before_state_named_its_checkpoint_resumes(tmp_path):
    first = _config(tmp_path, epochs=1)
    first["data"]["val"] = None
    train(first, verbose=0)
    state = json.loads((tmp_path / "state.json").read_text())
    os.replace(tmp_path / state.pop("checkpoint"), tmp_path / "checkpoint.keras")  # the old layout
    (tmp_path / "state.json").write_text(json.dumps(state))
    second = _config(tmp_path, epochs=2)
    second["data"]["val"] = None
    model = train(second, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 12
    assert sorted(p.name for p in tmp_path.glob("checkpoint*.keras")) == ["checkpoint-0002.keras"]


def test_resume_applies_the_configs_schedule_and_precision(tmp_path):
    first = _config(tmp_path, lr_milestones=[], epochs=1)
    first["data"]["val"] = None
    stopped = train(first, verbose=0)
    longer = _config(tmp_path, lr_milestones=[1], epochs=2, mixed_precision="mixed_bfloat16")
    longer["data"]["val"] = None
    resumed = train(longer, verbose=0)
    assert resumed.dtype_policy.name == "mixed_bfloat16"
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 12
    assert float(keras.ops.convert_to_numpy(resumed.optimizer.learning_rate)) == pytest.approx(1e-3)
    assert not np.allclose(_weights(resumed)[0], _weights(stopped)[0])
    backend = keras.backend.backend()
    history = json.loads((tmp_path / "state.json").read_text())["history"]
    cpus = f", {len(os.sched_getaffinity(0))} CPUs, "  # where each stretch ran, for the model card
    assert all(cpus in stretch.pop("machine") for stretch in history)
    assert history == [
        {"from_epoch": 1, "backend": backend, "mixed_precision": None},
        {"from_epoch": 2, "backend": backend, "mixed_precision": "mixed_bfloat16"},
    ]
    wider = _config(tmp_path, epochs=3)
    wider["model"]["num_features"] = 12
    with pytest.raises(ValueError, match="different network.*--restart"):
        train(wider, verbose=0)


def _learning_rate(model):
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def test_lr_values_restart_warm_after_a_finished_schedule(tmp_path):
    # Epoch 1 at 2e-3, epoch 2 at 1e-4; then the finished run is extended by a warm restart at 1e-3.
    decayed = _config(tmp_path, epochs=2, lr_milestones=[1])
    decayed["data"]["val"] = None
    decayed["solver"]["lr_values"] = [2e-3, 1e-4]
    assert _learning_rate(train(decayed, verbose=0)) == pytest.approx(1e-4)
    restarted = _config(tmp_path, epochs=3, lr_milestones=[1, 2])
    restarted["data"]["val"] = None
    restarted["solver"]["lr_values"] = [2e-3, 1e-4, 1e-3]
    model = train(restarted, verbose=0)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 18
    assert _learning_rate(model) == pytest.approx(1e-3)


def _checkpoint(folder):
    return keras.saving.load_model(folder / json.loads((folder / "state.json").read_text())["checkpoint"])


def test_ema_and_cosine_resume_without_loss_and_checkpoints_hold_both_weights(tmp_path):
    def config(out):
        return _config(out, epochs=3, lr_milestones=[1], ema=0.8, lr_cosine=True)

    warned = r"solver.ema = 0.8 on a run with no checkpoint: .* random weights .* 5 steps"
    with pytest.warns(EMAWithoutCheckpointWarning, match=warned):
        full = train(config(tmp_path / "full"), verbose=0)
    assert _learning_rate(full) == pytest.approx(0.0, abs=1e-12)  # the cosine ends at 0 with the last step
    with pytest.warns(EMAWithoutCheckpointWarning):
        train(config(tmp_path / "split"), verbose=0, minutes=1e-4)  # stops after epoch 1
    with warnings.catch_warnings():
        # A resumed run's average starts from trained weights: no warning.
        warnings.simplefilter("error", EMAWithoutCheckpointWarning)
        resumed = train(config(tmp_path / "split"), verbose=0)
    for a, b in zip(_weights(resumed), _weights(full)):
        np.testing.assert_allclose(a, b, atol=1e-5)  # neither the raw weights nor their average was lost
    saved = _checkpoint(tmp_path / "full")
    for a, b in zip(_weights(saved), _weights(full)):
        np.testing.assert_allclose(a, b, atol=1e-6)  # the checkpoint's model is the average the run returns
    raw = [keras.ops.convert_to_numpy(v) for v in saved.optimizer._model_variables_moving_average]
    assert max(np.abs(r - w).max() for r, w in zip(raw, _weights(saved))) > 1e-4  # the raw ones ride along
    history = json.loads((tmp_path / "full" / "state.json").read_text())["history"]
    assert [stretch.get("ema") for stretch in history] == [0.8]


def test_an_annealed_run_extended_by_a_warm_restart_keeps_its_schedule_and_anneals_the_new_stretch(tmp_path):
    def config(out, epochs, milestones, values, cosine):
        made = _config(out, epochs=epochs, lr_milestones=milestones, lr_values=values, lr_cosine=cosine)
        made["data"]["val"] = None
        return made

    first = train(config(tmp_path / "split", 2, [1], [2e-3, 1e-3], True), verbose=0)
    assert _learning_rate(first) == pytest.approx(0.0, abs=1e-12)  # epoch 2 annealed to 0
    extended = config(tmp_path / "split", 3, [1, 2], [2e-3, 1e-3, 5e-4], 1)  # every stretch after epoch 1
    resumed = train(extended, verbose=0)
    straight = train(config(tmp_path / "straight", 3, [1, 2], [2e-3, 1e-3, 5e-4], 1), verbose=0)
    for a, b in zip(_weights(resumed), _weights(straight)):
        np.testing.assert_allclose(a, b, atol=1e-5)  # epoch 2 ran the same schedule in both
    assert _learning_rate(resumed) == pytest.approx(0.0, abs=1e-12)  # the restart annealed to 0 too
    schedule = resumed.optimizer._learning_rate  # 6 steps per epoch
    expected = {3: 2e-3, 9: 1e-3 * (1 + np.cos(np.pi * 3 / 6)) / 2, 12: 5e-4, 15: 5e-4 * (1 + np.cos(np.pi / 2)) / 2}
    for step, rate in expected.items():
        assert float(keras.ops.convert_to_numpy(schedule(step))) == pytest.approx(rate, rel=1e-5)
    assert [s.get("to_epoch") for s in lr_stretches(extended["solver"], 3)] == [None, 2, 3]


def test_a_run_whose_checkpoint_names_the_old_cosine_schedule_resumes(tmp_path):
    # presets/din_small_x4/training was committed when the schedule class was CosineLastStretch.
    shutil.copytree(REPO / "presets" / "din_small_x4" / "training", tmp_path / "training")
    config = json.loads((REPO / "presets" / "din_small_x4" / "train_config.json").read_text())
    config["data"] = {**config["data"], "train": [str(DATASETS / "Set5" / "HR")], "val": None}
    config["data"].update(batch_size=2, steps_per_epoch=1)
    config["solver"].update(epochs=82, lr_milestones=[*config["solver"]["lr_milestones"], 81], mixed_precision=None)
    config["solver"].update(lr_values=[*config["solver"]["lr_values"], 1e-5], lr_cosine=41)
    config["output_dir"], config["init_from"] = str(tmp_path / "training"), None
    model = train(config, verbose=0)
    assert json.loads((tmp_path / "training" / "state.json").read_text())["epochs_done"] == 82
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 81 * 250 + 1


def test_ema_switched_on_at_resume_starts_the_average_from_the_weights(tmp_path):
    plain = _config(tmp_path, epochs=1)
    first = train(plain, verbose=0)
    with open(tmp_path / "log.csv", newline="") as handle:
        before = float(next(csv.DictReader(handle))["val_psnr"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMAWithoutCheckpointWarning)
        train(_config(tmp_path, epochs=2, ema=0.99), verbose=0)
    with open(tmp_path / "log.csv", newline="") as handle:
        after = float(list(csv.DictReader(handle))[-1]["val_psnr"])
    # An average started from zeros would be 0.99**6 of the weights after 6 steps: a black image.
    assert after > before - 1.0
    assert not np.allclose(_weights(_checkpoint(tmp_path))[0], _weights(first)[0])
    history = json.loads((tmp_path / "state.json").read_text())["history"]
    assert [stretch.get("ema") for stretch in history] == [None, 0.99]


def test_nan_loss_stops_and_keeps_no_bad_checkpoint(tmp_path):
    config = _config(tmp_path, learning_rate=1e30, lr_milestones=[])
    with pytest.raises(TrainingError, match="NaN"):
        train(config, verbose=0)
    assert not list(tmp_path.glob("checkpoint*.keras"))


def test_fine_tuning_x4_from_an_x2_body(full_run, tmp_path):
    out, x2 = full_run
    preset = x2.save_to_preset(tmp_path / "x2")
    config = _config(tmp_path / "x4")
    config["model"]["scale"] = 4
    config["init_from"] = str(preset)
    x4 = build_model(load_config(config))
    for name in ("feat_conv", "WRDB1_1", "interleaved2_1", "conv_out"):
        for a, b in zip(_weights(x4.get_layer(name)), _weights(x2.get_layer(name))):
            np.testing.assert_array_equal(a, b)
    assert x4.scale == 4


def test_a_colour_checkpoint_initialises_a_grey_model_exactly(tmp_path):
    same_size = {"version": "enhanced", "scale": 1, "num_features": 8, "growth_rate": 4, "num_branches": 2,
                 "num_blocks": 1}  # fmt: skip
    colour = build_model(load_config({**_config(tmp_path), "model": same_size}))
    colour.save(tmp_path / "colour.keras")
    config = _config(tmp_path / "grey")
    config["model"] = {**same_size, "in_channels": 1, "out_channels": 1}
    config["init_from"] = str(tmp_path / "colour.keras")
    grey = build_model(load_config(config))
    x = np.random.default_rng(0).random((1, 9, 7, 1)).astype("float32")
    expected = keras.ops.convert_to_numpy(colour(np.repeat(x, 3, axis=-1))).mean(axis=-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grey(x)), expected, atol=1e-5)
    config["init_from"] = str(tmp_path / "missing.keras")
    with pytest.raises(ConfigError, match="missing.keras"):
        build_model(load_config(config))


def test_a_resumed_run_that_changes_its_jpeg_qualities_records_them_per_stretch(tmp_path):
    same_size = {"version": "enhanced", "scale": 1, "num_features": 8, "growth_rate": 4, "num_branches": 2,
                 "num_blocks": 1}  # fmt: skip
    config = {**_config(tmp_path, epochs=1), "model": same_size}
    config["data"].update(val=None, jpeg_quality=[10, 95])
    train(config, verbose=0)
    train({**config, "solver": {**config["solver"], "epochs": 2}}, verbose=0)  # same data: one stretch
    narrower = {**config, "data": {**config["data"], "jpeg_quality": [10, 40]}}
    train({**narrower, "solver": {**config["solver"], "epochs": 3}}, verbose=0)
    state = json.loads((tmp_path / "state.json").read_text())
    assert [(s["from_epoch"], s["jpeg_quality"]) for s in state["history"]] == [(1, [10, 95]), (3, [10, 40])]
    # a stretch recorded before the levels were gets those of the config it ran with
    state["history"] = [{k: v for k, v in s.items() if k != "jpeg_quality"} for s in state["history"][:1]]
    state["config"] = config
    assert [s["jpeg_quality"] for s in run_history(state)] == [[10, 95]]


def test_mixed_precision_switch(tmp_path):
    config = _config(tmp_path, mixed_precision="mixed_bfloat16", epochs=1)
    config["data"]["val"] = None
    model = train(config, verbose=0)
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert np.isfinite(model.history.history["loss"][0])


def test_a_run_folder_given_as_a_preset_names_its_checkpoint(full_run):
    out, _ = full_run
    with pytest.raises(PresetError, match=r"run folder: pass one of its checkpoints, e.g. '.*checkpoint-0003.keras'"):
        DIN.from_preset(out)


def test_a_mixed_precision_ema_checkpoint_loads_as_a_float32_preset_of_the_averaged_weights(tmp_path):
    config = _config(tmp_path, mixed_precision="mixed_bfloat16", epochs=1, ema=0.8)
    config["data"]["val"] = None
    with pytest.warns(EMAWithoutCheckpointWarning) as caught:
        train(config, verbose=0)
    # This machine's own CPU decides whether the run warns that bfloat16 is emulated here.
    flags = set(" ".join(line.partition(":")[2] for line in _cpuinfo_lines() if line.startswith("flags")).split())
    emulated = bool(flags) and not flags & {"avx512_bf16", "amx_bf16"}
    assert any(w.category is SlowPrecisionWarning for w in caught) == emulated
    path = tmp_path / json.loads((tmp_path / "state.json").read_text())["checkpoint"]
    saved = keras.saving.load_model(path, compile=False)  # Keras' own loader, for reference
    loaded = DIN.from_preset(path)
    assert (saved.dtype_policy.name, loaded.dtype_policy.name) == ("mixed_bfloat16", "float32")
    for a, b in zip(_weights(loaded), _weights(saved)):
        np.testing.assert_array_equal(a, b)  # the averaged weights, which validation scores
    raw = [keras.ops.convert_to_numpy(v) for v in _checkpoint(tmp_path).optimizer._model_variables_moving_average]
    assert max(np.abs(r - w).max() for r, w in zip(raw, _weights(loaded))) > 1e-4  # not the raw ones
    assert DIN.from_preset(path, dtype="mixed_bfloat16").dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize(
    ("precision", "flags", "accelerator", "warns"),
    [
        ("mixed_bfloat16", {"avx2", "fma"}, None, True),  # AVX2 only: bfloat16 emulated
        ("mixed_bfloat16", {"avx2", "avx512f"}, None, True),  # AVX-512 without its BF16 extension
        ("mixed_bfloat16", {"avx2", "avx512f", "avx512_bf16"}, None, False),
        ("mixed_bfloat16", {"avx2", "amx_bf16"}, None, False),
        ("mixed_bfloat16", {"avx2", "fma"}, "NVIDIA H100", False),  # the step runs on the GPU
        ("mixed_bfloat16", set(), None, False),  # flags unknown (not Linux, not x86): no guess
        (None, {"avx2", "fma"}, None, False),
    ],
)
def test_bfloat16_on_a_cpu_without_bfloat16_units_warns(precision, flags, accelerator, warns):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _warn_if_slow_precision(precision, flags, accelerator)
    messages = [str(w.message) for w in caught if w.category is SlowPrecisionWarning]
    assert len(messages) == int(warns)
    if warns:
        assert "solver.mixed_precision" in messages[0] and "null" in messages[0]


def test_config_errors_are_named(tmp_path):
    with pytest.raises(ValueError, match="Unknown training config key 'optimiser'"):
        load_config({"optimiser": {}, "data": {"train": "x"}})
    with pytest.raises(ValueError, match=r"section 'solver': \['lr'\]"):
        load_config({"solver": {"lr": 1}, "data": {"train": "x"}})
    with pytest.raises(ValueError, match="data.train"):
        load_config({})
    with pytest.raises(ValueError, match="lr_values needs one learning rate per stretch: 3 for 2"):
        load_config({"solver": {"lr_milestones": [5, 9], "lr_values": [1e-3]}, "data": {"train": "x"}})
    with pytest.raises(ValueError, match=r"lr_milestones must be increasing.*\[9, 5\]"):
        load_config({"solver": {"lr_milestones": [9, 5]}, "data": {"train": "x"}})


_DATA_PARALLEL = """
import json, sys, jax, keras
from keras_din.train import train
config = json.loads(sys.argv[1])
model = train(config, verbose=0)
print("devices", jax.device_count(), "loss", model.history.history["loss"])
"""


def test_data_parallel_on_two_virtual_jax_devices(tmp_path):
    if keras.backend.backend() != "jax":
        pytest.skip("runs in the JAX pass of the suite (keras.distribution data parallelism is JAX-only)")
    config = _config(tmp_path, distribution="data_parallel", epochs=1)
    config["data"]["val"] = None
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    result = subprocess.run(
        [sys.executable, "-c", _DATA_PARALLEL, json.dumps(config)], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "devices 2" in result.stdout


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "is a JSON object"),
        (
            {"model": {"num_feature": 8}, "data": {"train": "x"}},
            r"Unknown keys in training config section 'model': \['num_feature'\]",
        ),
        ({"data": 5}, "section 'data' must be an object"),
        ({"data": {"train": "x", "steps_per_epoch": 0}}, "data.steps_per_epoch must be a positive integer, got 0"),
        ({"data": {"train": "x", "batch_size": -1}}, "data.batch_size must be a positive integer, got -1"),
        ({"data": {"train": "x"}, "solver": {"epochs": "10"}}, "solver.epochs must be a positive integer, got '10'"),
        ({"data": {"train": "x"}, "solver": {"epochs": 0}}, "solver.epochs must be a positive integer, got 0"),
        ({"data": {"train": "x"}, "solver": {"lr_milestones": "15"}}, "lr_milestones must be a list of epochs"),
        ({"data": {"train": 5}}, "data.train must name one or more folders"),
        ({"data": {"train": "x"}, "init_from": 3}, "init_from must be a preset name"),
        ({"data": {"train": "x"}, "solver": {"ema": 1}}, "solver.ema must be null or a momentum between 0 and 1"),
        ({"data": {"train": "x"}, "solver": {"lr_cosine": "yes"}}, "solver.lr_cosine must be true, false or the epoch"),
        ({"data": {"train": "x"}, "solver": {"lr_milestones": [2], "lr_cosine": 3}}, r"one of lr_milestones \[2\]"),
    ],
)
def test_a_bad_config_is_refused_by_name_before_anything_is_written(bad, message, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=message):
        train(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]
