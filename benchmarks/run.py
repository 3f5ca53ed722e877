"""Benchmarks keras-din against the authors' PyTorch DIN, every backend, one command.

    python benchmarks/run.py [--quick] [--official-repo PATH] [--backends tensorflow,jax,torch]
                             [--configs conference_x4,...] [--out benchmarks/results]

Each measurement (one backend, data format, mode, precision and task; the
authors' network; a reference matmul) runs in its own fresh subprocess
(`_measure.py`), one after the other, pinned to the same CPUs. Results go to
`OUT/results.json`, `OUT/results.md` and `OUT/results.png`; see
benchmarks/README.md for the method and the meaning of every column.
`--quick` is a smoke run of the same machinery (a tiny network, one backend,
eager only: three measurements, seconds each), not a speed measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe_machine
from _measure import is_compilation_failure, thread_environment
from _official import check_checkout
from _report import write_report
from _spec import (
    BACKENDS,
    DATA_FORMATS,
    MATMUL_LIBRARIES,
    MODES,
    PRECISIONS,
    SMOKE_CONFIG,
    TASKS,
    Spec,
    is_paper_config,
    parse_config,
    parse_size,
)
from _summary import summarize

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_OUT = HERE / "results"
QUICK_OUT = Path(tempfile.gettempdir()) / "keras-din-benchmarks-quick"

# Defaults of the full run and of --quick (any option given on the command line wins).
# Inference: one `size` image (batch 1) in every data format x mode x precision. Training: a
# `train_batch` of `train_size`² patches, float32, in every `train_data_formats`, in the mode
# `model.fit` uses by default on a CPU (`train_modes` None: KERAS_CPU_TRAIN_MODES). `warmup`
# calls (the first one, which compiles, is timed apart), then `repeats` / `train_repeats` timed calls.
# The reference: a float32 `matmul_size`² matrix product in each of `matmul_libraries`.
FULL = {
    "configs": ["conference_x4"],
    "backends": list(BACKENDS),
    "data_formats": list(DATA_FORMATS),
    "modes": list(MODES),
    "size": "64x64",
    "precisions": list(PRECISIONS),
    "train_batch": 4,
    "train_size": 48,
    "train_data_formats": list(DATA_FORMATS),
    "warmup": 2,
    "repeats": 3,
    "train_repeats": 2,
    "compile_timeout": 120.0,
    "matmul_libraries": list(MATMUL_LIBRARIES),
    "matmul_size": 2048,
}
# --quick checks that the harness runs end to end, in seconds: the tiny SMOKE_CONFIG network on the
# backend KERAS_BACKEND names (Keras' default, tensorflow, when unset), eager, one inference and one
# training measurement, and a small numpy matmul. Its timings say nothing about DIN's speed.
QUICK = {
    "configs": [SMOKE_CONFIG],  # backends: [_keras_backend()], set in parse_args
    "data_formats": ["channels_last"],
    "modes": ["eager"],
    "size": "16x16",
    "precisions": ["float32"],
    "train_batch": 1,
    "train_size": 16,
    "train_data_formats": ["channels_last"],
    "train_modes": ["eager"],
    "warmup": 1,
    "repeats": 2,
    "train_repeats": 2,
    "compile_timeout": 60.0,
    "matmul_libraries": ["numpy"],
    "matmul_size": 256,
}
# Keras' `jit_compile="auto"` on a CPU: tf.function without XLA, jax.jit, torch eager.
KERAS_CPU_TRAIN_MODES = {"tensorflow": ["graph"], "jax": ["compiled"], "torch": ["eager"]}


def _keras_backend() -> str:
    """The backend this environment selects for Keras (`KERAS_BACKEND`), if the harness knows it; else tensorflow."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return backend if backend in BACKENDS else "tensorflow"


def _choices(allowed: tuple[str, ...]):
    """An argparse type: a comma-separated list whose every item is in `allowed`."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [item for item in items if item not in allowed]
        if wrong or not items:
            raise argparse.ArgumentTypeError(f"{wrong or text!r}: choose from {', '.join(allowed)}")
        return items

    return parse


def _configs(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        try:
            parse_config(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"smoke run of the harness (KERAS_BACKEND's backend only): {QUICK}"
    )
    parser.add_argument("--list", action="store_true", help="print the planned measurements and exit")
    parser.add_argument("--official-repo", type=Path, help="checkout of github.com/lifengshiwo/DIN to time against")
    parser.add_argument("--backends", type=_choices(BACKENDS), help="default all; --quick: KERAS_BACKEND's")
    parser.add_argument(
        "--configs", type=_configs, help=f"e.g. conference_x4,enhanced_x4 (default conference_x4; quick {SMOKE_CONFIG})"
    )
    parser.add_argument("--tasks", type=_choices(TASKS), default=list(TASKS))
    parser.add_argument("--data-formats", type=_choices(DATA_FORMATS))
    parser.add_argument("--modes", type=_choices(MODES), help="graph = tf.function without XLA (TF only)")
    parser.add_argument("--precisions", type=_choices(PRECISIONS), help=f"default {','.join(FULL['precisions'])}")
    parser.add_argument("--train-data-formats", type=_choices(DATA_FORMATS))
    parser.add_argument("--train-modes", type=_choices(MODES), help=f"default per backend: {KERAS_CPU_TRAIN_MODES}")
    parser.add_argument("--train-precisions", type=_choices(PRECISIONS), default=["float32"])
    parser.add_argument(
        "--size", type=_size, help=f"inference input HxW (default {FULL['size']}, quick {QUICK['size']})"
    )
    parser.add_argument("--train-batch", type=int, help=f"default {FULL['train_batch']}, quick {QUICK['train_batch']}")
    parser.add_argument("--train-size", type=int, help=f"training LR patch side (default {FULL['train_size']})")
    parser.add_argument(
        "--warmup", type=int, help="inference warm-up calls, the first one timed apart (training: the first step)"
    )
    parser.add_argument("--repeats", type=int, help="timed inference calls (the median is reported)")
    parser.add_argument("--train-repeats", type=int, help="timed training steps")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPUs (and threads) per run")
    parser.add_argument(
        "--compile-timeout",
        type=float,
        help=f"seconds a compiled mode's first call may take (default {FULL['compile_timeout']:.0f})",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one measurement may take in all")
    parser.add_argument("--out", type=Path, help=f"output folder (default {DEFAULT_OUT}; --quick: {QUICK_OUT})")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, _size(value) if name == "size" else value)
    if args.backends is None:
        args.backends = [_keras_backend()]
    usable = len(os.sched_getaffinity(0))
    if not 1 <= args.threads <= usable:
        parser.error(f"--threads {args.threads}: this process may use 1 to {usable} CPUs")
    if args.out is None:
        args.out = QUICK_OUT if args.quick else DEFAULT_OUT
    if args.official_repo is not None:
        args.official_repo = args.official_repo.resolve()
        problem = check_checkout(args.official_repo)
        if problem and not args.list:  # --list only prints the plan
            parser.error(problem)
    return args


def _runnable(backend: str, mode: str) -> bool:
    return mode != "graph" or backend == "tensorflow"


def plan(args: argparse.Namespace) -> list[Spec]:
    """Every measurement of the run, in execution order: reference matmuls, parity, authors', ours.

    The authors' code is measured (with --official-repo) for the paper configurations only.
    """
    height, width = args.size
    common = dict(threads=args.threads, warmup=args.warmup, compile_timeout=args.compile_timeout)
    specs = [
        Spec(kind="matmul", library=library, size=args.matmul_size, repeats=10, **common)
        for library in args.matmul_libraries
    ]
    inference = dict(batch=1, height=height, width=width, repeats=args.repeats, **common)
    training = dict(
        common,
        task="training",
        batch=args.train_batch,
        height=args.train_size,
        width=args.train_size,
        repeats=args.train_repeats,
        warmup=1,  # a training step is long: its first call is the only warm-up
    )
    for config in args.configs:
        if args.official_repo is not None and is_paper_config(config):
            repo = str(args.official_repo)
            specs.append(Spec(kind="parity", config=config, official_repo=repo, **inference))
            if "inference" in args.tasks:
                specs.append(Spec(kind="official", config=config, official_repo=repo, **inference))
            if "training" in args.tasks:
                specs.append(Spec(kind="official", config=config, official_repo=repo, **training))
        for backend in args.backends:
            ours = dict(kind="keras", config=config, backend=backend)
            if "inference" in args.tasks:
                specs += [
                    Spec(**ours, data_format=fmt, mode=mode, precision=precision, **inference)
                    for fmt in args.data_formats
                    for mode in args.modes
                    if _runnable(backend, mode)
                    for precision in args.precisions
                ]
            if "training" in args.tasks:
                specs += [
                    Spec(**ours, data_format=fmt, mode=mode, precision=precision, **training)
                    for fmt in args.train_data_formats
                    for mode in args.train_modes or KERAS_CPU_TRAIN_MODES[backend]
                    if _runnable(backend, mode)
                    for precision in args.train_precisions
                ]
    return specs


def execute(spec: Spec, timeout: float) -> dict:
    """Runs `spec` in a fresh interpreter and returns its result (running out of time is a result too)."""
    env = {**os.environ, **thread_environment(spec.threads, spec.backend)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as scratch:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(scratch) / "inductor")  # every torch.compile starts cold
        result_path = Path(scratch) / "result.json"
        command = [sys.executable, str(HERE / "_measure.py"), spec.to_json(), str(result_path)]
        start = time.perf_counter()
        # A session of its own, so that a timeout also ends the compiler workers it may have started.
        with subprocess.Popen(
            command,
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                _, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                # The measurement rewrites its result file as each phase starts: name the phase it hung in.
                result = json.loads(result_path.read_text()) if result_path.exists() else {"phase": "startup"}
                result["status"] = "unsupported" if is_compilation_failure(spec, result["phase"]) else "timeout"
                result["error"] = f"{result['phase']}: did not finish within {timeout:.0f} s"
                result["wall_s"] = timeout
                return result
        wall = time.perf_counter() - start
        result = json.loads(result_path.read_text()) if result_path.exists() else {"phase": "startup"}
    if "status" not in result:  # the process died mid-way (e.g. killed for memory)
        result["status"] = "failed"
        result["error"] = f"{result['phase']}: process exited with code {process.returncode}: {stderr[-1500:]}"
    result["wall_s"] = wall
    return result


def _compiler_key(spec: Spec) -> tuple:
    return spec.config, spec.backend, spec.task, spec.mode


def run_all(specs: list[Spec], timeout: float) -> list[dict]:
    """Executes `specs` one after the other, printing progress.

    Once a compiled mode is unsupported (its compiler failed or ran past the
    compile limit) for a backend, configuration and task, the remaining settings
    of that combination are skipped rather than spending the same time again.
    """
    records, unsupported = [], {}
    start = time.perf_counter()
    for index, spec in enumerate(specs, start=1):
        first_failure = unsupported.get(_compiler_key(spec))
        if first_failure is not None:
            result = {"status": "skipped", "error": f"not attempted: unsupported for {first_failure}", "wall_s": 0.0}
        else:
            result = execute(spec, timeout)
            if result["status"] == "unsupported":
                unsupported[_compiler_key(spec)] = spec.label()
        records.append({"spec": json.loads(spec.to_json()), "result": result})
        print(_progress(index, len(specs), spec, result, time.perf_counter() - start), flush=True)
    return records


def _progress(index: int, total: int, spec: Spec, result: dict, elapsed: float) -> str:
    if result["status"] != "ok":
        outcome = f"{result['status'].upper()}: {result.get('error', '')[:160]}"
    elif spec.kind == "parity":
        outcome = f"max |ours - authors'| = {result['max_abs_diff']:.2e}"
    else:
        outcome = f"median {result['median_s'] * 1e3:.1f} ms, first call {result['first_call_s']:.1f} s"
    return f"[{index}/{total}] {spec.label()}: {outcome} ({result['wall_s']:.0f} s; {elapsed / 60:.1f} min in all)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    specs = plan(args)
    if args.list:
        print("\n".join(spec.label() for spec in specs))
        return 0
    if args.official_repo is not None and not all(map(is_paper_config, args.configs)):
        print(f"note: the authors' code has no {SMOKE_CONFIG} network; it is not compared with theirs")
    machine = describe_machine()
    print(f"{len(specs)} measurements on {machine['cpu_model']}, {args.threads} thread(s); writing to {args.out}")
    if machine["load_average_1_5_15"][0] > 0.5:
        load = machine["load_average_1_5_15"][0]
        print(f"warning: load average {load:.1f}: the machine is not idle, timings are disturbed")
    start = time.perf_counter()
    records = run_all(specs, args.timeout)
    settings = {
        name: (str(value) if isinstance(value, Path) else value)
        for name, value in vars(args).items()
        if name not in ("out", "list")
    }
    settings["duration_s"] = time.perf_counter() - start
    machine["load_average_1_5_15_after"] = list(os.getloadavg())
    summary = summarize(records)
    paths = write_report(args.out, machine=machine, settings=settings, summary=summary)
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
