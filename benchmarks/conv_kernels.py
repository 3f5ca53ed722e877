"""Why JAX is the slowest backend on a CPU: one convolution, the same on every framework, timed alone.

    python benchmarks/conv_kernels.py [--threads 2] [--out benchmarks/results]

DIN's convolutions run at the low-resolution size (64×64 for the ×4 benchmark input) with 64 or 32
output channels. Each framework runs the same float32 convolution (3×3 and 1×1, 64 input channels,
batch 1; NHWC, torch NCHW as it computes DIN), compiled as DIN's inference path compiles it
(`jax.jit`, `tf.function`, torch eager under `inference_mode`), in a fresh process pinned to the
first `--threads` CPUs; the best of 20 calls after two warm-up calls. JAX runs once per XLA:CPU
option below (options that hand convolutions to YNNPACK, oneDNN or XNNPACK, or take them back to
XLA's own Eigen kernel), each row naming what its compiled program runs the convolution with
(the fusion kind in the optimised HLO), and once more as an explicit im2col + one matrix product,
the rewrite a JAX-only layer would use. Results go to `OUT/conv_kernels-KIND.json` and `.md`, KIND
naming the CPU kind.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from _machine import describe_machine

HERE = Path(__file__).resolve().parent
# (height, width, kernel, output channels): DIN's body convolutions at 64×64, and one at the ×4 output size.
CASES = [(64, 64, 3, 64), (64, 64, 3, 32), (64, 64, 1, 64), (256, 256, 3, 64)]
_NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="  # an empty list: no YNNPACK fusion
XLA_OPTIONS = [
    "",
    _NO_YNN,
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_use_xnnpack=true",
    f"{_NO_YNN} --xla_cpu_experimental_onednn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
    f"{_NO_YNN} --xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION",
]

_CHILD = r"""
import json, re, sys, time
import numpy as np
runner, cases = sys.argv[1], json.loads(sys.argv[2])
kernels = set()

def best_ms(call):
    call(); call()
    times = []
    for _ in range(20):
        start = time.perf_counter(); call(); times.append(time.perf_counter() - start)
    return min(times) * 1000

def conv(h, w, k, c):
    rng = np.random.default_rng(0)
    x, kernel = rng.random((1, h, w, 64), np.float32), rng.random((k, k, 64, c), np.float32)
    if runner.startswith("jax"):
        import jax, jax.numpy as jnp
        if runner == "jax im2col":
            def f(x, kernel):
                p = jnp.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
                cols = jnp.concatenate([p[:, i:i + h, j:j + w] for i in range(k) for j in range(k)], axis=-1)
                return (cols.reshape(-1, k * k * 64) @ kernel.reshape(-1, c)).reshape(1, h, w, c)
        else:
            def f(x, kernel):
                layout = ("NHWC", "HWIO", "NHWC")
                return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=layout)
        f, x, kernel = jax.jit(f), jnp.asarray(x), jnp.asarray(kernel)
        hlo = f.lower(x, kernel).compile().as_text()
        kernels.update(re.findall(r'"kind":"(__\w+_fusion)"', hlo) or ["XLA convolution (Eigen)"])
        return best_ms(lambda: f(x, kernel).block_until_ready())
    if runner == "tensorflow":
        import tensorflow as tf
        f, x, kernel = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")), tf.constant(x), tf.constant(kernel)
        return best_ms(lambda: f(x, kernel))  # eager TensorFlow on a CPU returns once it is computed
    import torch
    torch.set_num_threads(int(sys.argv[3]))
    x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    kernel = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
    with torch.inference_mode():
        return best_ms(lambda: torch.nn.functional.conv2d(x, kernel, padding=k // 2))

print(json.dumps({"ms": [conv(*case) for case in cases], "kernels": sorted(kernels)}))
"""


def _measure(runner: str, xla_options: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TF_NUM_INTRAOP_THREADS": str(threads)}
    env["XLA_FLAGS"] = xla_options
    command = [sys.executable, "-c", _CHILD, runner, json.dumps(CASES), str(threads)]
    cpus = sorted(os.sched_getaffinity(0))[:threads]  # XLA and TensorFlow size their pools from the affinity
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, preexec_fn=lambda: os.sched_setaffinity(0, cpus)
    )
    if done.returncode:
        raise SystemExit(f"{runner} {xla_options} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    runs = [("torch", ""), ("tensorflow", "")] + [("jax", option) for option in XLA_OPTIONS] + [("jax im2col", "")]
    rows = []
    for runner, option in runs:
        rows.append({"runner": runner, "xla_options": option, **_measure(runner, option, args.threads)})
        print(rows[-1], flush=True)
    machine = describe_machine()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"conv_kernels-{machine['cpu_kind']}"
    record = {"machine": machine, "threads": args.threads, "cases": CASES, "rows": rows}
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
    gflop = [2 * h * w * k * k * 64 * c / 1e9 for h, w, k, c in CASES]
    onednn = "on" if machine["tensorflow_onednn"] else "off"
    lines = [
        f"{machine['cpu_model']}, {args.threads} threads; vector features: "
        f"{', '.join(machine['cpu_vector_features'])}; TensorFlow oneDNN: {onednn}",
        "",
        "float32 convolution (NHWC; torch NCHW), 64 input channels, batch 1: best ms of 20 (GFLOP/s)",
        "",
        "| runner | XLA option | convolution runs in | "
        + " | ".join(f"{h}×{w} {k}×{k} →{c}" for h, w, k, c in CASES)
        + " |",
        "|---|---|---|" + "---:|" * len(CASES),
    ]
    for row in rows:
        cells = [f"{ms:.2f} ({flop / ms * 1000:.0f})" for ms, flop in zip(row["ms"], gflop)]
        kernels = ", ".join(row["kernels"]) or "—"
        lines.append(f"| {row['runner']} | {row['xla_options'] or '—'} | {kernels} | " + " | ".join(cells) + " |")
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
