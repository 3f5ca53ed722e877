"""Runs one measurement in this (fresh) process: `python _measure.py SPEC_JSON RESULT_PATH`.

The orchestrator starts one process per measurement with `KERAS_BACKEND` and the
thread-count variables already in the environment (`thread_environment`), so
every backend, data format, mode and precision starts from a clean interpreter
and the peak RSS (`resource.getrusage`) belongs to that measurement alone. Here
the process is pinned to the first `threads` CPUs before any numerical library
is imported, the workload is built, called `warmup` times (the first call,
which traces and compiles, is timed separately and, in compiled mode, limited to
`compile_timeout` seconds) and then `repeats` times.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import statistics
import sys
import time
import traceback

from keras_din._io.atomic import write_text_atomic

from _spec import Spec, Workload

FIRST_CALL = "first call (tracing / compilation)"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Keras colours its error messages


def thread_environment(threads: int, backend: str) -> dict[str, str]:
    """Environment variables that fix the thread count of every library and the Keras backend."""
    count = str(threads)
    return {
        "KERAS_BACKEND": backend,
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": count,
        "TF_NUM_INTRAOP_THREADS": count,
        "TF_NUM_INTEROP_THREADS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JAX_PLATFORMS": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
    }


def pin_threads(threads: int) -> list[int]:
    """Restricts this process to its first `threads` usable CPUs (inherited by all library thread pools)."""
    usable = sorted(os.sched_getaffinity(0))
    if threads > len(usable):
        raise ValueError(f"threads={threads} but only {len(usable)} CPUs are usable here: {usable}.")
    cpus = usable[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def configure_torch(spec: Spec) -> None:
    """torch sizes its pool from OMP_NUM_THREADS; set it explicitly too, where the measurement uses torch."""
    if spec.uses_torch():
        import torch

        torch.set_num_threads(spec.threads)


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_workload(spec: Spec) -> Workload:
    if spec.kind == "keras":
        from _keras_workload import keras_workload

        return keras_workload(spec)
    if spec.kind == "official":
        from _official import official_workload

        return official_workload(spec)
    from _machine import matmul_workload

    return matmul_workload(spec)


def timed_call(step) -> float:
    """Seconds one call of `step` takes."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def time_repeats(step, warmup: int, repeats: int) -> dict:
    """Calls `step` `warmup` more times untimed, then times `repeats` calls."""
    for _ in range(warmup):
        step()
    times = [timed_call(step) for _ in range(repeats)]
    return {"times_s": times, "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


class FirstCallTimeout(Exception):
    """The first call (tracing and compilation) ran past the spec's `compile_timeout`."""


def limited_call(step, seconds: float) -> float:
    """`timed_call(step)`, interrupted by `FirstCallTimeout` after `seconds` (0: no limit).

    The alarm is delivered when control is back in Python, so a long stretch of
    native compilation (XLA) can overrun it; the orchestrator's own timeout is the backstop.
    """
    if seconds <= 0:
        return timed_call(step)
    message = f"the first call (tracing / compilation) took longer than the {seconds:.0f} s limit"
    fired = []

    def expire(signum, frame):
        fired.append(signum)
        raise FirstCallTimeout(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return timed_call(step)
    except Exception as error:
        if fired:  # compilers wrap exceptions raised inside them; report the timeout plainly
            raise FirstCallTimeout(message) from error
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run(spec: Spec, result_path: str) -> dict:
    """Executes `spec` and returns its result; failures are recorded with the phase they happened in.

    The result so far, with the current `phase`, is rewritten to `result_path` as each
    phase starts, so an orchestrator that has to kill this process can tell where it hung.
    """
    cpus = pin_threads(spec.threads)
    result: dict = {"cpus": cpus, "load_average_1_before": os.getloadavg()[0]}

    def enter(phase: str) -> None:
        result["phase"] = phase
        write_result(result_path, result)

    try:
        enter("setup")
        configure_torch(spec)
        if spec.kind == "parity":
            from _official import parity_check

            enter("parity check")
            result.update(parity_check(spec))
        else:
            enter("build")
            workload = build_workload(spec)
            result.update(gflop=workload.gflop, output_pixels=workload.output_pixels)
            result["rss_before_run_mib"] = peak_rss_mib()
            enter(FIRST_CALL)
            result["first_call_s"] = limited_call(workload.step, spec.compile_timeout if spec.mode == "compiled" else 0)
            enter("timed runs")
            result.update(time_repeats(workload.step, spec.warmup - 1, spec.repeats))
        result["status"] = "ok"
    except Exception as error:  # recorded, not raised: one failing setting must not stop the run
        result["status"] = "unsupported" if is_compilation_failure(spec, result["phase"]) else "failed"
        if isinstance(error, FirstCallTimeout):
            detail = str(error)
        else:
            detail = f"{result['phase']}: {type(error).__name__}: {error}"
        result["error"] = ANSI_ESCAPE.sub("", detail)[:2000]
        result["traceback"] = traceback.format_exc()[-4000:]
    result["rss_peak_mib"] = peak_rss_mib()
    result["load_average_1_after"] = os.getloadavg()[0]
    return result


def is_compilation_failure(spec: Spec, phase: str) -> bool:
    """A compiled mode that fails (or runs out of time) in its first call: the compiler does not handle it."""
    return spec.mode == "compiled" and phase == FIRST_CALL


def write_result(path: str, result: dict) -> None:
    """Writes `result` atomically, so that a reader never sees half a file."""
    write_text_atomic(path, json.dumps(result))


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} SPEC_JSON RESULT_PATH", file=sys.stderr)
        return 2
    write_result(argv[2], run(Spec.from_json(argv[1]), argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
