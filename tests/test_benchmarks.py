"""The benchmark harness (benchmarks/run.py) runs end to end: `--quick`, its smoke run, and its plans.

The harness runs every measurement in a fresh process with the backend it is told (`--backends`),
whatever this process's KERAS_BACKEND; here it is told the backend under test. Under JAX the smoke run
takes ≈ 90 s on a busy 2-core machine (XLA compiles each weight initializer and each eager op), so
there it is a slow test; under TensorFlow and torch it takes ≈ 20 s.
"""

import json
import math
import subprocess
import sys

import keras
import pytest

import keras_din

from conftest import REPO

RUN = REPO / "benchmarks" / "run.py"
BACKEND = keras.backend.backend()


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess:
    command = [sys.executable, str(RUN), *args]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("backend", [pytest.param(BACKEND, marks=[pytest.mark.slow] if BACKEND == "jax" else [])])
def test_quick_run_measures_and_reports(tmp_path, backend):
    result = _run("--quick", "--backends", backend, "--threads", "1", "--out", str(tmp_path), timeout=600)
    assert "[3/3]" in result.stdout and "wrote" in result.stdout, result.stdout

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["settings"]["quick"] is True
    assert report["settings"]["backends"] == [backend]
    records = report["records"]
    assert [(r["spec"]["kind"], r["spec"]["task"]) for r in records] == [
        ("matmul", "inference"),
        ("keras", "inference"),
        ("keras", "training"),
    ]
    for record in records:
        assert record["result"]["status"] == "ok", record["result"]
        assert len(record["result"]["times_s"]) == record["spec"]["repeats"]
        assert 0 < record["result"]["median_s"] and 0 < record["result"]["rss_peak_mib"]
    assert report["matmul_gflop_s"]["numpy"] > 0
    for record in records[1:]:
        spec, result, derived = record["spec"], record["result"], record["derived"]
        assert (spec["config"], spec["backend"], spec["mode"]) == ("smoke_x2", backend, "eager")
        assert result["gflop"] > 0 and result["first_call_s"] > 0
        assert derived["gflop_s"] > 0 and derived["throughput_mp_s"] > 0 and derived["matmul_fraction"] > 0
        assert "vs_authors" not in derived  # no authors' network in the smoke run
    assert report["parity"] == [] and report["targets"] == []

    markdown = (tmp_path / "results.md").read_text()
    assert "Reference matrix multiply (float32, 256×256" in markdown
    for task in ("Inference", "Training"):
        assert f"### {task}: batch 1, 16×16" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith(f"| smoke_x2 | {backend} NHWC eager f32 |")]
    assert len(rows) == 2 and all(row.endswith("| ok |") for row in rows), markdown
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_plans_match_the_documented_measurement_counts():
    """`--list` plans without running; the counts are benchmarks/README.md's ("Duration", "Results")."""
    quick = _run("--quick", "--list", "--backends", "torch", timeout=60).stdout.splitlines()
    assert quick == [
        "matmul numpy 256x256",
        "smoke_x2 torch channels_last eager float32 inference",
        "smoke_x2 torch channels_last eager float32 training",
    ]
    full = ["--list", "--official-repo", "/nonexistent/din_official"]
    assert len(_run(*full, timeout=60).stdout.splitlines()) == 39
    published = ["--train-batch", "2", "--train-data-formats", "channels_last", "--compile-timeout", "60"]
    assert len(_run(*full, *published, timeout=60).stdout.splitlines()) == 36


@pytest.mark.parametrize("script", ["run.py", "end_to_end.py"])
def test_a_folder_that_is_not_the_authors_checkout_is_refused_before_any_work(tmp_path, script):
    (tmp_path / "Conference_version" / "networks").mkdir(parents=True)  # half a checkout
    (tmp_path / "Conference_version" / "networks" / "din_arch.py").write_text("")
    script = str(REPO / "benchmarks" / script)
    command = [sys.executable, script, "--official-repo", str(tmp_path), "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Enhanced_version/networks/din_arch.py" in result.stderr
    assert "Conference_version/networks" not in result.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.slow
def test_model_sizes_trains_each_size_for_the_time_it_is_given(tmp_path):
    """benchmarks/model_sizes.py: probes, then a run per size; its parameter counts are the built models'."""
    command = [sys.executable, str(REPO / "benchmarks" / "model_sizes.py"), "--sizes", "4/2/1/1,8/4/1/1"]
    command += ["--minutes", "0.02", "--probe-steps", "2", "--steps-per-epoch", "3", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (record,) = [json.loads(path.read_text()) for path in tmp_path.glob(f"model_sizes-din_small_x2-*-{BACKEND}.json")]
    for name, row in record["results"].items():
        features, growth, branches, blocks = map(int, name.split("/"))
        model = keras_din.DIN(scale=2, num_features=features, growth_rate=growth, num_branches=branches,
                              num_blocks=blocks)  # fmt: skip
        assert row["parameters"] == model.count_params()
        assert row["epochs"] >= 1 and len(row["val_psnr"]) == row["epochs"] and row["seconds_per_step"] > 0
        assert all(math.isfinite(p) for p in row["val_psnr"])  # a few steps from scratch: no level to expect
    table = tmp_path / f"model_sizes-{record['preset']}-{record['machine']['cpu_kind']}-{BACKEND}.md"
    assert "| 8/4/1/1 |" in table.read_text()


@pytest.mark.slow
def test_training_recipes_resume_the_preset_run_under_each_recipe_alone(tmp_path):
    """benchmarks/training_recipes.py: each recipe's solver is its own, not the preset's EMA and cosine."""
    command = [sys.executable, str(REPO / "benchmarks" / "training_recipes.py"), "--recipes", "step,cosine+ema"]
    command += ["--epochs", "2", "--steps-per-epoch", "2", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = tmp_path.glob("training_recipes-din_small_x2-*.json")
    record = json.loads(path.read_text())
    step, cosine = record["results"]["step"], record["results"]["cosine+ema"]
    assert (step["solver"]["lr_cosine"], step["solver"]["ema"]) == (False, None)  # din_small_x2 ran with both
    assert (cosine["solver"]["lr_cosine"], cosine["solver"]["ema"]) == (True, 0.999)
    done = json.loads((REPO / "presets" / "din_small_x2" / "training" / "state.json").read_text())["epochs_done"]
    assert step["solver"]["lr_milestones"] == [done, done + 1, done + 2] and step["solver"]["epochs"] == done + 2
    for row in (step, cosine):
        assert len(row["val_psnr"]) == 2 and all(p > 30 for p in row["val_psnr"])  # the trained preset, resumed
    assert "| cosine+ema |" in path.with_suffix(".md").read_text()
