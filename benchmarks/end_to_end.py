"""The main job, whole process, side by side: `keras-din restore` on each backend against the authors' script.

    python benchmarks/end_to_end.py --official-repo PATH [--backends tensorflow,jax,torch] [--threads 2]
                                    [--python BACKEND=PATH ...] [--precision POLICY] [--tag NAME]
                                    [--data ../shared/datasets] [--out benchmarks/results]

Each job is one fresh process, timed from start to exit (wall clock) with its peak RSS
(`ru_maxrss` of the child), all in one run, one after the other, with the same thread count:

* `single`: one 160×120 PNG → 640×480 with a paper-size conference ×4 network (random weights,
  converted with `keras-din convert` beforehand, not timed), whole image (`--tile none`);
* `folder`: ten such PNGs (crops of B100 images) in one call; the authors' script loops over them;
* `default_512`: the default preset (`din_small_x2`) on one 512×512 photo (keras-din only);
* `mixed_20`: the default preset on a folder of 20 photos of many sizes (Set14 and the first six
  B100 images, halved with bicubic), against the sum of the 20 warm forward passes of the same
  preset and backend (each image run twice in one process, the second run timed): the cost of
  start-up, I/O and compiling per shape on top of the network itself (keras-din only).

On JAX every job runs twice: first with an empty compilation cache of its own
(`KERAS_DIN_JAX_CACHE`, what a first run costs), then again with what that run left in it (every
later run of the same job: XLA's compile loaded from disk).

`--python BACKEND=PATH` runs that backend's keras-din jobs with another interpreter, e.g. one of a
virtual environment holding only `keras-din[BACKEND]`: what a user who installed one backend pays.
Keras imports every optional package it finds (JAX through its Orbax callback, matplotlib through
`keras.visualization`), so in a development environment with all three backends and matplotlib each
command imports about 0.8 s of packages it never uses. `--tag NAME` adds NAME to the report's file names.
`--precision mixed_bfloat16` runs keras-din's jobs (and their warm forwards) in that dtype policy
(`keras-din restore --precision`), for CPUs with bfloat16 units (AVX512-BF16, AMX); the authors' script
and ONNX Runtime stay in float32, so those rows compare precisions as well as code.

The ONNX Runtime rows (`--onnx`, on by default) run the same jobs through the model exported
with `keras-din export` beforehand (not timed), in a plain script like the authors' one: the
fastest CPU route for users who can deploy an ONNX file.

The authors' side is the plain script a user of their repository would write (import torch and
their network from the checkout given at run time, build, `load_state_dict`, read each PNG with
Pillow, forward under `torch.no_grad()`, write PNG); nothing of theirs is copied here. Results
go to `OUT/end_to_end-KIND.json` and `OUT/end_to_end-KIND.md`, KIND naming the CPU kind and
TensorFlow's oneDNN state (e.g. `avx2_onednn-off`, `avx512-bf16_onednn-on`), so each kind of machine
keeps its own table, with the machine's description (CPU flags).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from _machine import describe_machine
from _official import build_official_din, check_checkout

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
CONFIG = {"version": "conference", "scale": 4, "num_features": 64, "growth_rate": 32}

_AUTHORS_SCRIPT = """
import sys, time
import numpy as np, torch
from PIL import Image
sys.path.insert(0, sys.argv[1] + "/Conference_version")
from networks.din_arch import DIN
net = DIN(in_channels=3, out_channels=3, num_features=64, growthrate=32, upscale_factor=4)
net.load_state_dict(torch.load(sys.argv[2], map_location="cpu"))
net.eval()
for source in sys.argv[4:]:
    x = torch.from_numpy(np.asarray(Image.open(source).convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = net(x)
    out = (y[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(out).save(sys.argv[3] + "/" + source.rsplit("/", 1)[-1])
"""

_ORT_SCRIPT = """
import sys
import numpy as np, onnxruntime as ort
from PIL import Image
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
for source in sys.argv[4:]:
    x = np.asarray(Image.open(source).convert("RGB"), np.float32)[None] / 255
    y = session.run(None, {"image": x})[0]
    out = (np.clip(y[0], 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(out).save(sys.argv[3] + "/" + source.rsplit("/", 1)[-1])
"""


_WARM_SCRIPT = """
import json, sys, time
import numpy as np
from PIL import Image
from keras_din import DIN
from keras_din.inference import Predictor
predict = Predictor(DIN.from_preset(sys.argv[1], dtype=sys.argv[2]))
total = 0.0
for source in sys.argv[3:]:
    x = np.asarray(Image.open(source).convert("RGB"), np.float32)[None] / 255
    predict(x)
    start = time.perf_counter()
    predict(x)
    total += time.perf_counter() - start
print(json.dumps({"warm_forward_sum_seconds": round(total, 2)}))
"""


def _timed(command: list[str], env: dict) -> dict:
    """Runs `command` to completion: its wall time and its own peak RSS (`wait4` gives that child's usage)."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read().decode(errors='replace')[-3000:]}")
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def _inputs(data: Path, work: Path) -> dict[str, list[Path]]:
    """Ten 160×120 crops of B100 images, a 512×512 resize of the first, 20 halved Set14/B100 photos (PNG)."""
    folder = work / "inputs"
    folder.mkdir()
    sources = sorted((data / "B100" / "HR").glob("*.png"))[:10]
    crops = []
    for index, source in enumerate(sources):
        with Image.open(source) as image:
            crops.append(folder / f"photo{index:02d}.png")
            image.convert("RGB").crop((0, 0, 160, 120)).save(crops[-1])
    with Image.open(sources[0]) as image:
        big = work / "photo512.png"
        image.convert("RGB").resize((512, 512), Image.BICUBIC).save(big)
    mixed_folder = work / "mixed"
    mixed_folder.mkdir()
    mixed = []
    for source in sorted((data / "Set14" / "HR").glob("*.png")) + sorted((data / "B100" / "HR").glob("*.png"))[:6]:
        with Image.open(source) as image:
            mixed.append(mixed_folder / source.name)
            image.convert("RGB").resize((image.width // 2, image.height // 2), Image.BICUBIC).save(mixed[-1])
    return {"single": crops[:1], "folder": crops, "default_512": [big], "mixed_20": mixed}


def _checkpoint(repo: Path, work: Path) -> Path:
    import torch

    torch.manual_seed(0)
    net = build_official_din(repo, CONFIG["version"], CONFIG["scale"], 64, 32, 3, 3)
    path = work / "conference_x4_random.pth"
    torch.save(net.state_dict(), path)
    return path


def _warm_forward_sum(work: Path, images: list[Path], env: dict, python: str, precision: str) -> dict:
    """The default preset's warm forward time summed over `images`, and the folder job's ratio to it."""
    script = work / "warm.py"
    script.write_text(_WARM_SCRIPT)
    command = [python, str(script), "din_small_x2", precision, *map(str, images)]
    done = subprocess.run(command, check=True, env=env, capture_output=True, text=True, cwd=REPO_ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _onnx_rows(work: Path, inputs: dict[str, list[Path]], presets: dict[str, object], env: dict) -> list[dict]:
    """Each job through ONNX Runtime: the preset exported once (not timed), then a plain script per job."""
    script = work / "ort.py"
    script.write_text(_ORT_SCRIPT)
    exported, rows = {}, []
    for job, preset in presets.items():
        model = exported.get(str(preset))
        if model is None:
            model = exported[str(preset)] = work / f"model{len(exported)}.onnx"
            command = [sys.executable, "-m", "keras_din", "export", "--preset", str(preset), "-o", str(model)]
            subprocess.run(command, check=True, env=env, capture_output=True)
        out = work / f"ort_{job}"
        out.mkdir()
        files = [str(p) for p in inputs[job]]
        command = [sys.executable, str(script), str(model), env["OMP_NUM_THREADS"], str(out), *files]
        rows.append({"job": job, "runner": "ONNX Runtime (exported)", **_timed(command, env)})
        print(rows[-1], flush=True)
    return rows


def write_report(rows: list[dict], out: Path, threads: int, tag: str | None = None) -> None:
    """Writes `out/end_to_end-KIND.json` and `.md`: wall time, ratio to the authors', peak RSS, and the machine."""
    authors = {row["job"]: row["seconds"] for row in rows if row["runner"].startswith("authors")}
    for row in rows:
        if row["job"] in authors:
            row["x_authors_time"] = round(row["seconds"] / authors[row["job"]], 2)
    machine = describe_machine()
    out.mkdir(parents=True, exist_ok=True)
    name = f"end_to_end-{machine['cpu_kind']}" + (f"-{tag}" if tag else "")
    (out / f"{name}.json").write_text(json.dumps({"machine": machine, "threads": threads, "rows": rows}, indent=2))
    onednn = "on" if machine["tensorflow_onednn"] else "off"
    lines = [
        f"{machine['cpu_model']}, {machine['usable_cpus']} CPUs, {threads} threads; vector features: "
        f"{', '.join(machine['cpu_vector_features'])}; TensorFlow oneDNN: {onednn}",
        "",
        "| job | runner | wall s | × authors' time | peak RSS MiB | sum of warm forwards s (× it) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        ratio = row.get("x_authors_time", "—")
        warm = row.get("warm_forward_sum_seconds")
        warm = f"{warm} ({row['seconds'] / warm:.2f}×)" if warm else "—"
        cells = [row["job"], row["runner"], row["seconds"], ratio, row["peak_rss_mib"], warm]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official-repo", required=True, help="a checkout of github.com/lifengshiwo/DIN")
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "datasets"))
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX Runtime rows")
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="BACKEND=PATH",
        help="the interpreter for that backend's keras-din jobs (default: this one)",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        choices=["float32", "mixed_float16", "mixed_bfloat16"],
        help="keras-din's dtype policy (default float32, as the authors')",
    )
    parser.add_argument("--tag", help="added to the report's file names")
    args = parser.parse_args(argv)
    pythons = dict(item.split("=", 1) for item in args.python if "=" in item)
    if len(pythons) != len(args.python) or not set(pythons) <= set(args.backends.split(",")):
        parser.error(f"--python takes BACKEND=PATH for a backend of --backends, got {args.python}")
    repo = Path(args.official_repo).resolve()
    if problem := check_checkout(repo):
        parser.error(problem)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "TF_NUM_INTRAOP_THREADS": threads, "PYTHONUNBUFFERED": "1"}
    env["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"

    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        inputs = _inputs(Path(args.data), work)
        checkpoint = _checkpoint(repo, work)
        preset = work / "conference_x4"
        subprocess.run([sys.executable, "-m", "keras_din", "convert", str(checkpoint), str(preset)], check=True,
                       env=env, capture_output=True)  # fmt: skip
        script = work / "authors.py"
        script.write_text(_AUTHORS_SCRIPT)
        for job in ("single", "folder"):
            out = work / f"authors_{job}"
            out.mkdir()
            files = [str(p) for p in inputs[job]]
            result = _timed([sys.executable, str(script), str(repo), str(checkpoint), str(out), *files], env)
            rows.append({"job": job, "runner": "authors (torch, no_grad)", **result})
            print(rows[-1], flush=True)
        for backend in args.backends.split(","):
            # JAX: each job first with an empty compilation cache of its own (a first run), then again
            # with what that run left in it (every later run of the same job).
            for cache in ("empty", "warm") if backend == "jax" else ("none",):
                for job in ("single", "folder", "default_512", "mixed_20"):
                    source = inputs[job][0].parent if job in ("folder", "mixed_20") else inputs[job][0]
                    model = str(preset) if job in ("single", "folder") else "din_small_x2"
                    python = pythons.get(backend, sys.executable)
                    command = [python, "-m", "keras_din", "restore", str(source), "-o",
                               str(work / f"{backend}_{cache}_{job}"), "--preset", model, "--tile", "none",
                               "--precision", args.precision]  # fmt: skip
                    job_env = {**env, "KERAS_BACKEND": backend, "KERAS_DIN_JAX_CACHE": str(work / f"jax_cache_{job}")}
                    result = _timed(command, job_env)
                    if job == "mixed_20":
                        if cache != "warm":  # the network's own time, the same for both JAX runs
                            warm_env = {**env, "KERAS_BACKEND": backend}
                            forwards = _warm_forward_sum(work, inputs[job], warm_env, python, args.precision)
                        result.update(forwards)
                    label = f"{backend}, compilation cache {cache}" if backend == "jax" else backend
                    label += f", {args.precision}" if args.precision != "float32" else ""
                    label += f", {python}" if backend in pythons else ""
                    runner = f"keras-din restore ({label})"
                    rows.append({"job": job, "runner": runner, **result})
                    print(rows[-1], flush=True)
        if args.onnx:
            presets = {"single": preset, "folder": preset, "default_512": "din_small_x2", "mixed_20": "din_small_x2"}
            rows += _onnx_rows(work, inputs, presets, env)

    write_report(rows, Path(args.out), args.threads, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
