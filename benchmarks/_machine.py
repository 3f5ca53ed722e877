"""The machine under test: a description for the report, and its matrix-multiply GFLOP/s.

The matmul rate (float32, square `size` × `size`, 2·size³ FLOPs) measured in the
same run and with the same thread count is the reference that DIN's achieved
conv GFLOP/s are compared with.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

import numpy as np

from _spec import Spec, Workload

LIBRARIES = ("keras", "tensorflow", "tensorflow-cpu", "jax", "jaxlib", "torch", "numpy", "matplotlib")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """The vector-extension flags that decide conv and bfloat16 speed (AVX2, AVX-512, AMX ...)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx", "amx", "fma")))
    except OSError:
        pass
    return []


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# TensorFlow turns its oneDNN CPU kernels on by default only on CPUs with one of these (and never with
# TF_ENABLE_ONEDNN_OPTS=0); without them its Conv2D has no NCHW and its CPU kernels are its own.
_ONEDNN_DEFAULT_FLAGS = ("avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
_VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def _tensorflow_onednn(flags: list[str]) -> bool:
    setting = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if setting is not None:
        return setting not in ("0", "false", "False")
    return any(flag in flags for flag in _ONEDNN_DEFAULT_FLAGS)


def cpu_kind(features: list[str], onednn: bool) -> str:
    """A short label of the CPU kind that decides DIN's speed, for file names and table headings.

    >>> cpu_kind(["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"], True)
    'avx512-bf16_onednn-on'
    >>> cpu_kind(["avx2", "fma"], False)
    'avx2_onednn-off'
    """
    if "amx_bf16" in features:
        vector = "amx"
    elif "avx512_bf16" in features:
        vector = "avx512-bf16"
    elif "avx512f" in features:
        vector = "avx512"
    else:
        vector = "avx2" if "avx2" in features else "other"
    return f"{vector}_onednn-{'on' if onednn else 'off'}"


def describe_machine() -> dict:
    """CPU model and flags, TensorFlow's oneDNN state, core counts, memory, load, OS, Python and library versions
    (no library imported)."""
    flags = _cpu_flags()
    features = [flag for flag in _VECTOR_FLAGS if flag in flags]
    onednn = _tensorflow_onednn(flags)
    return {
        "cpu_model": _cpu_model(),
        "cpu_vector_features": features,
        "tensorflow_onednn": onednn,
        "cpu_kind": cpu_kind(features, onednn),
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": _memory_gib(),
        "load_average_1_5_15": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": {name: _version(name) for name in LIBRARIES if _version(name)},
    }


def matmul_workload(spec: Spec) -> Workload:
    """A float32 `size` × `size` matrix product with numpy or torch."""
    rng = np.random.default_rng(spec.seed)
    a = rng.random((spec.size, spec.size), dtype=np.float32)
    b = rng.random((spec.size, spec.size), dtype=np.float32)
    gflop = 2 * spec.size**3 / 1e9
    if spec.library == "numpy":
        return Workload(step=lambda: a @ b, gflop=gflop, output_pixels=0)
    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return Workload(step=lambda: torch.mm(ta, tb), gflop=gflop, output_pixels=0)
