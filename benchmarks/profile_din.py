"""Where our time goes on one backend: what-if rewrites, fixed overhead, and an op-level profile (torch).

    python benchmarks/profile_din.py --backend torch [--data-format channels_last] [--mode eager]
        [--config conference_x4] [--size 64x64] [--threads N] [--official-repo PATH] [--json OUT.json]

Runs in one process (Keras' backend is fixed per process). Prints Markdown:

1. **What-if rewrites** (`_variants`): the full model's median inference time as it
   is and with one layer rewritten, outputs checked equal to the baseline's.
2. **Fixed overhead**: the model on a 4×4 input, where the convolutions are
   negligible, so the time is per-op dispatch, tracing-free framework cost;
   the authors' network on the same input for comparison (torch, with --official-repo).
3. **Op profile** (torch backend only): `torch.profiler` self-CPU time by aten op,
   grouped (convolution, layout copies, concatenation, element-wise, other), for
   our model and the authors'.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from _measure import configure_torch, pin_threads, thread_environment, time_repeats
from _spec import BACKENDS, DATA_FORMATS, MODES, Spec, image_batch, parse_config, parse_size

OVERHEAD_SIZE = 4
# aten op name fragments -> category, first match wins.
OP_CATEGORIES = (
    # torch runs a grouped (depth-wise) conv on CPU as one slow_conv2d per group, sliced with narrow.
    ("depth-wise 1×1 convs (per-group loop)", ("_slow_conv2d", "narrow", "aten::slice")),
    ("convolution", ("conv",)),
    ("layout copies (permute / contiguous / copy)", ("permute", "contiguous", "copy_", "clone", "transpose")),
    ("concatenation", ("aten::cat",)),
    ("element-wise (add, mul, activations)", ("add", "mul", "sub", "leaky_relu", "sigmoid", "relu", "div", "neg")),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--data-format", choices=DATA_FORMATS, default="channels_last")
    parser.add_argument("--mode", choices=MODES, default="eager")
    parser.add_argument("--config", default="conference_x4", help="e.g. conference_x4, enhanced_x8")
    parser.add_argument("--size", type=parse_size, default=(64, 64), help="inference input HxW")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--official-repo", type=Path)
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    return parser.parse_args(argv)


def _median_ms(step, args: argparse.Namespace) -> float:
    return time_repeats(step, args.warmup, args.repeats)["median_s"] * 1e3


def what_if(spec: Spec, args: argparse.Namespace) -> list[dict]:
    """Median inference ms of the baseline, of each variant (with its max output difference) and of the authors'."""
    import numpy as np

    from _keras_workload import build_model
    from _variants import VARIANTS, variant

    config = parse_config(spec.config)
    lr = image_batch(np.random.default_rng(0), 1, config["in_channels"], spec.height, spec.width, spec.data_format)
    rows, weights, reference = [], None, None
    for name in VARIANTS:
        with variant(name):
            model = build_model(spec)
            if weights is None:
                weights = model.get_weights()
            else:
                model.set_weights(weights)
            output = np.asarray(model.predict_on_batch(lr), dtype=np.float32)
            reference = output if reference is None else reference
            rows.append(
                {
                    "variant": name,
                    "median_ms": _median_ms(lambda: model.predict_on_batch(lr), args),
                    "max_abs_diff_vs_baseline": float(np.max(np.abs(output - reference))),
                }
            )
        del model
    if args.official_repo is not None:
        from _official import official_workload

        authors = official_workload(dataclasses.replace(spec, kind="official", official_repo=str(args.official_repo)))
        rows.append({"variant": "authors' network (torch eager NCHW)", "median_ms": _median_ms(authors.step, args)})
    return rows


def fixed_overhead(spec: Spec, args: argparse.Namespace) -> dict:
    """Median ms of a forward pass on a 4×4 input: ours, and the authors' (torch eager) when available."""
    import numpy as np

    from _keras_workload import build_model

    tiny = dataclasses.replace(spec, height=OVERHEAD_SIZE, width=OVERHEAD_SIZE)
    config = parse_config(spec.config)
    lr = image_batch(np.random.default_rng(0), 1, config["in_channels"], OVERHEAD_SIZE, OVERHEAD_SIZE, spec.data_format)
    model = build_model(tiny)
    result = {"ours_ms": _median_ms(lambda: model.predict_on_batch(lr), args)}
    if args.official_repo is not None:
        from _official import official_workload

        authors = official_workload(dataclasses.replace(tiny, kind="official", official_repo=str(args.official_repo)))
        result["authors_ms"] = _median_ms(authors.step, args)
    return result


def _categorize(name: str) -> str:
    for category, fragments in OP_CATEGORIES:
        if any(fragment in name for fragment in fragments):
            return category
    return "other"


def torch_op_profile(step, top: int = 12) -> dict:
    """Self-CPU milliseconds of one `step()` per aten op and per category."""
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    ops = sorted(
        ((event.key, event.self_cpu_time_total / 1e3, event.count) for event in profiler.key_averages()),
        key=lambda op: -op[1],
    )
    categories: dict[str, float] = {}
    for name, ms, _ in ops:
        categories[_categorize(name)] = categories.get(_categorize(name), 0.0) + ms
    return {
        "total_ms": sum(ms for _, ms, _ in ops),
        "categories_ms": dict(sorted(categories.items(), key=lambda item: -item[1])),
        "top_ops": [{"op": name, "self_ms": ms, "calls": count} for name, ms, count in ops[:top]],
    }


def op_profiles(spec: Spec, args: argparse.Namespace) -> dict:
    """torch.profiler tables of our model's inference and, with --official-repo, the authors'."""
    from _keras_workload import keras_workload

    profiles = {"ours": torch_op_profile(keras_workload(spec).step)}
    if args.official_repo is not None:
        from _official import official_workload

        authors = official_workload(dataclasses.replace(spec, kind="official", official_repo=str(args.official_repo)))
        profiles["authors"] = torch_op_profile(authors.step)
    return profiles


def _markdown(spec: Spec, report: dict) -> str:
    lines = [f"## {spec.label()} ({spec.height}×{spec.width}, {spec.threads} thread(s))", ""]
    lines += ["### What-if rewrites", ""]
    lines += ["| variant | median ms | saves | max abs diff vs baseline |", "|---|---:|---:|---:|"]
    baseline = report["what_if"][0]["median_ms"]
    for row in report["what_if"]:
        saving = 100 * (1 - row["median_ms"] / baseline)
        diff = row.get("max_abs_diff_vs_baseline")
        diff_text = "—" if diff is None else f"{diff:.1e}"
        lines.append(f"| {row['variant']} | {row['median_ms']:,.1f} | {saving:+.1f} % | {diff_text} |")
    overhead = report["fixed_overhead"]
    lines += ["", f"### Fixed overhead ({OVERHEAD_SIZE}×{OVERHEAD_SIZE} input)", ""]
    lines.append(f"* ours: {overhead['ours_ms']:,.1f} ms")
    if "authors_ms" in overhead:
        lines.append(f"* authors' (torch eager NCHW): {overhead['authors_ms']:,.1f} ms")
    for who, profile in report.get("op_profiles", {}).items():
        title = f"torch op profile, {who} (self CPU ms of one inference; total {profile['total_ms']:,.1f})"
        lines += ["", f"### {title}", ""]
        lines += ["| category | ms | share |", "|---|---:|---:|"]
        for category, ms in profile["categories_ms"].items():
            lines.append(f"| {category} | {ms:,.1f} | {100 * ms / profile['total_ms']:.0f} % |")
        lines += ["", "| op | self ms | calls |", "|---|---:|---:|"]
        lines += [f"| {op['op']} | {op['self_ms']:,.1f} | {op['calls']} |" for op in profile["top_ops"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    height, width = args.size
    spec = Spec(
        kind="keras",
        config=args.config,
        backend=args.backend,
        data_format=args.data_format,
        mode=args.mode,
        height=height,
        width=width,
        threads=args.threads,
        warmup=args.warmup,
        repeats=args.repeats,
    )
    os.environ.update(thread_environment(args.threads, args.backend))  # before any numerical library loads
    pin_threads(args.threads)
    configure_torch(spec)
    report = {
        "spec": json.loads(spec.to_json()),
        "what_if": what_if(spec, args),
        "fixed_overhead": fixed_overhead(spec, args),
    }
    if args.backend == "torch":
        report["op_profiles"] = op_profiles(spec, args)
    print(_markdown(spec, report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
